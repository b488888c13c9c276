package report

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/dag"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/scan"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// realDB makes the build database of the real 2026 illumos presolve file
// (29,022 packages) with pkgdag's writer, then gives it the states of a
// finished build: about 3% of the buildable packages fail (chosen by a
// hash of the name), their dependents are indirect-failed, the rest done.
func realDB(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	recs, err := scan.ReadFile(testenv.SharedData(tb, "scan/presolve-illumos-2026.txt.zst"))
	if err != nil {
		tb.Fatal(err)
	}
	g, err := dag.Resolve(ctx, recs, 2)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "bulk.db")
	if _, _, err := dag.WriteDB(ctx, path, g, nil, dag.DBInfo{Now: tStart}); err != nil {
		tb.Fatal(err)
	}
	d, err := db.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	if err := finishBuild(ctx, d); err != nil {
		tb.Fatal(err)
	}
	return path
}

func finishBuild(ctx context.Context, d *sql.DB) error {
	type pkg struct {
		name, initial string
		deps          []int64
	}
	pkgs := map[int64]*pkg{}
	var ids []int64
	rows, err := d.QueryContext(ctx, `SELECT id, pkgname, initial_state FROM packages WHERE selected = 1 ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		p := &pkg{}
		var id int64
		if err := rows.Scan(&id, &p.name, &p.initial); err != nil {
			return err
		}
		pkgs[id] = p
		ids = append(ids, id)
	}
	rows.Close()
	rows, err = d.QueryContext(ctx, `SELECT pkg_id, dep_id FROM depends`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a, b int64
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		if p := pkgs[a]; p != nil {
			p.deps = append(p.deps, b)
		}
	}
	rows.Close()
	state := map[int64]string{}
	var decide func(id int64) string
	decide = func(id int64) string {
		if s, ok := state[id]; ok {
			return s
		}
		p := pkgs[id]
		state[id] = "done" // cycles are prefailed by pkgdag; this only guards recursion
		s := p.initial
		if s == "open" {
			s = "done"
			for _, dep := range p.deps {
				if ds := decide(dep); ds != "done" {
					if ds == "failed" || ds == "indirect-failed" {
						s = "indirect-failed"
					} else if s == "done" {
						s = "indirect-prefailed"
					}
				}
			}
			h := fnv.New32a()
			h.Write([]byte(p.name))
			if s == "done" && h.Sum32()%100 < 3 {
				s = "failed"
			}
		}
		state[id] = s
		return s
	}
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	at := tStart.UnixMilli()
	for i, id := range ids {
		s := decide(id)
		var res any
		if s == "failed" {
			res = fmt.Sprintf(`{"version":1,"pkgname":%q,"status":"failed","failed_phase":"build","phases":[{"name":"build","ok":false,"log":"bulklog/%s/build.log"}]}`, pkgs[id].name, pkgs[id].name)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO build_state (pkg_id, state, detail, started_at, finished_at, wall_ms, result) VALUES (?, ?, '', ?, ?, 1000, ?)`,
			id, s, at+int64(i)*1000, at+int64(i)*1000+1000, res); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// BenchmarkWriteDirReal writes every report file of a finished 29,022
// package build (the real 2026 presolve records: about 160 MB of report).
//
//	go test ./lib/report -run '^$' -bench WriteDirReal -benchtime 3x
func BenchmarkWriteDirReal(b *testing.B) {
	path := realDB(b)
	ctx := context.Background()
	d, err := db.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	out := b.TempDir()
	var bu *Build
	b.ResetTimer()
	for b.Loop() {
		if bu, err = Load(ctx, d); err != nil {
			b.Fatal(err)
		}
		if err := FindLogs(ctx, bu, nil, Links{}); err != nil {
			b.Fatal(err)
		}
		if err := WriteDir(ctx, out, d, bu, time.UTC); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c := bu.Counts()
	var size int64
	for _, f := range Files {
		if fi, err := os.Stat(filepath.Join(out, f)); err == nil {
			size += fi.Size()
			b.ReportMetric(float64(fi.Size())/1e6, f+"-MB")
		}
	}
	b.Logf("%d packages: %d done, %d failed, %d indirect-failed, %d prefailed, %d indirect-prefailed; %d MB written",
		c.Total, c.Done, c.Failed, c.IndirectFailed, c.Prefailed, c.IndirectPrefailed, size/1e6)
}

// TestRealBuildReport checks the report of the real tree's build for
// what is known independently of this package: PKG_DEPTH is pkgdag's
// depth, every selected package has a record, and report.txt's total is
// the number of selected packages.
func TestRealBuildReport(t *testing.T) {
	if testing.Short() {
		t.Skip("29,022-package database: skipped with -short")
	}
	path := realDB(t)
	ctx := context.Background()
	d := openDB(t, path)
	b, err := Load(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Packages) != 29022 {
		t.Errorf("%d packages, want 29022", len(b.Packages))
	}
	c := b.Counts()
	if c.Total != len(b.Packages) || c.Open+c.InProcessing != 0 {
		t.Errorf("counts %+v", c)
	}
	// libnbcompat's depth in the 2026 data (spec §4).
	for _, p := range b.Packages {
		if p.Location == "pkgtools/libnbcompat" && p.Depth != 29016 {
			t.Errorf("%s: depth %d, want 29016", p.Name, p.Depth)
		}
	}
	out := t.TempDir()
	if err := WriteDir(ctx, out, d, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	recs, err := scan.ReadFile(filepath.Join(out, "report"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 29022 {
		t.Errorf("report has %d records", len(recs))
	}
	for i := 1; i < len(recs); i++ {
		a, _ := recs[i-1].Get("PKGNAME")
		b, _ := recs[i].Get("PKGNAME")
		if a >= b {
			t.Fatalf("report not sorted: %s before %s", a, b)
		}
	}
}
