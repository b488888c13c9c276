package dag

import (
	"math/bits"
	"slices"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// Initial states, as pbulk-build starts (spec build-and-report.md §3).
const (
	StateOpen              = "open"
	StatePrefailed         = "prefailed"
	StateIndirectPrefailed = "indirect-prefailed"
)

// Analysis is what pbulk-build computes at start-up, plus the cycles it
// would refuse to run with.
type Analysis struct {
	// Depth[i] is pbulk's depth: distinct packages depending on i directly
	// or transitively, plus one. Weight[i] is the sum of PBULK_WEIGHT over
	// i and the same dependents. In a limited build a selected package
	// counts selected dependents only, as pbulk does (its presolve file
	// holds just the build set); a package outside the build set counts
	// all its dependents.
	Depth  []int
	Weight []int64
	// State[i] is open, prefailed or indirect-prefailed; Detail[i] says why:
	// the skip or fail reason, the cycle, or the prefailed dependency that
	// makes i indirect-prefailed.
	State  []string
	Detail []string
	// Cycles lists each dependency cycle (a strongly connected component
	// with more than one package, or a package that depends on itself) as
	// package indices in input order.
	Cycles [][]int
	// Selected[i] is true when i is in the build set: every package, or
	// with a limited list the listed packages and their dependency closure.
	Selected []bool
}

// Analyze computes depths, weights, initial states and cycles. limited, when
// non-nil, holds the indices of the packages a limited list asked for.
//
// Cycles: pbulk-build refuses to start when the graph has one. pkgdag
// instead marks every member of a cycle prefailed (it can never be built:
// each member waits for the others) with the cycle as the reason, so all
// its dependents become indirect-prefailed, and the rest of the graph stays
// buildable. Depths count distinct dependents, so a cycle member counts the
// other members but not itself.
func (g *Graph) Analyze(limited []int) *Analysis {
	n := len(g.Pkgs)
	a := &Analysis{
		Depth:    make([]int, n),
		Weight:   make([]int64, n),
		State:    make([]string, n),
		Detail:   make([]string, n),
		Selected: make([]bool, n),
	}
	comp, ncomp := g.components()

	// Members of every component, and cycles.
	members := make([][]int32, ncomp)
	for v := 0; v < n; v++ {
		members[comp[v]] = append(members[comp[v]], int32(v))
	}
	inCycle := make([]int, n) // cycle number + 1, 0 when none
	for c := 0; c < ncomp; c++ {
		m := members[c]
		cyclic := len(m) > 1
		if len(m) == 1 {
			for _, d := range g.Pkgs[m[0]].Deps {
				if d.Pkg == int(m[0]) {
					cyclic = true
				}
			}
		}
		if cyclic {
			cyc := make([]int, len(m))
			for k, v := range m {
				cyc[k] = int(v)
			}
			a.Cycles = append(a.Cycles, cyc)
		}
	}
	slices.SortFunc(a.Cycles, func(x, y []int) int { return x[0] - y[0] })
	for k, cyc := range a.Cycles {
		for _, v := range cyc {
			inCycle[v] = k + 1
		}
	}

	weights := make([]int64, n)
	var odd []int32 // packages whose weight is not the default
	for v := 0; v < n; v++ {
		weights[v] = int64(scan.PbulkWeight(&g.Recs[v]))
		if weights[v] != scan.DefaultPbulkWeight {
			odd = append(odd, int32(v))
		}
	}
	// Selection: everything, or the closure of the limited list.
	var sel []bool
	if limited == nil {
		for v := range a.Selected {
			a.Selected[v] = true
		}
	} else {
		a.Selected = g.Closure(limited)
		sel = a.Selected
	}
	g.depthAndWeight(a, comp, members, weights, odd, sel)

	// Initial states: prefailed roots in input order, then a breadth-first
	// walk over dependents so each indirect one names the first root found.
	rdeps := g.reverse()
	var queue []int32
	for v := 0; v < n; v++ {
		a.State[v] = StateOpen
		skip, _ := g.Recs[v].Get(scan.KeyPkgSkipReason)
		fail := g.FailReason(v)
		switch {
		case skip != "":
			a.State[v], a.Detail[v] = StatePrefailed, "PKG_SKIP_REASON="+skip
		case fail != "":
			a.State[v], a.Detail[v] = StatePrefailed, "PKG_FAIL_REASON="+fail
		case inCycle[v] != 0:
			names := make([]string, 0, len(a.Cycles[inCycle[v]-1]))
			for _, m := range a.Cycles[inCycle[v]-1] {
				names = append(names, g.Pkgs[m].Name)
			}
			a.State[v], a.Detail[v] = StatePrefailed, "dependency cycle: "+strings.Join(names, " ")
		default:
			continue
		}
		queue = append(queue, int32(v))
	}
	root := make([]int32, n)
	for _, v := range queue {
		root[v] = v
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, u := range rdeps[v] {
			if a.State[u] != StateOpen {
				continue
			}
			a.State[u] = StateIndirectPrefailed
			root[u] = root[v]
			a.Detail[u] = g.Pkgs[root[v]].Name
			queue = append(queue, u)
		}
	}
	return a
}

// reverse returns, for each package, the packages that depend on it, in
// input order.
func (g *Graph) reverse() [][]int32 {
	count := make([]int32, len(g.Pkgs))
	for v := range g.Pkgs {
		for _, d := range g.Pkgs[v].Deps {
			count[d.Pkg]++
		}
	}
	flat := make([]int32, 0, sumInt32(count))
	r := make([][]int32, len(g.Pkgs))
	for v := range r {
		r[v] = flat[len(flat) : len(flat) : len(flat)+int(count[v])]
		flat = flat[:len(flat)+int(count[v])]
	}
	for v := range g.Pkgs {
		for _, d := range g.Pkgs[v].Deps {
			r[d.Pkg] = append(r[d.Pkg], int32(v))
		}
	}
	return r
}

func sumInt32(s []int32) int {
	n := 0
	for _, x := range s {
		n += int(x)
	}
	return n
}

// components numbers the strongly connected components of the dependency
// graph (Tarjan, iterative so deep chains cannot exhaust anything). A
// component's number is smaller than those of the components depending on
// it: numbering order is dependencies first.
func (g *Graph) components() (comp []int32, ncomp int) {
	n := len(g.Pkgs)
	const unvisited = -1
	index := make([]int32, n)
	low := make([]int32, n)
	comp = make([]int32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = unvisited
	}
	var stack []int32
	type frame struct {
		v    int32
		next int // next dependency to look at
	}
	var calls []frame
	var counter int32
	for s := 0; s < n; s++ {
		if index[s] != unvisited {
			continue
		}
		calls = append(calls, frame{v: int32(s)})
		index[s], low[s] = counter, counter
		counter++
		stack = append(stack, int32(s))
		onStack[s] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			deps := g.Pkgs[f.v].Deps
			if f.next < len(deps) {
				w := int32(deps[f.next].Pkg)
				f.next++
				if index[w] == unvisited {
					index[w], low[w] = counter, counter
					counter++
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{v: w})
				} else if onStack[w] && index[w] < low[f.v] {
					low[f.v] = index[w]
				}
				continue
			}
			v := f.v
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = int32(ncomp)
					if w == v {
						break
					}
				}
				ncomp++
			}
		}
	}
	return comp, ncomp
}

