// Package multi joins several executors into one, so that one run feeds
// local slots, ssh hosts and any other executor at once.
//
// Acquire returns the first slot any member hands out. Each member has a
// pump that starts waiting in the member's Acquire only when the scheduler
// waits in Acquire, and holds at most one slot that the scheduler has not
// taken yet, so a job is still bound to a slot only when the scheduler
// takes it (late binding). A member whose Acquire fails
// (every builder out of disk space, every host given up) drops out; when
// the last one does, Acquire returns its error. Capacity is the members'
// sum; CleanStale and Demand go to every member that implements them.
package multi

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// Executor is several executors as one.
type Executor struct {
	members []executor.Executor
	slots   chan executor.Slot
	want    chan struct{} // one token per waiting Acquire
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	live    int
	lastErr error
	dead    chan struct{} // closed when no member is left
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Cleaner  = (*Executor)(nil)
	_ executor.Demander = (*Executor)(nil)
	_ executor.Grower   = (*Executor)(nil)
)

// New joins members (at least one). Close closes them all.
func New(members ...executor.Executor) (*Executor, error) {
	if len(members) == 0 {
		return nil, errors.New("multi executor: no executors")
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Executor{members: members, slots: make(chan executor.Slot), want: make(chan struct{}),
		ctx: ctx, cancel: cancel, live: len(members), dead: make(chan struct{})}
	for _, m := range members {
		e.wg.Add(1)
		go e.pump(m)
	}
	return e, nil
}

// pump waits for a scheduler in Acquire, then for a slot of m, and hands
// it over; a slot nobody takes any more goes back to m.
func (e *Executor) pump(m executor.Executor) {
	defer e.wg.Done()
	for {
		select {
		case <-e.want:
		case <-e.ctx.Done():
			return
		}
		s, err := m.Acquire(e.ctx)
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			e.mu.Lock()
			e.live--
			e.lastErr = err
			if e.live == 0 {
				close(e.dead)
			}
			e.mu.Unlock()
			return
		}
		select {
		case e.slots <- s:
		case <-e.ctx.Done():
			s.Release()
			return
		}
	}
}

// Acquire returns the first slot of any member.
func (e *Executor) Acquire(ctx context.Context) (executor.Slot, error) {
	for {
		select {
		case s := <-e.slots:
			return s, nil
		case e.want <- struct{}{}:
			// A pump is now waiting for a slot of its member; wake
			// another one too until a slot arrives.
		case <-e.dead:
			e.mu.Lock()
			defer e.mu.Unlock()
			return nil, fmt.Errorf("no executor has slots left; last: %w", e.lastErr)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Capacity is the sum of the members' capacities.
func (e *Executor) Capacity() int {
	n := 0
	for _, m := range e.members {
		n += m.Capacity()
	}
	return n
}

// Owns reports whether a member that is a Cleaner owns worker.
func (e *Executor) Owns(worker string) bool {
	for _, m := range e.members {
		if c, ok := m.(executor.Cleaner); ok && c.Owns(worker) {
			return true
		}
	}
	return false
}

// CleanStale hands the stale jobs to every member that is a Cleaner.
func (e *Executor) CleanStale(ctx context.Context, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	var out []executor.Cleaned
	var errs []error
	for _, m := range e.members {
		c, ok := m.(executor.Cleaner)
		if !ok {
			continue
		}
		var mine []executor.StaleJob
		for _, j := range jobs {
			if c.Owns(j.Worker) {
				mine = append(mine, j)
			}
		}
		if len(mine) == 0 {
			continue
		}
		found, err := c.CleanStale(ctx, mine)
		out = append(out, found...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Demand passes the demand on to every member that wants it.
func (e *Executor) Demand(d executor.Demand) {
	for _, m := range e.members {
		if dm, ok := m.(executor.Demander); ok {
			dm.Demand(d)
		}
	}
}

// MayGrow reports whether any member may get builders it does not have
// now (executor.Grower).
func (e *Executor) MayGrow() bool {
	for _, m := range e.members {
		if g, ok := m.(executor.Grower); ok && g.MayGrow() {
			return true
		}
	}
	return false
}

// Close stops the pumps and closes every member.
func (e *Executor) Close() error {
	e.cancel()
	e.wg.Wait()
	var errs []error
	for _, m := range e.members {
		if err := m.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
