package sched

import (
	"container/heap"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
)

// SimOptions configure Simulate.
type SimOptions struct {
	Workers int
	Order   Order
	User    []bool
	// Dur is every package's true build time in ms: what the virtual
	// clock advances by.
	Dur []int64
	// Est is what the scheduler believes (history); nil means it knows
	// Dur exactly.
	Est []int64
	// State is where the build starts; nil means the graph's initial
	// states. Packages in_processing start again.
	State  []State
	Detail []string
}

// SimResult is what a simulated build took.
type SimResult struct {
	Workers      int     `json:"workers"`
	Order        Order   `json:"order"`
	Jobs         int     `json:"jobs"`          // packages built
	MakespanMS   int64   `json:"makespan_ms"`   // virtual time until the last build ended
	TotalWorkMS  int64   `json:"total_work_ms"` // sum of the built packages' durations
	CriticalMS   int64   `json:"critical_path_ms"`
	LowerBoundMS int64   `json:"lower_bound_ms"` // max(critical path, total work / workers)
	Ratio        float64 `json:"ratio"`          // makespan / lower bound
	Utilisation  float64 `json:"utilisation"`    // total work / (workers × makespan)
}

// Simulate runs the build on a virtual clock with the same Core a real run
// uses: Workers builders, every build succeeding after its Dur. Packages
// that start prefailed (or were decided before, given State) are not
// built.
func Simulate(g *Graph, opt SimOptions) (*SimResult, error) {
	n := g.Len()
	if opt.Workers < 1 {
		return nil, fmt.Errorf("simulate: %d workers; need at least 1", opt.Workers)
	}
	if len(opt.Dur) != n {
		return nil, fmt.Errorf("simulate: %d durations for %d packages", len(opt.Dur), n)
	}
	est := opt.Est
	if est == nil {
		est = opt.Dur
	}
	state, detail := opt.State, opt.Detail
	if state == nil {
		state = slices.Clone(g.Initial)
		detail = slices.Clone(g.Reason)
	}
	if detail == nil {
		detail = make([]string, n)
	}
	core, _ := NewCore(g, Keys(g, est, opt.Order, opt.User), state, detail)

	res := &SimResult{Workers: opt.Workers, Order: opt.Order}
	if res.Order == "" {
		res.Order = OrderPath
	}
	// The lower bound counts only what this simulation builds.
	builds := make([]bool, n)
	for i := range n {
		builds[i] = core.state[i] == Open
		if builds[i] {
			res.TotalWorkMS += opt.Dur[i]
		}
	}
	topo, _ := g.topo()
	path := make([]int64, n)
	for _, i := range topo {
		if !builds[i] {
			continue
		}
		var best int64
		for _, d := range g.Dependents[i] {
			best = max(best, path[d])
		}
		path[i] = best + opt.Dur[i]
		res.CriticalMS = max(res.CriticalMS, path[i])
	}
	res.LowerBoundMS = max(res.CriticalMS, (res.TotalWorkMS+int64(opt.Workers)-1)/int64(opt.Workers))

	var now int64
	var run endHeap
	free := opt.Workers
	for {
		for free > 0 {
			i, ok := core.Pop()
			if !ok {
				break
			}
			free--
			heap.Push(&run, simJob{end: now + opt.Dur[i], node: i})
		}
		if len(run) == 0 {
			break
		}
		j := heap.Pop(&run).(simJob)
		now = j.end
		core.Finish(j.node, Done, "")
		res.Jobs++
		free++
	}
	res.MakespanMS = now
	if res.LowerBoundMS > 0 {
		res.Ratio = float64(res.MakespanMS) / float64(res.LowerBoundMS)
	}
	if res.MakespanMS > 0 {
		res.Utilisation = float64(res.TotalWorkMS) / float64(int64(opt.Workers)*res.MakespanMS)
	}
	return res, nil
}

type simJob struct {
	end  int64
	node int32
}

type endHeap []simJob

func (h endHeap) Len() int { return len(h) }
func (h endHeap) Less(a, b int) bool {
	if h[a].end != h[b].end {
		return h[a].end < h[b].end
	}
	return h[a].node < h[b].node
}
func (h endHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *endHeap) Push(x any)   { *h = append(*h, x.(simJob)) }
func (h *endHeap) Pop() any {
	x := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return x
}

// Lognormal is a heavy-tailed distribution of build times: the median,
// the sigma of the underlying normal, and a cap (as a multiple of the
// median) that stands for a builder's max-time.
type Lognormal struct {
	MedianMS int64
	Sigma    float64
	Cap      float64
	Seed     uint64
}

// DefaultLognormal is the distribution the benchmarks use: a median build
// of one minute, sigma 1.5 (a tenth of the packages take over 6.8 minutes,
// one in a thousand over 1.7 hours) capped at 200 minutes.
var DefaultLognormal = Lognormal{MedianMS: 60_000, Sigma: 1.5, Cap: 200, Seed: 1}

// Generate draws one duration per package, in graph order, from a fixed
// seed: the same graph and distribution always give the same durations.
func (l Lognormal) Generate(n int) []int64 {
	rng := rand.New(rand.NewPCG(l.Seed, 0x5eed))
	out := make([]int64, n)
	limit := float64(l.MedianMS) * l.Cap
	for i := range out {
		v := float64(l.MedianMS) * math.Exp(l.Sigma*rng.NormFloat64())
		if l.Cap > 0 && v > limit {
			v = limit
		}
		out[i] = max(int64(v), 1)
	}
	return out
}

// ReadHistoryCSV reads build durations per pkgpath from a CSV file with
// a header naming at least the columns pkgpath and duration (wall ms),
// and optionally outcome (rows whose outcome is not success are skipped):
// the format of bob's history export. It returns the median per pkgpath.
func ReadHistoryCSV(r io.Reader, name string) (map[string]int64, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: read header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	pc, ok1 := col["pkgpath"]
	dc, ok2 := col["duration"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s:1: header has no pkgpath and duration columns", name)
	}
	oc, hasOutcome := col["outcome"]
	runs := map[string][]int64{}
	line := 1
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(rec) <= max(pc, dc) || (hasOutcome && len(rec) > oc && rec[oc] != "success") {
			continue
		}
		ms, err := strconv.ParseInt(rec[dc], 10, 64)
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("%s:%d: duration %q is not a number of ms", name, line, rec[dc])
		}
		runs[rec[pc]] = append(runs[rec[pc]], ms)
	}
	out := make(map[string]int64, len(runs))
	for p, v := range runs {
		out[p] = median(v)
	}
	return out, nil
}

// ReadHistoryCSVFile is ReadHistoryCSV on a file.
func ReadHistoryCSVFile(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	return ReadHistoryCSV(f, path)
}
