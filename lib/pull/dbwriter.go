package pull

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// dbWriter commits the server's lease writes in groups: whatever waits
// when a transaction starts goes into it, so many grants and ends share
// one commit (SQLite's commit, not the statements, is what costs).
type dbWriter struct {
	db    *sql.DB
	ops   chan dbOp
	stmts map[string]*sql.Stmt
	wg    sync.WaitGroup

	mu     sync.RWMutex // held to send; closing takes it exclusively
	closed bool
}

type dbOp struct {
	query string
	args  []any
	scan  []any      // when set: QueryRow(...).Scan(scan...)
	done  chan error // nil: nobody waits (status updates)
}

const maxGroup = 512

var errWriterClosed = errors.New("pull server closed: lease writes stopped")

func newDBWriter(d *sql.DB) *dbWriter {
	w := &dbWriter{db: d, ops: make(chan dbOp, 4096), stmts: map[string]*sql.Stmt{}}
	w.wg.Add(1)
	go w.loop()
	return w
}

// do runs query in the next group and waits for its commit.
func (w *dbWriter) do(ctx context.Context, query string, scan []any, args ...any) error {
	done := make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errWriterClosed
	}
	select {
	case w.ops <- dbOp{query: query, args: args, scan: scan, done: done}:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the write happens: wait for it even if ctx ends, so
	// that the caller knows what the database holds.
	return <-done
}

// later queues query without waiting (last_seen, heartbeat expiries).
func (w *dbWriter) later(query string, args ...any) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return
	}
	select {
	case w.ops <- dbOp{query: query, args: args}:
	default: // a full queue drops a status update; never a grant or an end
	}
}

// close commits what is queued and stops.
func (w *dbWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	w.wg.Wait()
	for _, s := range w.stmts {
		s.Close()
	}
}

func (w *dbWriter) loop() {
	defer w.wg.Done()
	batch := make([]dbOp, 0, maxGroup)
	for op := range w.ops {
		batch = append(batch[:0], op)
		batch = w.drain(batch)
		if len(batch) < 4 {
			// A commit costs far more than a statement: when few
			// writes wait, give the others a moment to join.
			time.Sleep(coalesce)
			batch = w.drain(batch)
		}
		w.commit(batch)
	}
}

// coalesce is how long a small group waits for more writes.
const coalesce = 200 * time.Microsecond

// drain adds what is queued now to batch.
func (w *dbWriter) drain(batch []dbOp) []dbOp {
	for len(batch) < maxGroup {
		select {
		case op, ok := <-w.ops:
			if !ok {
				return batch
			}
			batch = append(batch, op)
		default:
			return batch
		}
	}
	return batch
}

func (w *dbWriter) stmt(q string) (*sql.Stmt, error) {
	if s := w.stmts[q]; s != nil {
		return s, nil
	}
	s, err := w.db.Prepare(q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = s
	return s, nil
}

func (w *dbWriter) commit(batch []dbOp) {
	errs := make([]error, len(batch))
	tx, err := w.db.Begin()
	if err == nil {
		for i, op := range batch {
			s, err := w.stmt(op.query)
			if err != nil {
				errs[i] = err
				continue
			}
			ts := tx.Stmt(s)
			if op.scan != nil {
				errs[i] = ts.QueryRow(op.args...).Scan(op.scan...)
			} else {
				_, errs[i] = ts.Exec(op.args...)
			}
		}
		err = tx.Commit()
	}
	for i, op := range batch {
		e := errs[i]
		if err != nil {
			e = fmt.Errorf("commit: %w", err)
		}
		if op.done != nil {
			op.done <- e
		}
	}
}
