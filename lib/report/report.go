// Package report writes pbulk's report files from the build database, so
// that a pkgbulk run leaves the same meta directory as pbulk's report
// phase (spec build-and-report.md §7) and tools that read pbulk's files
// keep working.
//
// # Files
//
// WriteDir writes these into one directory; each is written to a
// temporary name, fsynced, and renamed into place only after all of them
// were written, so a failure leaves the previous files untouched:
//
//   - report: pbulk's meta/report (create-report.awk): per selected
//     package its complete presolve record, then PKG_DEPTH= and
//     BUILD_STATUS=. pbulk writes the packages in awk hash order; we sort
//     them by PKGNAME so the file is reproducible. RESTRICTED_SUBSET= is
//     not written (pbulk has had nothing but "no" for it since 2009, and
//     the 2026 reports have no such line). pkgbulk's own states skew and
//     timeout are failed builds to pbulk (BUILD_STATUS=failed) and are
//     named in one extra line after BUILD_STATUS, PKGBULK_STATUS=skew or
//     PKGBULK_STATUS=timeout; pbulk's readers ignore keys they do not know.
//   - report.bz2: the same, bzip2-compressed; report.txt links to it
//     under that name (pbulk's 2008-2014 scripts; newer Joyent-derived
//     scripts write report.xz, which no upstream report.txt names).
//   - pbuild: pbulk-build -r's report, "PKGNAME|STATUS||DEPTH" per package
//     in presolve order (the RESTRICTED column has been empty since 2009).
//   - success, error: pbulk's meta/success and meta/error, one PKGNAME a
//     line, in the order the builds finished (as pbulk-build appends
//     them). error holds every failed, skew and timeout package; neither
//     holds prefailed or indirect failures, as in pbulk.
//   - status: BUILD_START_ISO, BUILD_START_DIR, BUILD_START_EPOCHE,
//     BASE_URL, COMPILER, PLATFORM, and once nothing is open or running
//     BUILD_END_ISO and BUILD_END_EPOCHE (pbulk's 2020 file; EPOCHE is
//     pbulk's spelling). Start is the first event or build start in the
//     database, end the last; without any, the database's creation time.
//   - report.txt: create-report-txt.awk's mail body, byte for byte,
//     typos included (see WriteText).
//   - report.html: every unsuccessful package with links to its logs
//     (see WriteHTML).
//   - report.dot: the graph of failures (create-broken-graph.awk; see
//     WriteDot). pbulk's report.svg is not rendered.
//
// # States
//
// build_state holds pkgsched's states (lib/sched); a package without a
// build_state row (no build started yet) has its initial state from
// pkgdag. The pbulk string of each is the state itself, except skew and
// timeout, which are "failed". Only selected packages are reported.
package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
)

// Package is one selected package as the reports need it.
type Package struct {
	ID         int64
	Name       string // PKGNAME
	Location   string // PKG_LOCATION
	Maintainer string
	Depth      int // PKG_DEPTH: distinct transitive dependents + 1
	SkipReason string
	FailReason string
	State      sched.State // pkgsched's state
	Detail     string      // build_state.detail (or pkgdag's initial_detail)
	Worker     string      // build_state.worker: the builder of the last attempt ("" when none)
	WallMS     int64       // wall time of the last build, -1 when unknown
	FinishedAt int64       // unix ms, 0 when unknown
	Result     *job.Result // pkgrun's result of the last attempt, or nil
	Deps       []int       // indexes into Build.Packages, in DEPENDS order

	// Logs are the package's build logs, filled by FindLogs.
	Logs []Log
}

// Status is the package's pbulk status string (spec §3): skew and timeout
// are failed builds to pbulk.
func (p *Package) Status() string {
	switch p.State {
	case sched.Skew, sched.Timeout:
		return string(sched.Failed)
	}
	return string(p.State)
}

// Breaks is the number of packages that transitively depend on p.
func (p *Package) Breaks() int { return p.Depth - 1 }

// Build is what the reports are made of: the selected packages in
// presolve order and the run's times.
type Build struct {
	Packages []*Package
	// Start and End of the build; zero when unknown. End is zero while
	// some package is open or in processing.
	Start, End time.Time

	// Builders are the builders that ran jobs, from the events.
	Builders []BuilderStats

	Platform string // PLATFORM, e.g. "NetBSD 10.0/x86_64"
	Compiler string // COMPILER (PKGSRC_COMPILER)
	BaseURL  string // BASE_URL: report.txt's links
}

