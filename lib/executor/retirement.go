package executor

import (
	"fmt"
	"sync"
)

// Retirement counts the slots of an executor that are still in service:
// a slot whose builder ran out of disk space is retired for the rest of
// the executor's life (see ErrNoSpace), and once every slot is, Acquire
// returns Err at once. Executors with a fixed number of slots (local, ssh,
// Slurm) keep one.
type Retirement struct {
	mu   sync.Mutex
	live int
	last error
	gone chan struct{}
}

// NewRetirement is a count of slots slots, all in service.
func NewRetirement(slots int) *Retirement {
	return &Retirement{live: slots, gone: make(chan struct{})}
}

// Live is the number of slots in service (the executor's Capacity).
func (r *Retirement) Live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

// Retire takes one slot out of service; err is why (its builder's
// *NoSpaceError).
func (r *Retirement) Retire(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = err
	r.live--
	if r.live == 0 {
		close(r.gone)
	}
}

// Gone is closed when every slot is retired.
func (r *Retirement) Gone() <-chan struct{} { return r.gone }

// Err is Acquire's error once every slot is retired; it wraps the last
// slot's error (and so ErrNoSpace).
func (r *Retirement) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Errorf("every slot is out of disk space; last: %w", r.last)
}
