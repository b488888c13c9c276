package sched

import (
	"container/heap"
	"slices"
)

// Key is a ready package's priority. Larger keys are served first; equal
// keys are served first-ready first (pbulk's FIFO among equal depths).
type Key struct {
	User   bool  // on the user's priority list or a dependency of one
	Path   int64 // longest remaining path through the package, in estimated ms (0 in pbulk order)
	Weight int64 // pbulk's priority: PBULK_WEIGHT over the package and its transitive dependents
}

func (a Key) greater(b Key) bool {
	if a.User != b.User {
		return a.User
	}
	if a.Path != b.Path {
		return a.Path > b.Path
	}
	return a.Weight > b.Weight
}

// Change is one state change the core decided; the driver commits it to
// the database (or, in a simulation, counts it).
type Change struct {
	Node   int32
	From   State
	To     State
	Detail string
}

// Core is the scheduling state shared by a real run and a simulation: the
// state of every package, how many of its dependencies are unfinished, and
// the ready queue. It does no I/O and never blocks; the driver tells it
// what happened and commits the changes it returns before acting on them.
type Core struct {
	g       *Graph
	key     []Key
	state   []State
	detail  []string
	waiting []int32 // dependencies not yet done
	seq     []uint64
	next    uint64
	ready   readyHeap
	counts  map[State]int
}

// NewCore starts from the given states (a fresh run: the graph's initial
// states; a resumed run: build_state). Packages in_processing go back to
// open (their builder died with the previous run); failures whose
// dependents are still open are propagated again, so a state saved before
// its propagation is repaired. Those changes are returned for the driver
// to commit. Open packages with no unfinished dependency are queued in
// graph (presolve) order.
func NewCore(g *Graph, key []Key, state []State, detail []string) (*Core, []Change) {
	n := g.Len()
	c := &Core{
		g: g, key: key,
		state:   append([]State(nil), state...),
		detail:  append([]string(nil), detail...),
		waiting: make([]int32, n),
		seq:     make([]uint64, n),
		counts:  make(map[State]int),
	}
	c.ready.c = c
	var changes []Change
	for i := range n {
		if c.state[i] == InProcessing {
			c.state[i] = Open
			changes = append(changes, Change{Node: int32(i), From: InProcessing, To: Open, Detail: "requeued after restart"})
		}
	}
	// Prefailed roots first, then failed ones, each in presolve order, as
	// pbulk's start-up does; the first root to reach a package names it.
	for pass := 0; pass < 2; pass++ {
		for i := range n {
			st := c.state[i]
			pre := st == Prefailed || st == IndirectPrefailed
			if st.Failure() && pre == (pass == 0) {
				changes = c.propagate(int32(i), changes)
			}
		}
	}
	for i := range n {
		c.counts[c.state[i]]++
		for _, d := range g.Deps[i] {
			if c.state[d] != Done {
				c.waiting[i]++
			}
		}
	}
	for i := range n {
		if c.state[i] == Open && c.waiting[i] == 0 {
			c.push(int32(i))
		}
	}
	return c, changes
}

// propagate marks every open transitive dependent of root as indirectly
// failed, naming root (or root's own root) in the detail.
func (c *Core) propagate(root int32, changes []Change) []Change {
	to := c.state[root].indirect()
	why := c.g.Name[root]
	if c.state[root] == IndirectPrefailed || c.state[root] == IndirectFailed {
		if c.detail[root] != "" {
			why = c.detail[root]
		}
	}
	stack := append([]int32(nil), c.g.Dependents[root]...)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.state[d] != Open {
			continue
		}
		changes = append(changes, Change{Node: d, From: Open, To: to, Detail: why})
		c.set(d, to, why)
		stack = append(stack, c.g.Dependents[d]...)
	}
	return changes
}

func (c *Core) set(i int32, st State, detail string) {
	if c.counts != nil {
		c.counts[c.state[i]]--
		c.counts[st]++
	}
	c.state[i], c.detail[i] = st, detail
}