// Load reads the selected packages, their states, results and edges, and
// the build's start and end from the database.
func Load(ctx context.Context, d *sql.DB) (*Build, error) {
	b := &Build{}
	rows, err := d.QueryContext(ctx, `SELECT p.id, p.pkgname, p.pkgpath, p.maintainer, p.depth,
		p.skip_reason, p.fail_reason, COALESCE(s.state, p.initial_state),
		CASE WHEN s.pkg_id IS NULL THEN p.initial_detail ELSE s.detail END,
		COALESCE(s.worker, ''), COALESCE(s.wall_ms, -1), COALESCE(s.finished_at, 0), s.result
		FROM packages p LEFT JOIN build_state s ON s.pkg_id = p.id
		WHERE p.selected = 1 ORDER BY p.id`)
	if err != nil {
		return nil, fmt.Errorf("read packages: %w", err)
	}
	defer rows.Close()
	byID := map[int64]int{}
	for rows.Next() {
		p := &Package{}
		var state string
		var result sql.NullString
		if err := rows.Scan(&p.ID, &p.Name, &p.Location, &p.Maintainer, &p.Depth, &p.SkipReason, &p.FailReason,
			&state, &p.Detail, &p.Worker, &p.WallMS, &p.FinishedAt, &result); err != nil {
			return nil, fmt.Errorf("read packages: %w", err)
		}
		if p.State, err = sched.ParseState(state); err != nil {
			return nil, fmt.Errorf("package %s: %w", p.Name, err)
		}
		if result.Valid && result.String != "" {
			var r job.Result
			if err := json.Unmarshal([]byte(result.String), &r); err != nil {
				return nil, fmt.Errorf("package %s: build_state.result: %w", p.Name, err)
			}
			p.Result = &r
		}
		byID[p.ID] = len(b.Packages)
		b.Packages = append(b.Packages, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read packages: %w", err)
	}
	rows.Close()

	err = db.Depends(ctx, d, func(p, dep int64) {
		pi, ok1 := byID[p]
		di, ok2 := byID[dep]
		if ok1 && ok2 {
			b.Packages[pi].Deps = append(b.Packages[pi].Deps, di)
		}
	})
	if err != nil {
		return nil, err
	}

	if err := b.loadTimes(ctx, d); err != nil {
		return nil, err
	}
	if b.Builders, err = loadBuilders(ctx, d); err != nil {
		return nil, err
	}
	return b, nil
}

// loadTimes takes the start from the first event or build start and the
// end from the last event or build end; a database without any (no build
// yet) starts when pkgdag created it.
func (b *Build) loadTimes(ctx context.Context, d *sql.DB) error {
	var first, last sql.NullInt64
	err := d.QueryRowContext(ctx, `SELECT min(t), max(t) FROM (
		SELECT at AS t FROM events
		UNION ALL SELECT started_at FROM build_state WHERE started_at IS NOT NULL
		UNION ALL SELECT finished_at FROM build_state WHERE finished_at IS NOT NULL)`).Scan(&first, &last)
	if err != nil {
		return fmt.Errorf("read build times: %w", err)
	}
	if first.Valid {
		b.Start = time.UnixMilli(first.Int64)
	} else {
		var created string
		err := d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'created'`).Scan(&created)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("read meta: %w", err)
		}
		if t, err := time.Parse(time.RFC3339, created); err == nil {
			b.Start = t
		}
	}
	finished := true
	for _, p := range b.Packages {
		if !p.State.Final() {
			finished = false
			break
		}
	}
	if finished && last.Valid {
		b.End = time.UnixMilli(last.Int64)
	}
	return nil
}

// Counts are report.txt's numbers.
type Counts struct {
	Total             int `json:"total"` // the five below
	Done              int `json:"done"`
	Failed            int `json:"failed"` // including skew and timeout
	IndirectFailed    int `json:"indirect_failed"`
	Prefailed         int `json:"prefailed"`
	IndirectPrefailed int `json:"indirect_prefailed"`
	// Not in pbulk's report.txt:
	Open         int `json:"open"`
	InProcessing int `json:"in_processing"`
	Skew         int `json:"skew"`
	Timeout      int `json:"timeout"`
	UpToDate     int `json:"up_to_date"`
}

// Counts counts packages per pbulk status.
func (b *Build) Counts() Counts {
	var c Counts
	for _, p := range b.Packages {
		switch p.State {
		case sched.Done:
			c.Done++
			if p.Detail == "up-to-date" {
				c.UpToDate++
			}
		case sched.Failed:
			c.Failed++
		case sched.Skew:
			c.Failed++
			c.Skew++
		case sched.Timeout:
			c.Failed++
			c.Timeout++
		case sched.Prefailed:
			c.Prefailed++
		case sched.IndirectFailed:
			c.IndirectFailed++
		case sched.IndirectPrefailed:
			c.IndirectPrefailed++
		case sched.Open:
			c.Open++
		case sched.InProcessing:
			c.InProcessing++
		}
	}
	c.Total = c.Done + c.Failed + c.IndirectFailed + c.Prefailed + c.IndirectPrefailed
	return c
}

// byName returns the packages sorted by PKGNAME (the order in which the
// awk scripts' hash iteration is replaced by something reproducible).
func (b *Build) byName() []*Package {
	ps := append([]*Package(nil), b.Packages...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// RootFailures returns the failed (incl. skew and timeout) packages that
// make p indirect-failed: its failed dependencies, and those of its
// indirect-failed dependencies, recursively (create-report-html.awk's
// compute_direct_failure), sorted by name.
func (b *Build) RootFailures(p *Package) []*Package {
	seen := map[int]bool{}
	roots := map[*Package]bool{}
	var walk func(q *Package)
	walk = func(q *Package) {
		for _, di := range q.Deps {
			if seen[di] {
				continue
			}
			seen[di] = true
			d := b.Packages[di]
			switch d.Status() {
			case "failed":
				roots[d] = true
			case "indirect-failed":
				walk(d)
			}
		}
	}
	walk(p)
	out := make([]*Package, 0, len(roots))
	for r := range roots {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Reason turns a PKG_FAIL_REASON or PKG_SKIP_REASON value into lines the
// way create-report-html.awk prints it: double quotes are dropped, runs of
// spaces outside quotes break the line, and a backslash escapes the next
// character (\n and \t become spaces).
func Reason(s string) []string {
	var lines []string
	var cur strings.Builder
	inQuote, inSep := false, false
	flush := func() {
		if cur.Len() > 0 {
			lines = append(lines, cur.String())
			cur.Reset()
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		if c == '"' {
			inQuote = !inQuote
			continue
		}
		if !inQuote && c == ' ' {
			if !inSep {
				flush()
			}
			inSep = true
			continue
		}
		inSep = false
		if c == '\\' && i+1 < len(rs) {
			i++
			switch rs[i] {
			case 'n', 't':
				cur.WriteByte(' ')
			default:
				cur.WriteRune(rs[i])
			}
			continue
		}
		cur.WriteRune(c)
	}
	flush()
	return lines
}
