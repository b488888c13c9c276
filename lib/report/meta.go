package report

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/sched"
)

// WriteReport writes pbulk's meta/report: each selected package's
// presolve record, PKG_DEPTH=, BUILD_STATUS= and, for skew and timeout,
// PKGBULK_STATUS=, sorted by PKGNAME. The records are streamed from the
// database (a full tree's are 160 MB), so only the states come from b.
func WriteReport(ctx context.Context, w io.Writer, d *sql.DB, b *Build) error {
	byID := make(map[int64]*Package, len(b.Packages))
	for _, p := range b.Packages {
		byID[p.ID] = p
	}
	rows, err := d.QueryContext(ctx, `SELECT r.pkg_id, r.record FROM presolve r JOIN packages p ON p.id = r.pkg_id WHERE p.selected = 1 ORDER BY r.pkgname`)
	if err != nil {
		return fmt.Errorf("read presolve records: %w", err)
	}
	defer rows.Close()
	bw := bufio.NewWriterSize(w, 1<<16)
	var rec []byte
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &rec); err != nil {
			return fmt.Errorf("read presolve records: %w", err)
		}
		p := byID[id]
		if p == nil {
			// Selected after Load read the table: the database changed
			// under us.
			return fmt.Errorf("package id %d appeared while the report was written", id)
		}
		bw.Write(rec)
		if len(rec) > 0 && rec[len(rec)-1] != '\n' {
			bw.WriteByte('\n')
		}
		fmt.Fprintf(bw, "PKG_DEPTH=%d\nBUILD_STATUS=%s\n", p.Depth, p.Status())
		if p.State == sched.Skew || p.State == sched.Timeout {
			fmt.Fprintf(bw, "PKGBULK_STATUS=%s\n", p.State)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read presolve records: %w", err)
	}
	return bw.Flush()
}

// WritePbuild writes pbulk-build -r's report: PKGNAME|STATUS||DEPTH per
// package in presolve order.
func WritePbuild(w io.Writer, b *Build) error {
	bw := bufio.NewWriter(w)
	for _, p := range b.Packages {
		fmt.Fprintf(bw, "%s|%s||%d\n", p.Name, p.Status(), p.Depth)
	}
	return bw.Flush()
}

// finishOrder returns the packages whose pbulk status is st in the order
// they finished (presolve order among equal or unknown times).
func (b *Build) finishOrder(st string) []*Package {
	var ps []*Package
	for _, p := range b.Packages {
		if p.Status() == st {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		a, c := ps[i].FinishedAt, ps[j].FinishedAt
		if a == 0 || c == 0 {
			return a != 0 && c == 0
		}
		return a < c
	})
	return ps
}

// WriteSuccess writes pbulk's meta/success: the done packages.
func WriteSuccess(w io.Writer, b *Build) error { return writeNames(w, b.finishOrder("done")) }

// WriteError writes pbulk's meta/error: the failed packages (skew and
// timeout included).
func WriteError(w io.Writer, b *Build) error { return writeNames(w, b.finishOrder("failed")) }

func writeNames(w io.Writer, ps []*Package) error {
	bw := bufio.NewWriter(w)
	for _, p := range ps {
		bw.WriteString(p.Name)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Times are the build's start and end as pbulk's status file spells them,
// in loc (pbulk runs date(1), so the build host's local time).
type Times struct {
	StartISO, StartDir, StartEpoch string
	EndISO, EndEpoch               string
}

// TimesIn formats b's start and end in loc.
func (b *Build) TimesIn(loc *time.Location) Times {
	var t Times
	if !b.Start.IsZero() {
		s := b.Start.In(loc)
		t.StartISO = s.Format("2006-01-02 15:04")
		t.StartDir = s.Format("20060102.1504")
		t.StartEpoch = strconv.FormatInt(s.Unix(), 10)
	}
	if !b.End.IsZero() {
		e := b.End.In(loc)
		t.EndISO = e.Format("2006-01-02 15:04")
		t.EndEpoch = strconv.FormatInt(e.Unix(), 10)
	}
	return t
}

// WriteStatus writes pbulk's meta/status (the 2020 layout: the pre-build
// lines, then what the first build client appends, then the end).
func WriteStatus(w io.Writer, b *Build, loc *time.Location) error {
	t := b.TimesIn(loc)
	bw := bufio.NewWriter(w)
	if t.StartISO != "" {
		fmt.Fprintf(bw, "BUILD_START_ISO=%s\nBUILD_START_DIR=%s\nBUILD_START_EPOCHE=%s\n", t.StartISO, t.StartDir, t.StartEpoch)
	}
	fmt.Fprintf(bw, "BASE_URL=%s\nCOMPILER=%s\nPLATFORM=%s\n", b.BaseURL, b.Compiler, b.Platform)
	if t.EndISO != "" {
		fmt.Fprintf(bw, "BUILD_END_ISO=%s\nBUILD_END_EPOCHE=%s\n", t.EndISO, t.EndEpoch)
	}
	return bw.Flush()
}