func (c *Core) push(i int32) {
	c.seq[i] = c.next
	c.next++
	heap.Push(&c.ready, i)
}

// Ready is the number of queued packages.
func (c *Core) Ready() int { return len(c.ready.n) }

// State returns a package's state and detail.
func (c *Core) State(i int32) (State, string) { return c.state[i], c.detail[i] }

// Count returns how many packages are in st.
func (c *Core) Count(st State) int { return c.counts[st] }

// Peek returns the package Pop would return.
func (c *Core) Peek() (int32, bool) {
	if len(c.ready.n) == 0 {
		return 0, false
	}
	return c.ready.n[0], true
}

// Pop takes the best ready package and marks it in_processing.
func (c *Core) Pop() (int32, bool) {
	if len(c.ready.n) == 0 {
		return 0, false
	}
	i := heap.Pop(&c.ready).(int32)
	c.set(i, InProcessing, "")
	return i, true
}

// PopAccepted takes the best ready package for which accept is true and
// marks it in_processing; the packages it passes over keep their place.
// It is how a slot that does not take every job (executor.Accepter) gets
// the best job it takes.
func (c *Core) PopAccepted(accept func(i int32) bool) (int32, bool) {
	var refused []int32
	defer func() {
		for _, r := range refused {
			heap.Push(&c.ready, r) // seq unchanged: same place as before
		}
	}()
	for len(c.ready.n) > 0 {
		i := heap.Pop(&c.ready).(int32)
		if accept(i) {
			c.set(i, InProcessing, "")
			return i, true
		}
		refused = append(refused, i)
	}
	return 0, false
}

// Readied counts the times a package was queued (became ready or was
// requeued): a driver that kept slots idle because they refused every
// ready job offers them jobs again when it changes.
func (c *Core) Readied() uint64 { return c.next }

// ReadyNodes returns the queued packages, best first.
func (c *Core) ReadyNodes() []int32 {
	out := slices.Clone(c.ready.n)
	slices.SortFunc(out, func(a, b int32) int {
		if c.ready.less(a, b) {
			return -1
		}
		if c.ready.less(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// Requeue puts an in_processing package back to open and queues it
// behind the ready packages of equal priority (a crashed builder or a lost
// worker; pbulk re-opens the job of a dropped client the same way).
func (c *Core) Requeue(i int32, detail string) Change {
	c.set(i, Open, detail)
	c.push(i)
	return Change{Node: i, From: InProcessing, To: Open, Detail: detail}
}

// Finish records the outcome of an in_processing package and returns every
// change: the package itself first, then the dependents it failed. Done
// releases the dependents whose last dependency it was, in pbulk's order.
func (c *Core) Finish(i int32, st State, detail string) []Change {
	from := c.state[i]
	c.set(i, st, detail)
	changes := []Change{{Node: i, From: from, To: st, Detail: detail}}
	if st == Done {
		for _, d := range c.g.Dependents[i] {
			if c.waiting[d]--; c.waiting[d] == 0 && c.state[d] == Open {
				c.push(d)
			}
		}
		return changes
	}
	return c.propagate(i, changes)
}

// readyHeap orders ready nodes by key, then by the time they became ready.
type readyHeap struct {
	c *Core
	n []int32
}

func (h *readyHeap) Len() int           { return len(h.n) }
func (h *readyHeap) Less(a, b int) bool { return h.less(h.n[a], h.n[b]) }
func (h *readyHeap) less(x, y int32) bool {
	kx, ky := h.c.key[x], h.c.key[y]
	if kx != ky {
		return kx.greater(ky)
	}
	return h.c.seq[x] < h.c.seq[y]
}
func (h *readyHeap) Swap(a, b int) { h.n[a], h.n[b] = h.n[b], h.n[a] }
func (h *readyHeap) Push(x any)    { h.n = append(h.n, x.(int32)) }
func (h *readyHeap) Pop() any {
	x := h.n[len(h.n)-1]
	h.n = h.n[:len(h.n)-1]
	return x
}
