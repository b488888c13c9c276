package statuspage

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/sched"
)

// Snapshot is the JSON the page polls (GET /api/status). Everything in it
// comes from the database and the job directories' logs; the page shows
// it as text. It never holds the store's URL, tokens or pkgrun's settings.
type Snapshot struct {
	Now       int64           `json:"now"`      // unix ms
	Database  string          `json:"database"` // base name of the database file
	Total     int             `json:"total"`
	Started   bool            `json:"started"`
	Counts    Counts          `json:"counts"`
	States    map[string]int  `json:"states"` // every build state
	ETAMS     int64           `json:"eta_ms"`
	Slots     int             `json:"slots"`
	Scheduler *sched.Liveness `json:"scheduler"`
	Message   string          `json:"message"` // the scheduler's liveness in one line
	Builders  []Builder       `json:"builders"`
	Running   []Running       `json:"running"`
	Failures  []Failure       `json:"failures"`
	Breakers  []Breaker       `json:"breakers"` // the failures that stop the most packages
	Timeline  []Span          `json:"timeline"`
	Progress  []Point         `json:"progress"`
}

// Counts are the progress bar's parts.
type Counts struct {
	Done     int `json:"done"`
	UpToDate int `json:"up_to_date"`
	Failed   int `json:"failed"`   // failed, skew, timeout, prefailed
	Indirect int `json:"indirect"` // indirect-failed, indirect-prefailed
	Queued   int `json:"queued"`   // open
	Running  int `json:"running"`  // in_processing
}

// Builder is a worker (build_state.worker, e.g. local/3): what it builds
// now, or that it is idle.
type Builder struct {
	Worker     string `json:"worker"`
	PkgName    string `json:"pkgname,omitempty"`
	Phase      string `json:"phase,omitempty"`
	AgeMS      int64  `json:"age_ms,omitempty"`       // since the job started
	LastBeatMS int64  `json:"last_beat_ms,omitempty"` // since its log last grew (or the job started)
	Jobs       int    `json:"jobs"`                   // jobs it ran, this database
}

// Running is a job in progress, with the tail of its current phase's log.
type Running struct {
	PkgName    string   `json:"pkgname"`
	Comment    string   `json:"comment,omitempty"`
	Worker     string   `json:"worker"`
	Phase      string   `json:"phase,omitempty"`
	AgeMS      int64    `json:"age_ms"`
	EstimateMS int64    `json:"estimate_ms"`
	Tail       []string `json:"tail"`
}

// Failure is a package that failed itself.
type Failure struct {
	PkgName string `json:"pkgname"`
	PkgPath string `json:"pkgpath"`
	Comment string `json:"comment,omitempty"`
	State   string `json:"state"`
	Phase   string `json:"phase,omitempty"`
	Detail  string `json:"detail"`
	Breaks  int    `json:"breaks"`
	Logs    []Link `json:"logs"`
	LogNote string `json:"log_note,omitempty"` // where the logs are when they cannot be linked
}

// Link is a log the page can open (a path on this server).
type Link struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Breaker is a failure and the number of packages it stops.
type Breaker struct {
	PkgName string `json:"pkgname"`
	Breaks  int    `json:"breaks"`
}

