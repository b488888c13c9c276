package executor

import (
	"context"
	"math"
	"sync"
)

// CorePool counts the cores of one builder (a machine, an ssh host, a
// pull worker) that the jobs on it were granted, so that the MAKE_JOBS of
// the jobs running there add up to at most its cores times an
// oversubscription factor. Every executor whose slots implement CoreSlot
// keeps one CorePool per builder: Take(ctx, 1) in Acquire, TryTake in
// Grow, Put when the slot is given back.
type CorePool struct {
	mu    sync.Mutex
	cores int // declared cores
	total int // cores × oversubscription: what may be handed out
	used  int
	wake  chan struct{} // closed and replaced whenever cores come back
}

// NewCorePool is a pool for a builder of cores cores (at least 1) whose
// grants may add up to cores × oversubscribe (factors below 1 count as 1).
func NewCorePool(cores int, oversubscribe float64) *CorePool {
	cores = max(cores, 1)
	if oversubscribe < 1 || math.IsNaN(oversubscribe) || math.IsInf(oversubscribe, 0) {
		oversubscribe = 1
	}
	return &CorePool{cores: cores, total: max(int(math.Floor(float64(cores)*oversubscribe)), 1), wake: make(chan struct{})}
}

// Cores is the builder's declared cores.
func (p *CorePool) Cores() int { return p.cores }

// Total is how many cores may be handed out at once (cores × oversubscription).
func (p *CorePool) Total() int { return p.total }

// Free is how many cores are not handed out.
func (p *CorePool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total - p.used
}

// TryTake takes up to n free cores without waiting and returns how many
// it took (0..n).
func (p *CorePool) TryTake(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = max(min(n, p.total-p.used), 0)
	p.used += n
	return n
}

// Take waits until n cores (at most Total) are free and takes them, or
// returns ctx's error.
func (p *CorePool) Take(ctx context.Context, n int) error {
	n = min(max(n, 0), p.total)
	for {
		p.mu.Lock()
		if p.total-p.used >= n {
			p.used += n
			p.mu.Unlock()
			return nil
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Put gives n cores back.
func (p *CorePool) Put(n int) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	p.used = max(p.used-n, 0)
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

// CoreHold is one slot's share of its builder's CorePool: the core it
// was acquired with and what Grow added. A slot embeds it to implement
// CoreSlot's Cores, FreeCores and Grow, and calls Return when it is
// released or retired. The zero CoreHold needs Pool set.
type CoreHold struct {
	Pool *CorePool
	mu   sync.Mutex
	held int
}

// NewCoreHold is a hold on pool of the n cores already taken from it.
func NewCoreHold(pool *CorePool, n int) CoreHold { return CoreHold{Pool: pool, held: n} }

// Cores is the builder's declared cores.
func (h *CoreHold) Cores() int { return h.Pool.Cores() }

// FreeCores is how many more cores Grow could take now.
func (h *CoreHold) FreeCores() int { return h.Pool.Free() }

// Grow takes up to n more of the builder's cores for the slot's job
// without waiting and returns how many it took.
func (h *CoreHold) Grow(n int) int {
	got := h.Pool.TryTake(n)
	h.mu.Lock()
	h.held += got
	h.mu.Unlock()
	return got
}

// Hold records n cores taken from the pool for the slot (in Acquire).
func (h *CoreHold) Hold(n int) {
	h.mu.Lock()
	h.held += n
	h.mu.Unlock()
}

// Held is how many cores the slot holds.
func (h *CoreHold) Held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// Return gives every core the slot holds back to the pool.
func (h *CoreHold) Return() {
	h.mu.Lock()
	n := h.held
	h.held = 0
	h.mu.Unlock()
	h.Pool.Put(n)
}
