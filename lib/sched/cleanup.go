package sched

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// cleanStale hands the jobs that were in_processing when the last
// scheduler died to the executor, when it is an executor.Cleaner, to
// remove what their builders left (their job directories), and records an
// event "cleanup" for each removal. What the executor could not remove is
// reported on log and does not stop the run.
func cleanStale(ctx context.Context, d *sql.DB, g *Graph, ex executor.Executor, log io.Writer, at int64) error {
	c, ok := ex.(executor.Cleaner)
	if !ok {
		return nil
	}
	idx := make(map[int64]int32, g.Len())
	for i, id := range g.ID {
		idx[id] = int32(i)
	}
	rows, err := d.QueryContext(ctx, `SELECT pkg_id, worker, COALESCE(started_at, 0) FROM build_state WHERE state = 'in_processing'`)
	if err != nil {
		return fmt.Errorf("read build_state: %w", err)
	}
	var jobs []executor.StaleJob
	ids := map[string]int64{}
	for rows.Next() {
		var id, started int64
		var worker string
		if err := rows.Scan(&id, &worker, &started); err != nil {
			rows.Close()
			return fmt.Errorf("read build_state: %w", err)
		}
		i, ok := idx[id]
		if !ok {
			continue
		}
		jobs = append(jobs, executor.StaleJob{PkgName: g.Name[i], Worker: worker, Started: time.UnixMilli(started)})
		ids[g.Name[i]] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read build_state: %w", err)
	}
	if len(jobs) == 0 {
		return nil
	}
	if log == nil {
		log = io.Discard
	}
	found, err := c.CleanStale(ctx, jobs)
	if err != nil {
		fmt.Fprintf(log, "pkgsched: cleaning up after the jobs of the last run: %v\n", err)
	}
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record cleanup: %w", err)
	}
	defer tx.Rollback()
	for _, f := range found {
		if f.Err != nil {
			fmt.Fprintf(log, "pkgsched: kept %s, left by %s when the last run was killed: %v\n", f.Path, f.PkgName, f.Err)
			continue
		}
		fmt.Fprintf(log, "pkgsched: removed %s, left by %s when the last run was killed\n", f.Path, f.PkgName)
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (at, pkg_id, event, detail) VALUES (?, ?, 'cleanup', ?)`, at, ids[f.PkgName], f.Path); err != nil {
			return fmt.Errorf("record cleanup: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record cleanup: %w", err)
	}
	return nil
}
