package sched

import (
	"container/heap"
	"fmt"
	"slices"

	"github.com/pkgbulk/pkgbulk/lib/speedup"
)

// CorePolicy decides a job's MAKE_JOBS from the remaining critical path:
// while the build is bound by its longest chain (the remaining work spread
// over all cores would end before the chain does), the jobs on or near that
// chain get the cores their speed-up model can use (down to MinEff of
// efficiency per core), and other jobs more than one only when cores would
// otherwise idle (fewer ready jobs than free cores); while the build is
// bound by its work every job gets one core: parallel make costs
// throughput (Amdahl), so it is spent only where it shortens the build. A model
// without a parallel part (MAKE_JOBS_SAFE=no) always gets one.
type CorePolicy struct {
	// MinEff is the least speed-up per core worth granting (default 0.5).
	MinEff float64
	// Near is how close to the longest remaining path (as a fraction of
	// it) a job must be to count as critical (default 0.8).
	Near float64
}

func (p CorePolicy) withDefaults() CorePolicy {
	if p.MinEff <= 0 {
		p.MinEff = 0.5
	}
	if p.Near <= 0 {
		p.Near = 0.8
	}
	return p
}

// Grant is the MAKE_JOBS for a job with model m and remaining path path
// (its own one-core time and the longest chain behind it), at most limit
// (the free cores of the builder it goes to), when the longest remaining
// path of the build is longest, spare cores would idle otherwise, and
// workBound says the remaining work, not the chain, bounds the build.
func (p CorePolicy) Grant(m speedup.Model, path, longest int64, limit, spare int, workBound bool) int {
	p = p.withDefaults()
	if limit <= 1 {
		return 1
	}
	best := m.Best(limit, p.MinEff)
	if best <= 1 {
		return 1
	}
	if !workBound && float64(path) >= p.Near*float64(longest) {
		return best
	}
	if spare > 0 && !workBound {
		return min(best, 1+spare)
	}
	return 1
}

// CoreSimOptions configure SimulateCores.
type CoreSimOptions struct {
	Builders int // builders
	Cores    int // cores of each builder
	// Oversubscribe lets the MAKE_JOBS granted on a builder add up to
	// Cores × Oversubscribe (at least 1; default 1).
	Oversubscribe float64
	// Models gives every package's time against its MAKE_JOBS.
	Models []speedup.Model
	// OneCorePerJob is the baseline: Builders × Cores slots, MAKE_JOBS=1.
	OneCorePerJob bool
	Policy        CorePolicy
}

// CoreSimResult is what SimulateCores found.
type CoreSimResult struct {
	Builders      int     `json:"builders"`
	Cores         int     `json:"cores_per_builder"`
	OneCorePerJob bool    `json:"one_core_per_job"`
	Jobs          int     `json:"jobs"`
	MakespanMS    int64   `json:"makespan_ms"`
	CriticalMS    int64   `json:"critical_path_one_core_ms"` // the longest chain with MAKE_JOBS=1
	WorkMS        int64   `json:"work_one_core_ms"`          // the one-core times summed
	Multi         int     `json:"jobs_given_more_cores"`     // jobs granted MAKE_JOBS > 1
	MaxGranted    int     `json:"max_granted"`               // the largest MAKE_JOBS granted
	PeakUsed      int     `json:"peak_cores_used"`           // most cores granted on one builder at once
	Utilisation   float64 `json:"utilisation"`               // core-time of the jobs / (cores × makespan)
	PathOverMS    float64 `json:"makespan_over_critical"`    // makespan / CriticalMS
	MakeJobsByJob []int   `json:"-"`                         // each package's grant (0: not built)
}

type coreJob struct {
	end     int64
	node    int32
	builder int
	n       int
}

type coreHeap []coreJob

func (h coreHeap) Len() int { return len(h) }
func (h coreHeap) Less(a, b int) bool {
	if h[a].end != h[b].end {
		return h[a].end < h[b].end
	}
	return h[a].node < h[b].node
}
func (h coreHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *coreHeap) Push(x any)   { *h = append(*h, x.(coreJob)) }
func (h *coreHeap) Pop() any {
	x := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return x
}

