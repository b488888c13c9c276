package dag

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// smallScan has a bit of everything: weights, a skip reason, an unresolved
// pattern, multi-version records, a cycle.
var smallScan = rec("base-1.0", "x/base", "", "PBULK_WEIGHT=10") +
	rec("lib-2.1nb3", "x/lib", "base>=1:../../x/base") +
	rec("py312-mod-1", "x/py-mod", "lib-[0-9]*:../../x/lib base-[0-9]*:../../x/base", "MULTI_VERSION= PYTHON_VERSION_REQD=312") +
	rec("py311-mod-1", "x/py-mod", "lib-[0-9]*:../../x/lib", "MULTI_VERSION= PYTHON_VERSION_REQD=311") +
	rec("tool-1", "x/tool", "", `PKG_SKIP_REASON="not here"`) +
	rec("user-1", "x/user", "tool-[0-9]*:../../x/tool") +
	rec("lost-1", "x/lost", "gone>=2:../../x/gone lib>=2:../../x/lib") +
	rec("loop-a-1", "x/loop-a", "loop-b-[0-9]*:../../x/loop-b") +
	rec("loop-b-1", "x/loop-b", "loop-a-[0-9]*:../../x/loop-a base>=1:../../x/base")

func writeSmall(t *testing.T, path string, limited []int) (*Graph, *Analysis, Counts) {
	t.Helper()
	g, err := resolveText(t, smallScan)
	if err != nil {
		t.Fatal(err)
	}
	a, c, err := WriteDB(context.Background(), path, g, limited, DBInfo{Inputs: []string{"test.scan"}, Now: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return g, a, c
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestWriteDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	g, _, counts := writeSmall(t, path, nil)
	d := openDB(t, path)

	if counts.Packages != 9 || counts.Depends != 8 || counts.Unresolved != 1 || counts.Cycles != 1 || counts.Prefailed != 4 {
		t.Errorf("counts %+v", counts)
	}

	// The presolve view, in pkg_id order, is pbulk-resolve's output.
	var want bytes.Buffer
	g.WritePresolve(&want, nil)
	var got strings.Builder
	rows, err := d.Query("SELECT record FROM presolve ORDER BY pkg_id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		rows.Scan(&r)
		got.WriteString(r)
	}
	rows.Close()
	if got.String() != want.String() {
		t.Errorf("records differ from presolve:\n%s", got.String())
	}

	type row struct {
		id                                   int
		base, version, path, fail            string
		multi, scanDeps, depends             sql.NullString
		weight, depth, totalWeight, selected int
		state, detail                        string
	}
	read := func(name string) row {
		var r row
		err := d.QueryRow(`SELECT p.id, pkgbase, version, pkgpath, fail_reason, multi_version, s.scan_depends, depends,
			pbulk_weight, depth, weight, selected, initial_state, initial_detail
			FROM packages p JOIN package_scan_depends s ON s.pkg_id = p.id WHERE p.pkgname = ?`, name).Scan(
			&r.id, &r.base, &r.version, &r.path, &r.fail, &r.multi, &r.scanDeps, &r.depends,
			&r.weight, &r.depth, &r.totalWeight, &r.selected, &r.state, &r.detail)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	base := read("base-1.0")
	if base.id != 1 || base.base != "base" || base.version != "1.0" || base.path != "x/base" || base.multi.Valid ||
		base.scanDeps.String != "../../mk/bsd.pkg.mk Makefile" || base.depends.Valid || base.weight != 10 ||
		base.depth != 6 || base.totalWeight != 10+5*100 || base.selected != 1 || base.state != StateOpen {
		t.Errorf("base-1.0: %+v", base)
	}
	mod := read("py312-mod-1")
	if mod.multi.String != " PYTHON_VERSION_REQD=312" || mod.depends.String != "lib-2.1nb3 base-1.0" || mod.depth != 1 {
		t.Errorf("py312-mod-1: %+v", mod)
	}
	lost := read("lost-1")
	if lost.fail != `"could not resolve dependency "gone>=2""` || lost.depends.Valid || lost.state != StatePrefailed {
		t.Errorf("lost-1: %+v", lost)
	}
	user := read("user-1")
	if user.state != StateIndirectPrefailed || user.detail != "tool-1" {
		t.Errorf("user-1: %+v", user)
	}
	loop := read("loop-a-1")
	if loop.state != StatePrefailed || loop.detail != "dependency cycle: loop-a-1 loop-b-1" || loop.depth != 2 {
		t.Errorf("loop-a-1: %+v", loop)
	}

	var edges []string
	rows, _ = d.Query(`SELECT p.pkgname, q.pkgname, e.pattern, e.ord FROM depends e
		JOIN packages p ON p.id = e.pkg_id JOIN packages q ON q.id = e.dep_id ORDER BY e.pkg_id, e.ord`)
	for rows.Next() {
		var a, b, pat string
		var ord int
		rows.Scan(&a, &b, &pat, &ord)
		edges = append(edges, a+" "+b+" "+pat+" "+string(rune('0'+ord)))
	}
	rows.Close()
	wantEdges := []string{
		"lib-2.1nb3 base-1.0 base>=1 0",
		"py312-mod-1 lib-2.1nb3 lib-[0-9]* 0", "py312-mod-1 base-1.0 base-[0-9]* 1",
		"py311-mod-1 lib-2.1nb3 lib-[0-9]* 0",
		"user-1 tool-1 tool-[0-9]* 0",
		"loop-a-1 loop-b-1 loop-b-[0-9]* 0",
		"loop-b-1 loop-a-1 loop-a-[0-9]* 0", "loop-b-1 base-1.0 base>=1 1",
	}
	if strings.Join(edges, "\n") != strings.Join(wantEdges, "\n") {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(edges, "\n"), strings.Join(wantEdges, "\n"))
	}

	var upkg, upat, uloc string
	if err := d.QueryRow("SELECT p.pkgname, u.pattern, u.location FROM unresolved u JOIN packages p ON p.id = u.pkg_id").Scan(&upkg, &upat, &uloc); err != nil ||
		upkg != "lost-1" || upat != "gone>=2" || uloc != "x/gone" {
		t.Errorf("unresolved: %s %s %s %v", upkg, upat, uloc, err)
	}
	var cyc string
	d.QueryRow("SELECT group_concat(p.pkgname, ' ') FROM cycles c JOIN packages p ON p.id = c.pkg_id WHERE c.cycle = 1").Scan(&cyc)
	if cyc != "loop-a-1 loop-b-1" {
		t.Errorf("cycles: %q", cyc)
	}
	meta := map[string]string{}
	rows, _ = d.Query("SELECT key, value FROM meta")
	for rows.Next() {
		var k, v string
		rows.Scan(&k, &v)
		meta[k] = v
	}
	rows.Close()
	for k, v := range map[string]string{"schema_version": strconv.Itoa(db.SchemaVersion), "created": "2023-11-14T22:13:20Z", "inputs": "test.scan",
		"packages": "9", "depends": "8", "unresolved": "1", "cycles": "1", "selected": "9", "history_rows": "0"} {
		if meta[k] != v {
			t.Errorf("meta %s = %q, want %q", k, meta[k], v)
		}
	}
}

// TestSchemaMatchesCreate checks that the written database has exactly the
// schema of db.Create (the index dropped during the bulk insert is back).
func TestSchemaMatchesCreate(t *testing.T) {
	dir := t.TempDir()
	writeSmall(t, filepath.Join(dir, "bulk.db"), nil)
	fresh, err := db.Create(context.Background(), filepath.Join(dir, "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	fresh.Close()
	schema := func(path string) string {
		d := openDB(t, path)
		var s strings.Builder
		rows, err := d.Query("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a, b, c, e string
			rows.Scan(&a, &b, &c, &e)
			s.WriteString(a + " " + b + " " + c + " " + e + "\n")
		}
		return s.String()
	}
	if a, b := schema(filepath.Join(dir, "bulk.db")), schema(filepath.Join(dir, "fresh.db")); a != b {
		t.Errorf("schema differs:\n%s\nwant:\n%s", a, b)
	}
}

func TestHistoryCarriedOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	writeSmall(t, path, nil)
	d := openDB(t, path)
	// pkgsched writes history (and leaves a WAL file behind while open).
	if _, err := d.Exec(`INSERT INTO history (pkgpath, pkgname, finished_at, state, wall_ms, cpu_ms) VALUES
		('x/lib', 'lib-2.1nb3', 1000, 'done', 60000, 90000), ('x/base', 'base-1.0', 2000, 'failed', 5000, 0)`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	_, _, counts := writeSmall(t, path, nil)
	if counts.HistoryRows != 2 {
		t.Errorf("history rows carried: %d, want 2", counts.HistoryRows)
	}
	d = openDB(t, path)
	var n, wall int
	d.QueryRow("SELECT count(*), sum(wall_ms) FROM history").Scan(&n, &wall)
	if n != 2 || wall != 65000 {
		t.Errorf("history after rebuild: %d rows, %d ms", n, wall)
	}
	var meta string
	d.QueryRow("SELECT value FROM meta WHERE key = 'history_rows'").Scan(&meta)
	if meta != "2" {
		t.Errorf("meta history_rows = %q", meta)
	}
}

// TestPullTokensCarriedOver: the registration tokens an operator handed
// to volunteer builders (pkgsched token add) survive a new scan's
// database, revoked ones stay revoked, and the autoscaler's one-session
// tokens of the old run are dropped; sessions and leases are the old
// run's and are not carried.
func TestPullTokensCarriedOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	writeSmall(t, path, nil)
	d := openDB(t, path)
	if _, err := d.Exec(`INSERT INTO pull_tokens (name, hash, labels, one_session, sessions, created_at, revoked_at) VALUES
		('alice', 'aa', 'arch=x86_64', 0, 3, 1000, NULL),
		('bob', 'bb', '', 0, 1, 1000, 2000),
		('vm-1', 'cc', '', 1, 1, 1500, NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(`INSERT INTO pull_sessions (hash, token, worker, info, created_at, last_seen) VALUES ('ss', 'alice', 'pull:alice', '{}', 1000, 1000)`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	writeSmall(t, path, nil)
	d = openDB(t, path)
	var got []string
	rows, err := d.Query("SELECT name, hash, labels, sessions, coalesce(revoked_at, 0) FROM pull_tokens ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, hash, labels string
		var sessions, revoked int64
		rows.Scan(&name, &hash, &labels, &sessions, &revoked)
		got = append(got, fmt.Sprintf("%s %s %q %d %d", name, hash, labels, sessions, revoked))
	}
	rows.Close()
	want := []string{`alice aa "arch=x86_64" 3 0`, `bob bb "" 1 2000`}
	if !slices.Equal(got, want) {
		t.Errorf("tokens after rebuild:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var sessions int
	d.QueryRow("SELECT count(*) FROM pull_sessions").Scan(&sessions)
	if sessions != 0 {
		t.Errorf("%d sessions carried over; a new database starts without", sessions)
	}
}

func TestOldDatabaseSurvivesFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bulk.db")
	writeSmall(t, path, nil)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := resolveText(t, smallScan)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Errorf("%s: the old database changed", what)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: files left behind: %v", what, names)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := WriteDB(ctx, path, g, nil, DBInfo{Now: time.Now()}); err == nil {
		t.Fatal("WriteDB with a cancelled context succeeded")
	}
	unchanged("cancelled")

	// A failed resolution, which runs while the scanned records are
	// written, is returned as it is, early or late.
	boom := errors.New("test.scan:3: boom")
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		g, a, _, err := Build(context.Background(), path, g.Recs, func(context.Context) (*Graph, []int, error) {
			time.Sleep(delay)
			return nil, nil, boom
		}, DBInfo{Now: time.Now()})
		if err != boom || g != nil || a != nil {
			t.Errorf("resolve error after %v: got %v, %v, %v; want the error itself", delay, g, a, err)
		}
		unchanged("resolve error")
	}

	// Something that is not a database is not overwritten either: its
	// history cannot be carried over, so the run fails.
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not a database, but someone's file\n"), 0o644)
	if _, _, err := WriteDB(context.Background(), junk, g, nil, DBInfo{Now: time.Now()}); err == nil || !strings.Contains(err.Error(), "carry over history from "+junk) {
		t.Errorf("overwriting a non-database: %v", err)
	}
	if b, _ := os.ReadFile(junk); string(b) != "not a database, but someone's file\n" {
		t.Error("non-database file changed")
	}
}

func TestWriteDBLimited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	g, err := resolveText(t, smallScan)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := g.SelectPaths(ParseLimited("list", []byte("x/user\n")))
	if err != nil {
		t.Fatal(err)
	}
	_, counts, err := WriteDB(context.Background(), path, g, sel, DBInfo{Limited: "list", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	d := openDB(t, path)
	var names string
	d.QueryRow("SELECT group_concat(pkgname, ' ') FROM packages WHERE selected").Scan(&names)
	if names != "tool-1 user-1" || counts.Selected != 2 {
		t.Errorf("selected %q (%d)", names, counts.Selected)
	}
}

// The scan fixtures must stay valid pbulk records.
func TestSmallScanParses(t *testing.T) {
	recs, err := scan.Parse("small", []byte(smallScan))
	if err != nil || len(recs) != 9 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
}

// TestScanRecordsAndPresolveView checks the two forms of each record: the
// scan_records table holds the input byte for byte, and the presolve view
// gives pbulk-resolve's output, also when the input is itself a presolve
// file (records that come with their DEPENDS line are kept as they are).
func TestScanRecordsAndPresolveView(t *testing.T) {
	dir := t.TempDir()
	concat := func(d *sql.DB, q string) string {
		t.Helper()
		rows, err := d.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s)
		}
		return b.String()
	}

	g, _, _ := writeSmall(t, filepath.Join(dir, "scan.db"), nil)
	d := openDB(t, filepath.Join(dir, "scan.db"))
	if got := concat(d, "SELECT record FROM scan_records ORDER BY pkg_id"); got != smallScan {
		t.Errorf("scan_records differ from the scan:\n%s", got)
	}
	var presolve bytes.Buffer
	if err := g.WritePresolve(&presolve, nil); err != nil {
		t.Fatal(err)
	}
	var rewritten int
	if err := d.QueryRow("SELECT count(*) FROM packages WHERE rewritten_record IS NOT NULL").Scan(&rewritten); err != nil {
		t.Fatal(err)
	}
	if rewritten != 1 { // lost-1, whose gone>=2 does not resolve
		t.Errorf("%d rewritten records, want 1", rewritten)
	}

	// The presolve output as input: every resolved record has its DEPENDS.
	g2, err := resolveText(t, presolve.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteDB(context.Background(), filepath.Join(dir, "presolve.db"), g2, nil, DBInfo{Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	d2 := openDB(t, filepath.Join(dir, "presolve.db"))
	if got := concat(d2, "SELECT record FROM presolve ORDER BY pkg_id"); got != presolve.String() {
		t.Errorf("presolve view of a presolve input differs:\n%s\nwant:\n%s", got, presolve.String())
	}
	var given int
	if err := d2.QueryRow("SELECT count(*) FROM packages WHERE depends_given = 1").Scan(&given); err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(presolve.String(), "\nDEPENDS="); given != want {
		t.Errorf("%d packages with depends_given, want %d", given, want)
	}
}
