package sched

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/speedup"
)

// DefaultFraction is the parallel share of a package's build time assumed
// when no package of the history was built with more than one job.
const DefaultFraction = 0.5

// Models returns every package's speed-up model (lib/speedup) for the core
// policy, from the history table's last successful builds of its pkgpath
// (make_jobs, the build stage's wall and CPU time): packages whose history
// shows builds with several jobs get their own parallel fraction, the
// others the median fraction of those (DefaultFraction when none) applied
// to their estimated duration dur. A package with MAKE_JOBS_SAFE=no (in
// its scan record, or in the last history row of its pkgpath) gets no
// parallel part: one core.
func Models(ctx context.Context, d *sql.DB, g *Graph, dur []int64) ([]speedup.Model, error) {
	rows, err := d.QueryContext(ctx, `SELECT pkgpath, wall_ms, make_jobs, make_jobs_safe, build_wall_ms, build_cpu_ms
		FROM history WHERE state = 'done' ORDER BY pkgpath, finished_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	obs := map[string][]speedup.Observation{}
	unsafe := map[string]bool{}
	seen := map[string]int{}
	for rows.Next() {
		var path, safe string
		var wall int64
		var jobs int
		var bw, bc sql.NullInt64
		if err := rows.Scan(&path, &wall, &jobs, &safe, &bw, &bc); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		seen[path]++
		if seen[path] == 1 && strings.EqualFold(strings.TrimSpace(safe), "no") {
			unsafe[path] = true
		}
		if seen[path] > historyRuns || !bw.Valid || !bc.Valid {
			continue
		}
		obs[path] = append(obs[path], speedup.Observation{MakeJobs: jobs,
			OtherWallMS: max(wall-bw.Int64, 0), BuildWallMS: bw.Int64, BuildCPUMS: bc.Int64})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	rows.Close()
	noJobs, err := scanUnsafe(ctx, d)
	if err != nil {
		return nil, err
	}
	var fs []float64
	for _, o := range obs {
		if f, ok := speedup.ObservedFraction(o); ok {
			fs = append(fs, f)
		}
	}
	def := DefaultFraction
	if len(fs) > 0 {
		slices.Sort(fs)
		def = fs[len(fs)/2]
	}
	models := make([]speedup.Model, g.Len())
	for i := range models {
		p := g.Path[i]
		switch {
		case unsafe[p] || noJobs[g.ID[i]]:
			models[i] = speedup.Model{SerialMS: dur[i]}
		case len(obs[p]) > 0:
			models[i] = speedup.FitDefault(obs[p], def)
		default:
			models[i] = speedup.FromFraction(dur[i], def)
		}
	}
	return models, nil
}

// scanUnsafe returns the ids of the packages whose scan record says
// MAKE_JOBS_SAFE=no.
func scanUnsafe(ctx context.Context, d *sql.DB) (map[int64]bool, error) {
	rows, err := d.QueryContext(ctx, `SELECT pkg_id, record FROM scan_records
		WHERE instr(char(10) || record, char(10) || 'MAKE_JOBS_SAFE=') > 0`)
	if err != nil {
		return nil, fmt.Errorf("read scan records: %w", err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		var rec string
		if err := rows.Scan(&id, &rec); err != nil {
			return nil, fmt.Errorf("read scan records: %w", err)
		}
		for _, l := range strings.Split(rec, "\n") {
			if v, ok := strings.CutPrefix(l, "MAKE_JOBS_SAFE="); ok {
				out[id] = strings.EqualFold(strings.TrimSpace(v), "no")
			}
		}
	}
	return out, rows.Err()
}
