package sched

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
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
	for i, s := range state {
		st.Counts[s]++
		if s == Done && detail[i] == "up-to-date" {
			st.UpToDate++
		}
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
	return st, nil
}