// bitset is a set of package indices.
type bitset []uint64

func (b bitset) set(i int32)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) has(i int32) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) or(c bitset) {
	for k := range c {
		b[k] |= c[k]
	}
}

// countAnd counts the bits of b that are also in mask (all when mask is
// nil).
func (b bitset) countAnd(mask bitset) int {
	n := 0
	if mask == nil {
		for _, w := range b {
			n += bits.OnesCount64(w)
		}
		return n
	}
	for k, w := range b {
		n += bits.OnesCount64(w & mask[k])
	}
	return n
}

// depthAndWeight fills Depth and Weight. Components are visited dependents
// first; each carries the set of its transitive dependents and pushes it,
// plus its own members, into its dependencies, then releases it. Only the
// sets of components still waiting for a dependent are alive at a time.
//
// Set bits are positions in that visiting order rather than package
// indices: every dependent of a component comes before it, so a set only
// ever uses the words below the component's own position. Each set also
// keeps the range of words that may be non-zero, and unions, counts and
// clears touch that range only: most packages have few dependents, close
// together in the visiting order, so most sets span a few words of the
// 450 a full set has.
func (g *Graph) depthAndWeight(a *Analysis, comp []int32, members [][]int32, weights []int64, odd []int32, sel []bool) {
	n := len(g.Pkgs)
	pos := make([]int32, n)                // package -> position
	start := make([]int32, len(members)+1) // component (in visiting order) -> first position
	var next int32
	for k, c := 0, len(members)-1; c >= 0; k, c = k+1, c-1 {
		start[k] = next
		for _, v := range members[c] {
			pos[v] = next
			next++
		}
	}
	start[len(members)] = next
	wpos := make([]int64, n)
	for v := range pos {
		wpos[pos[v]] = weights[v]
	}
	oddPos := make([]int32, len(odd))
	for k, v := range odd {
		oddPos[k] = pos[v]
	}

	words := (n + 63) / 64
	// mask holds the selected positions in a limited build. Selection is
	// closed under dependencies, so a component is selected or not as a
	// whole, and only selected components use the mask.
	var mask bitset
	if sel != nil {
		mask = make(bitset, words)
		for v, ok := range sel {
			if ok {
				mask.set(pos[v])
			}
		}
	}
	// Released sets are cleared over their range, so get hands out zeroed
	// sets without clearing all their words.
	var free []bitset
	get := func() bitset {
		if k := len(free); k > 0 {
			b := free[k-1]
			free = free[:k-1]
			return b
		}
		return make(bitset, words)
	}
	sets := make([]bitset, len(members))
	// lo[c], hi[c]: the words of sets[c] that may be non-zero, [lo, hi).
	lo := make([]int32, len(members))
	hi := make([]int32, len(members))
	for k, c := 0, len(members)-1; c >= 0; k, c = k+1, c-1 {
		anc := sets[c]
		sets[c] = nil
		l, h := lo[c], hi[c]
		if anc == nil {
			anc = get()
			l, h = 0, 0
		}
		// Dependents all sit below this component's first position, in
		// words [l, h).
		used := anc[l:h]
		var only bitset // restricts counting to the build set
		if mask != nil && sel[members[c][0]] {
			only = mask[l:h]
		}
		count := used.countAnd(only)
		// Weight of the dependents: default weight times their number,
		// corrected for the packages with another weight. Walk whichever
		// is shorter: the odd list or the set bits.
		var wsum int64
		if len(oddPos) < count {
			wsum = int64(count) * scan.DefaultPbulkWeight
			for _, u := range oddPos {
				if u < start[k] && anc.has(u) && (mask == nil || only == nil || mask.has(u)) {
					wsum += wpos[u] - scan.DefaultPbulkWeight
				}
			}
		} else {
			for wi, w := range used {
				if only != nil {
					w &= only[wi]
				}
				for w != 0 {
					t := bits.TrailingZeros64(w)
					wsum += wpos[(int(l)+wi)*64+t]
					w &= w - 1
				}
			}
		}
		m := members[c]
		var mw int64
		for _, v := range m {
			mw += weights[v]
		}
		for _, v := range m {
			// Other members of a cycle depend on v; v itself does not count.
			a.Depth[v] = count + len(m) - 1 + 1
			a.Weight[v] = wsum + mw
		}
		// Push the dependents and the members into the dependencies
		// outside the component.
		for i := start[k]; i < start[k+1]; i++ {
			anc.set(i)
		}
		first, last := start[k]>>6, (start[k+1]-1)>>6+1
		if h == l {
			l, h = first, last
		} else {
			l, h = min(l, first), max(h, last)
		}
		push := anc[l:h]
		for _, v := range m {
			for _, d := range g.Pkgs[v].Deps {
				dc := comp[d.Pkg]
				if dc == int32(c) {
					continue
				}
				if sets[dc] == nil {
					sets[dc] = get()
					lo[dc], hi[dc] = l, h
				} else {
					lo[dc], hi[dc] = min(lo[dc], l), max(hi[dc], h)
				}
				sets[dc][l:h].or(push)
			}
		}
		clear(push)
		free = append(free, anc)
	}
}