// Span is one job on one builder: start to end (0 while running).
type Span struct {
	Worker  string `json:"worker"`
	PkgName string `json:"pkgname"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	State   string `json:"state"` // the event that ended it: done, failed, crash, requeue, ...; running
}

// Point is progress at one time: packages done and failed (directly or
// not) so far.
type Point struct {
	At     int64 `json:"at"`
	Done   int   `json:"done"`
	Failed int   `json:"failed"`
}

// Limits of a snapshot, so a big tree's page stays small.
const (
	maxFailures = 500
	maxSpans    = 2000
	maxPoints   = 400
	maxBreakers = 10
	tailLines   = 40
)

// history accumulates the events table between snapshots (timeline and
// progress), reading only rows newer than the last seen.
type history struct {
	lastID   int64
	names    map[int64]string
	open     map[int64]int // pkg_id -> index of its running span
	spans    []Span
	state    map[int64]string
	done     int
	failed   int
	points   []Point
	jobs     map[string]int
	baseline int // packages failed before anything ran
}

func newHistory() *history {
	return &history{open: map[int64]int{}, state: map[int64]string{}, jobs: map[string]int{}}
}

func failure(ev string) bool {
	switch ev {
	case "failed", "skew", "timeout", "prefailed", "indirect-failed", "indirect-prefailed":
		return true
	}
	return false
}

// update reads the events after h.lastID.
func (h *history) update(ctx context.Context, d *sql.DB) error {
	var maxID int64
	if err := d.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&maxID); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	if maxID < h.lastID || h.names == nil {
		// A new database (pkgdag build replaced it): start over.
		*h = *newHistory()
		h.names = map[int64]string{}
		rows, err := d.QueryContext(ctx, `SELECT id, pkgname FROM packages`)
		if err != nil {
			return fmt.Errorf("read packages: %w", err)
		}
		for rows.Next() {
			var id int64
			var n string
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return fmt.Errorf("read packages: %w", err)
			}
			h.names[id] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read packages: %w", err)
		}
		if err := d.QueryRowContext(ctx, `SELECT COUNT(*) FROM packages WHERE selected = 1 AND initial_state <> 'open'`).Scan(&h.baseline); err != nil {
			return fmt.Errorf("read packages: %w", err)
		}
	}
	rows, err := d.QueryContext(ctx, `SELECT id, at, COALESCE(pkg_id, 0), event, detail FROM events WHERE id > ? ORDER BY id`, h.lastID)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, at, pkg int64
		var ev, detail string
		if err := rows.Scan(&id, &at, &pkg, &ev, &detail); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		h.lastID = id
		if ev == "init" {
			h.failed = h.baseline
			h.points = append(h.points, Point{At: at, Done: h.done, Failed: h.failed})
			continue
		}
		if pkg == 0 {
			continue
		}
		if k, ok := h.open[pkg]; ok && ev != "start" {
			h.spans[k].End, h.spans[k].State = at, ev
			delete(h.open, pkg)
		}
		if ev == "start" {
			if k, ok := h.open[pkg]; ok {
				h.spans[k].End, h.spans[k].State = at, "lost"
			}
			h.open[pkg] = len(h.spans)
			h.spans = append(h.spans, Span{Worker: detail, PkgName: h.names[pkg], Start: at, State: "running"})
			h.jobs[detail]++
			continue
		}
		// Progress: what the package counts as now.
		was := h.state[pkg]
		now := ev
		if ev == "requeue" || ev == "retry" || ev == "crash" || ev == "nospace" {
			now = ""
		}
		if ev == "crash" || ev == "nospace" {
			continue
		}
		if was == now {
			continue
		}
		switch {
		case was == "done":
			h.done--
		case failure(was):
			h.failed--
		}
		switch {
		case now == "done":
			h.done++
		case failure(now):
			h.failed++
		}
		if now == "" {
			delete(h.state, pkg)
		} else {
			h.state[pkg] = now
		}
		if n := len(h.points); n > 0 && h.points[n-1].At == at {
			h.points[n-1].Done, h.points[n-1].Failed = h.done, h.failed
		} else {
			h.points = append(h.points, Point{At: at, Done: h.done, Failed: h.failed})
		}
	}
	return rows.Err()
}

// timeline returns the last spans, open ones ending now.
func (h *history) timeline() []Span {
	s := h.spans
	if len(s) > maxSpans {
		s = s[len(s)-maxSpans:]
	}
	return append([]Span{}, s...)
}

// progress returns at most maxPoints points, evenly thinned, always with
// the last.
func (h *history) progress(now int64) []Point {
	p := h.points
	out := []Point{}
	step := max(1, (len(p)+maxPoints-1)/maxPoints)
	for i := 0; i < len(p); i += step {
		out = append(out, p[i])
	}
	if len(p) > 0 {
		last := p[len(p)-1]
		if out[len(out)-1] != last {
			out = append(out, last)
		}
		out = append(out, Point{At: now, Done: last.Done, Failed: last.Failed})
	}
	return out
}

// comments reads the COMMENT line of the packages' scan records (pbulk's
// scan has none; a scan that adds one shows it), by PKGNAME.
func comments(ctx context.Context, d *sql.DB, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		var rec string
		err := d.QueryRowContext(ctx, `SELECT s.record FROM scan_records s JOIN packages p ON p.id = s.pkg_id WHERE p.pkgname = ?`, n).Scan(&rec)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the scan record of %s: %w", n, err)
		}
		for _, l := range strings.Split(rec, "\n") {
			if c, ok := strings.CutPrefix(l, "COMMENT="); ok {
				out[n] = c
				break
			}
		}
	}
	return out, nil
}

// counts folds the build states into the bar's parts.
func counts(st *sched.Status) Counts {
	c := st.Counts
	return Counts{
		Done: c[sched.Done], UpToDate: st.UpToDate,
		Failed:   c[sched.Failed] + c[sched.Skew] + c[sched.Timeout] + c[sched.Prefailed],
		Indirect: c[sched.IndirectFailed] + c[sched.IndirectPrefailed],
		Queued:   c[sched.Open], Running: c[sched.InProcessing],
	}
}

// breakers returns the failures that stop the most packages.
func breakers(f []sched.FailedPkg) []Breaker {
	out := []Breaker{}
	for _, p := range f {
		if p.Breaks > 0 {
			out = append(out, Breaker{PkgName: p.PkgName, Breaks: p.Breaks})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Breaks > out[b].Breaks })
	if len(out) > maxBreakers {
		out = out[:maxBreakers]
	}
	return out
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
