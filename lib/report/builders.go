package report

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
)

// BuilderStats is one builder's share of the run (build_state.worker as
// the events name it: local/3, ssh:host/2, slurm/1, pull:alice): the
// builder runs it started and how each ended. It tells an operator which
// machine lost jobs or crashed, and which failures came from one builder.
type BuilderStats struct {
	Worker  string `json:"worker"`
	Jobs    int    `json:"jobs"`    // builder runs started
	Done    int    `json:"done"`    // built (or found up to date)
	Failed  int    `json:"failed"`  // failed, skew or timeout
	Lost    int    `json:"lost"`    // lost with the builder (a host down, a link cut, a preempted machine)
	Crashed int    `json:"crashed"` // the builder crashed or ran out of disk space
	Other   int    `json:"other"`   // interrupted (a stopped run) or still running
	BusyMS  int64  `json:"busy_ms"` // time between starts and their ends
}

// jobEnds maps the event that ends a builder run to the BuilderStats
// field it counts in.
var jobEnds = map[string]func(*BuilderStats){
	"done":    func(b *BuilderStats) { b.Done++ },
	"failed":  func(b *BuilderStats) { b.Failed++ },
	"skew":    func(b *BuilderStats) { b.Failed++ },
	"timeout": func(b *BuilderStats) { b.Failed++ },
	"lost":    func(b *BuilderStats) { b.Lost++ },
	"crash":   func(b *BuilderStats) { b.Crashed++ },
	"nospace": func(b *BuilderStats) { b.Crashed++ },
	"requeue": func(b *BuilderStats) { b.Other++ },
}

// loadBuilders reads the events: each "start" (detail: the worker) and
// the next event of the same package that ends the run. Builders are
// sorted by name.
func loadBuilders(ctx context.Context, d *sql.DB) ([]BuilderStats, error) {
	rows, err := d.QueryContext(ctx, `SELECT at, pkg_id, event, detail FROM events WHERE pkg_id IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	type run struct {
		worker string
		at     int64
	}
	by := map[string]*BuilderStats{}
	open := map[int64]run{}
	stats := func(w string) *BuilderStats {
		if by[w] == nil {
			by[w] = &BuilderStats{Worker: w}
		}
		return by[w]
	}
	for rows.Next() {
		var at, pkg int64
		var ev, detail string
		if err := rows.Scan(&at, &pkg, &ev, &detail); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		if ev == "start" {
			if r, ok := open[pkg]; ok { // a start without an end: counted as interrupted
				stats(r.worker).Other++
			}
			open[pkg] = run{detail, at}
			stats(detail).Jobs++
			continue
		}
		r, ok := open[pkg]
		count := jobEnds[ev]
		if !ok || count == nil {
			continue
		}
		s := stats(r.worker)
		count(s)
		s.BusyMS += max(at-r.at, 0)
		delete(open, pkg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	for _, r := range open {
		stats(r.worker).Other++
	}
	out := make([]BuilderStats, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Worker < out[j].Worker })
	return out, nil
}
