package sched

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is a snapshot of a build database, for pkgsched status.
type Status struct {
	Total    int           `json:"total"`
	Started  bool          `json:"started"` // build_state exists
	Counts   map[State]int `json:"counts"`
	UpToDate int           `json:"up_to_date"`
	Running  []RunningJob  `json:"running"`
	Slots    int           `json:"slots"`  // of the last run (meta pkgsched.slots)
	ETAMS    int64         `json:"eta_ms"` // estimated time until everything is decided
	// Failed lists the packages that failed themselves (failed, skew,
	// timeout, prefailed), in package order, with how many packages
	// their failure stops.
	Failed    []FailedPkg `json:"failed"`
	Scheduler *Liveness   `json:"scheduler"`
}

// FailedPkg is a package that did not build by its own fault.
type FailedPkg struct {
	PkgName string `json:"pkgname"`
	PkgPath string `json:"pkgpath"`
	State   State  `json:"state"`
	Phase   string `json:"phase,omitempty"` // the failed phase (failed, timeout)
	Detail  string `json:"detail"`
	Breaks  int    `json:"breaks"` // indirect failures naming it as their root
}

// FailedPhase returns the phase named by a failed package's detail: the
// detail's first word, before a colon ("build: exit status 2"); "" for
// states whose detail names no phase.
func FailedPhase(st State, detail string) string {
	switch st {
	case Failed, Timeout:
	default:
		return ""
	}
	p, _, _ := strings.Cut(detail, ":")
	if p == "" || strings.ContainsAny(p, " \t") {
		return ""
	}
	return p
}

// RunningJob is a package in_processing.
type RunningJob struct {
	PkgName    string `json:"pkgname"`
	Worker     string `json:"worker"`
	StartedAt  int64  `json:"started_at"` // unix ms
	AgeMS      int64  `json:"age_ms"`
	EstimateMS int64  `json:"estimate_ms"` // expected duration from history
}

// ReadStatus reads the counts per state and the running jobs, and
// estimates the time left by simulating the rest of the build (same core,
// virtual clock) with the last run's slots and the durations learned from
// history; a running job counts with what is left of its estimate.
func ReadStatus(ctx context.Context, d *sql.DB, now time.Time) (*Status, error) {
	g, err := LoadGraph(ctx, d)
	if err != nil {
		return nil, err
	}
	state, detail, _, _, fresh, err := loadStates(ctx, d, g)
	if err != nil {
		return nil, err
	}
	st := &Status{Total: g.Len(), Started: !fresh, Counts: map[State]int{}, Running: []RunningJob{}}
	if fresh {
		state, detail = slices.Clone(g.Initial), slices.Clone(g.Reason)
	}
	breaks := map[string]int{}
	for i, s := range state {
		st.Counts[s]++
		if s == Done && detail[i] == "up-to-date" {
			st.UpToDate++
		}
		if s == IndirectFailed || s == IndirectPrefailed {
			breaks[detail[i]]++
		}
	}
	st.Failed = []FailedPkg{}
	for i, s := range state {
		if s == Failed || s == Skew || s == Timeout || s == Prefailed {
			st.Failed = append(st.Failed, FailedPkg{PkgName: g.Name[i], PkgPath: g.Path[i], State: s,
				Phase: FailedPhase(s, detail[i]), Detail: detail[i], Breaks: breaks[g.Name[i]]})
		}
	}
	if st.Scheduler, err = ReadLiveness(ctx, d, now); err != nil {
		return nil, err
	}
	var slots string
	err = d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'pkgsched.slots'`).Scan(&slots)
	if err != nil && err != sql.ErrNoRows {
		return nil, fmt.Errorf("read meta: %w", err)
	}
	st.Slots, _ = strconv.Atoi(slots)
	hist, err := HistoryDurations(ctx, d)
	if err != nil {
		return nil, err
	}
	dur := Durations(g, hist)
	idx := make(map[int64]int32, g.Len())
	for i, id := range g.ID {
		idx[id] = int32(i)
	}
	rows, err := d.QueryContext(ctx, `SELECT pkg_id, worker, COALESCE(started_at, 0) FROM build_state WHERE state = 'in_processing' ORDER BY started_at`)
	if err != nil {
		return nil, fmt.Errorf("read build_state: %w", err)
	}
	defer rows.Close()
	left := slices.Clone(dur)
	for rows.Next() {
		var id, at int64
		var w string
		if err := rows.Scan(&id, &w, &at); err != nil {
			return nil, fmt.Errorf("read build_state: %w", err)
		}
		i, ok := idx[id]
		if !ok {
			continue
		}
		age := max(now.UnixMilli()-at, 0)
		st.Running = append(st.Running, RunningJob{PkgName: g.Name[i], Worker: w, StartedAt: at, AgeMS: age, EstimateMS: dur[i]})
		left[i] = max(dur[i]-age, 1000)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read build_state: %w", err)
	}
	w := st.Slots
	if w < 1 {
		w = max(1, len(st.Running))
	}
	sim, err := Simulate(g, SimOptions{Workers: w, Dur: left, State: state, Detail: detail})
	if err != nil {
		return nil, err
	}
	st.ETAMS = sim.MakespanMS
	if left := st.Counts[Open] + st.Counts[InProcessing]; left > 0 && st.Started && !st.Scheduler.Alive {
		st.Scheduler.Resume = fmt.Sprintf("%d packages are left: run 'pkgsched run --db DB' again, with the options of the run that stopped, to resume (what shows as running is started again)", left)
	}
	return st, nil
}

// WriteFailures prints the failed packages for pkgsched status, one a
// line: name, state, failed phase, and how many packages the failure
// stops; a prefailed package's reason is left to pkgsched report.
func (st *Status) WriteFailures(w io.Writer) error {
	if len(st.Failed) == 0 {
		return nil
	}
	fmt.Fprintf(w, "failed (%d):\n", len(st.Failed))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range st.Failed {
		what := string(f.State)
		switch {
		case f.Phase != "":
			what += " in " + f.Phase
		case f.State == Skew && f.Detail != "":
			what += ": " + f.Detail
		}
		breaks := ""
		if f.Breaks > 0 {
			breaks = fmt.Sprintf("breaks %d", f.Breaks)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.PkgName, oneLine(what), breaks)
	}
	return tw.Flush()
}

// WriteLiveness prints whether a scheduler is running and, when none is
// and work is left, how to resume; dbPath fills in the command.
func (st *Status) WriteLiveness(w io.Writer, dbPath string) error {
	l := st.Scheduler
	if l == nil || !l.Known {
		return nil
	}
	if _, err := fmt.Fprintln(w, l.Message()); err != nil {
		return err
	}
	if l.Alive {
		return nil
	}
	left := st.Counts[Open] + st.Counts[InProcessing]
	if left == 0 {
		return nil
	}
	if n := st.Counts[InProcessing]; n > 0 {
		fmt.Fprintf(w, "the %d jobs shown as running are not: they are started again by the next run\n", n)
	}
	_, err := fmt.Fprintf(w, "to resume (%d packages left): pkgsched run --db %s, with the options of the run that stopped\n", left, dbPath)
	return err
}

// oneLine cuts s at its first line break, for a table row.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
