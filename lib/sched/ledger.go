package sched

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// ledger writes the scheduler's tables: build_state, events and history.
// Every method is one transaction, committed before the caller acts on it.
type ledger struct {
	d  *sql.DB
	g  *Graph
	st struct {
		start, finish, requeue, event, history, record *sql.Stmt
	}
}

func newLedger(ctx context.Context, d *sql.DB, g *Graph) (*ledger, error) {
	l := &ledger{d: d, g: g}
	prep := func(dst **sql.Stmt, q string) error {
		s, err := d.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		*dst = s
		return nil
	}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&l.st.start, `UPDATE build_state SET state = 'in_processing', detail = '', attempts = attempts + 1,
			worker = ?, started_at = ?, finished_at = NULL, wall_ms = NULL WHERE pkg_id = ?`},
		{&l.st.finish, `UPDATE build_state SET state = ?, detail = ?, finished_at = ?, wall_ms = ?, result = ?,
			crashes = crashes + ? WHERE pkg_id = ?`},
		{&l.st.requeue, `UPDATE build_state SET state = ?, detail = ?, crashes = crashes + ? WHERE pkg_id = ?`},
		{&l.st.event, `INSERT INTO events (at, pkg_id, event, detail) VALUES (?, ?, ?, ?)`},
		{&l.st.history, `INSERT OR REPLACE INTO history (pkgpath, pkgname, finished_at, state, wall_ms, cpu_ms,
			make_jobs, make_jobs_safe, build_wall_ms, build_cpu_ms, stages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&l.st.record, `SELECT record FROM presolve WHERE pkg_id = ?`},
	} {
		if err := prep(p.dst, p.q); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *ledger) close() {
	for _, s := range []*sql.Stmt{l.st.start, l.st.finish, l.st.requeue, l.st.event, l.st.history, l.st.record} {
		if s != nil {
			s.Close()
		}
	}
}

func (l *ledger) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := l.d.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

func (l *ledger) record(ctx context.Context, i int32) ([]byte, error) {
	var rec []byte
	if err := l.st.record.QueryRowContext(ctx, l.g.ID[i]).Scan(&rec); err != nil {
		return nil, fmt.Errorf("read presolve record of %s: %w", l.g.Name[i], err)
	}
	return rec, nil
}

// start records that i was handed to worker.
func (l *ledger) start(ctx context.Context, i int32, worker string, at int64) error {
	return l.tx(ctx, "record start of "+l.g.Name[i], func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, l.st.start).ExecContext(ctx, worker, at, l.g.ID[i]); err != nil {
			return err
		}
		_, err := tx.StmtContext(ctx, l.st.event).ExecContext(ctx, at, l.g.ID[i], "start", worker)
		return err
	})
}

// outcome is what happened to one job, for finish.
type outcome struct {
	at, wallMS int64
	crash      bool   // the builder crashed (counted in crashes)
	result     []byte // pkgrun's JSON result, nil when there is none
	hist       *histRow
	event      string // event of the job itself when not its new state (crash)
}

type histRow struct {
	state         string
	wallMS, cpuMS int64
	makeJobs      int
	makeJobsSafe  string
	buildWall     sql.NullInt64 // the build stage's wall ms
	buildCPU      sql.NullInt64
	stages        sql.NullString // JSON [{"name","wall_ms","cpu_ms"}...]
}

// historyOf is the history row of pkgrun's result res; wallMS is the
// job's wall time.
func historyOf(res *job.Result, wallMS int64) *histRow {
	h := &histRow{state: string(res.Status), wallMS: wallMS, cpuMS: res.CPUMS, makeJobs: res.MakeJobs, makeJobsSafe: res.MakeJobsSafe}
	type stage struct {
		Name   string `json:"name"`
		WallMS int64  `json:"wall_ms"`
		CPUMS  int64  `json:"cpu_ms"`
	}
	var st []stage
	for _, p := range res.Phases {
		st = append(st, stage{p.Name, p.WallMS, p.CPUMS})
		if p.Name == "build" {
			h.buildWall = sql.NullInt64{Int64: p.WallMS, Valid: true}
			h.buildCPU = sql.NullInt64{Int64: p.CPUMS, Valid: true}
		}
	}
	if len(st) > 0 {
		if b, err := json.Marshal(st); err == nil {
			h.stages = sql.NullString{String: string(b), Valid: true}
		}
	}
	return h
}

// finish records changes as one transaction: the job's own change first
// (with its result and history row), then the dependents it failed.
func (l *ledger) finish(ctx context.Context, changes []Change, o outcome) error {
	if len(changes) == 0 {
		return nil
	}
	first := changes[0].Node
	return l.tx(ctx, "record result of "+l.g.Name[first], func(tx *sql.Tx) error {
		ev := tx.StmtContext(ctx, l.st.event)
		crash := 0
		if o.crash {
			crash = 1
		}
		for k, c := range changes {
			id := l.g.ID[c.Node]
			if k == 0 && c.From == InProcessing && c.To != Open {
				var res any
				if o.result != nil {
					res = string(o.result)
				}
				if _, err := tx.StmtContext(ctx, l.st.finish).ExecContext(ctx, string(c.To), c.Detail, o.at, o.wallMS, res, crash, id); err != nil {
					return err
				}
				if o.event != "" {
					if _, err := ev.ExecContext(ctx, o.at, id, o.event, c.Detail); err != nil {
						return err
					}
				}
			} else {
				cr := 0
				if k == 0 {
					cr = crash
					if o.event != "" {
						if _, err := ev.ExecContext(ctx, o.at, id, o.event, c.Detail); err != nil {
							return err
						}
					}
				}
				if _, err := tx.StmtContext(ctx, l.st.requeue).ExecContext(ctx, string(c.To), c.Detail, cr, id); err != nil {
					return err
				}
			}
			name := string(c.To)
			if c.To == Open {
				name = "requeue"
			}
			if _, err := ev.ExecContext(ctx, o.at, id, name, c.Detail); err != nil {
				return err
			}
		}
		if h := o.hist; h != nil {
			if _, err := tx.StmtContext(ctx, l.st.history).ExecContext(ctx, l.g.Path[first], l.g.Name[first], o.at, h.state, h.wallMS, h.cpuMS,
				h.makeJobs, h.makeJobsSafe, h.buildWall, h.buildCPU, h.stages); err != nil {
				return err
			}
		}
		return nil
	})
}

// repair commits the changes NewCore made to saved states (requeued
// in_processing packages, repeated propagation) in one transaction.
func (l *ledger) repair(ctx context.Context, changes []Change, at int64) error {
	return l.tx(ctx, "repair build_state", func(tx *sql.Tx) error {
		up := tx.StmtContext(ctx, l.st.requeue)
		ev := tx.StmtContext(ctx, l.st.event)
		for _, c := range changes {
			id := l.g.ID[c.Node]
			if _, err := up.ExecContext(ctx, string(c.To), c.Detail, 0, id); err != nil {
				return err
			}
			name := string(c.To)
			if c.To == Open {
				name = "requeue"
			}
			if _, err := ev.ExecContext(ctx, at, id, name, c.Detail); err != nil {
				return err
			}
		}
		return nil
	})
}

// reopen commits a retry: the packages back to open, crash counts of the
// retried failures reset.
func (l *ledger) reopen(ctx context.Context, changes []Change, at int64) error {
	return l.tx(ctx, "reopen packages for a retry", func(tx *sql.Tx) error {
		for _, c := range changes {
			id := l.g.ID[c.Node]
			q := `UPDATE build_state SET state = 'open', detail = '', crashes = 0 WHERE pkg_id = ?`
			if c.From == IndirectFailed {
				q = `UPDATE build_state SET state = 'open', detail = '' WHERE pkg_id = ?`
			}
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, l.st.event).ExecContext(ctx, at, id, "retry", string(c.From)); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadStates reads build_state. fresh is true when the table has no row
// for this build set yet.
func loadStates(ctx context.Context, d *sql.DB, g *Graph) (state []State, detail []string, attempts, crashes []int, fresh bool, err error) {
	n := g.Len()
	state = make([]State, n)
	detail = make([]string, n)
	attempts = make([]int, n)
	crashes = make([]int, n)
	idx := make(map[int64]int32, n)
	for i, id := range g.ID {
		idx[id] = int32(i)
	}
	rows, err := d.QueryContext(ctx, `SELECT pkg_id, state, detail, attempts, crashes FROM build_state`)
	if err != nil {
		return nil, nil, nil, nil, false, fmt.Errorf("read build_state: %w", err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id int64
		var s, det string
		var a, c int
		if err := rows.Scan(&id, &s, &det, &a, &c); err != nil {
			return nil, nil, nil, nil, false, fmt.Errorf("read build_state: %w", err)
		}
		i, ok := idx[id]
		if !ok {
			continue
		}
		st, err := ParseState(s)
		if err != nil {
			return nil, nil, nil, nil, false, fmt.Errorf("build_state of %s: %w", g.Name[i], err)
		}
		state[i], detail[i], attempts[i], crashes[i] = st, det, a, c
		seen++
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, nil, false, fmt.Errorf("read build_state: %w", err)
	}
	if seen == 0 {
		return state, detail, attempts, crashes, true, nil
	}
	if seen != n {
		return nil, nil, nil, nil, false, fmt.Errorf("build_state has rows for %d of the %d selected packages: the database was changed under a run (rebuild it with pkgdag, or delete build_state to start over)", seen, n)
	}
	return state, detail, attempts, crashes, false, nil
}

// initStates writes the first build_state rows: every selected package in
// its start state, with propagated indirect-prefailed roots named.
func initStates(ctx context.Context, d *sql.DB, g *Graph, state []State, detail []string, at int64) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create build_state: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO build_state (pkg_id, state, detail) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("create build_state: %w", err)
	}
	defer st.Close()
	for i := range g.Len() {
		if _, err := st.ExecContext(ctx, g.ID[i], string(state[i]), detail[i]); err != nil {
			return fmt.Errorf("create build_state for %s: %w", g.Name[i], err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (at, pkg_id, event, detail) VALUES (?, NULL, 'init', ?)`, at, fmt.Sprintf("%d packages", g.Len())); err != nil {
		return fmt.Errorf("create build_state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create build_state: %w", err)
	}
	return nil
}