// SimulateCores runs the build on a virtual clock with builders of several
// cores each: jobs are packed so that the MAKE_JOBS granted on a builder
// never add up to more than its cores (times Oversubscribe), the best
// ready job (longest remaining path, as in a real run) first, on the
// builder with the most free cores, and each job's MAKE_JOBS is chosen by
// the policy (or 1 for OneCorePerJob).
func SimulateCores(g *Graph, opt CoreSimOptions) (*CoreSimResult, error) {
	n := g.Len()
	if opt.Builders < 1 || opt.Cores < 1 {
		return nil, fmt.Errorf("simulate: %d builders of %d cores; need at least 1 of 1", opt.Builders, opt.Cores)
	}
	if len(opt.Models) != n {
		return nil, fmt.Errorf("simulate: %d models for %d packages", len(opt.Models), n)
	}
	over := max(opt.Oversubscribe, 1)
	capacity := max(int(float64(opt.Cores)*over), 1)
	one := make([]int64, n)
	for i, m := range opt.Models {
		one[i] = max(m.Time(1), 1)
	}
	keys := Keys(g, one, OrderPath, nil)
	core, _ := NewCore(g, keys, slices.Clone(g.Initial), slices.Clone(g.Reason))
	res := &CoreSimResult{Builders: opt.Builders, Cores: opt.Cores, OneCorePerJob: opt.OneCorePerJob, MakeJobsByJob: make([]int, n)}
	for i := range n {
		if core.state[i] == Open {
			res.WorkMS += one[i]
			res.CriticalMS = max(res.CriticalMS, keys[i].Path)
		}
	}
	builders, slots := opt.Builders, capacity
	if opt.OneCorePerJob {
		builders, slots = opt.Builders*opt.Cores, 1
	}
	free := make([]int, builders)
	for b := range free {
		free[b] = slots
	}
	totalFree := builders * slots
	var now, used int64
	var run coreHeap
	pending := res.WorkMS // one-core work not started yet
	longest := func() int64 {
		var l int64
		if i, ok := core.Peek(); ok {
			l = keys[i].Path
		}
		for _, j := range run {
			l = max(l, j.end-now+keys[j.node].Path-one[j.node])
		}
		return l
	}
	for {
		for core.Ready() > 0 {
			b := 0
			for k := range free {
				if free[k] > free[b] {
					b = k
				}
			}
			if free[b] == 0 {
				break
			}
			i, _ := core.Peek()
			grant := 1
			if !opt.OneCorePerJob {
				spare := totalFree - core.Ready()
				l := longest()
				work := pending
				for _, j := range run {
					work += (j.end - now) * int64(j.n)
				}
				bound := work/int64(opt.Builders*opt.Cores) >= l
				grant = opt.Policy.Grant(opt.Models[i], keys[i].Path, l, free[b], spare, bound)
			}
			pending -= one[i]
			core.Pop()
			free[b] -= grant
			totalFree -= grant
			res.PeakUsed = max(res.PeakUsed, slots-free[b])
			if free[b] < 0 {
				return nil, fmt.Errorf("simulate: builder %d over its %d cores", b, slots)
			}
			if grant > 1 {
				res.Multi++
			}
			res.MaxGranted = max(res.MaxGranted, grant)
			res.MakeJobsByJob[i] = grant
			d := opt.Models[i].Time(grant)
			used += d * int64(grant)
			heap.Push(&run, coreJob{end: now + d, node: i, builder: b, n: grant})
		}
		if len(run) == 0 {
			break
		}
		j := heap.Pop(&run).(coreJob)
		now = j.end
		free[j.builder] += j.n
		totalFree += j.n
		core.Finish(j.node, Done, "")
		res.Jobs++
	}
	res.MakespanMS = now
	if now > 0 {
		res.Utilisation = float64(used) / float64(int64(opt.Builders*opt.Cores)*now)
	}
	if res.CriticalMS > 0 {
		res.PathOverMS = float64(res.MakespanMS) / float64(res.CriticalMS)
	}
	return res, nil
}
