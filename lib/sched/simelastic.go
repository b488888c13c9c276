package sched

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// ElasticSimOptions configure SimulateElastic.
type ElasticSimOptions struct {
	// Policy is the autoscaler's (lib/autoscale), as pkgsched run uses
	// it: Max builders of Policy.Slots slots each, Boot, Idle, Budget,
	// Spot and PreemptLimit.
	Policy autoscale.Policy
	// Dur is every package's true build time in ms; Est what the
	// scheduler believes (nil: Dur).
	Dur, Est []int64
	// SpotLoss is how often a spot builder is taken back, per builder
	// hour (exponential; 0: never). Its jobs are lost and requeued.
	SpotLoss float64
	Seed     uint64
	// MinBill is the least builder time a machine is billed for, however
	// early it stops (EC2: 60s per instance start; 0: none, billed from
	// start to stop).
	MinBill time.Duration
}

// ElasticSimResult is what an elastic build took, beside a fixed pool of
// Max builders (no boot, never stopped) on the same durations.
type ElasticSimResult struct {
	Max          int     `json:"max_builders"`
	Min          int     `json:"min_builders"`
	BootMS       int64   `json:"boot_ms"`
	IdleMS       int64   `json:"idle_timeout_ms"`
	Spot         bool    `json:"spot"`
	SpotLoss     float64 `json:"spot_loss_per_hour"`
	Jobs         int     `json:"jobs"`
	Left         int     `json:"left"` // packages not built when the budget ran out
	MakespanMS   int64   `json:"makespan_ms"`
	MinBillMS    int64   `json:"min_bill_ms"`       // least time billed per machine
	BilledMS     int64   `json:"builder_ms"`        // builder time billed: from start to stop, at least MinBillMS
	BusyMS       int64   `json:"busy_ms"`           // slot time running jobs (lost ones too)
	IdleSlotMS   int64   `json:"idle_ms"`           // slot time of booted builders without a job
	BootingMS    int64   `json:"booting_ms"`        // builder time spent booting
	MinBillExtra int64   `json:"min_bill_extra_ms"` // billed after machines stopped early, to make up MinBillMS
	SpotMS       int64   `json:"spot_builder_ms"`   // billed time of spot builders
	IdleShare    float64 `json:"idle_share"`        // IdleSlotMS / billed slot time
	BootShare    float64 `json:"boot_share"`        // BootingMS / BilledMS
	Started      int     `json:"builders_started"`  // machines started in all
	Peak         int     `json:"peak_builders"`
	Preempted    int     `json:"jobs_preempted"`
	OnDemandJobs int     `json:"jobs_sent_on_demand"` // jobs preempted PreemptLimit times
	LostMS       int64   `json:"lost_work_ms"`        // work of preempted jobs thrown away
	BudgetSpent  bool    `json:"budget_spent"`

	FixedMakespanMS int64   `json:"fixed_makespan_ms"` // Max builders all the time
	FixedBilledMS   int64   `json:"fixed_builder_ms"`
	FixedIdleShare  float64 `json:"fixed_idle_share"`
	MakespanRatio   float64 `json:"makespan_over_fixed"`
	SavedMS         int64   `json:"builder_ms_saved"` // FixedBilledMS - BilledMS
}

type simBuilder struct {
	spot      bool
	started   int64
	up        int64 // when its boot ends
	stopped   int64 // -1 while it lives
	busy      int
	draining  bool // takes no new job (autoscale.Decision.Drain)
	idleSince int64
	gen       uint32 // bumped when it stops: its pending events are void
	jobs      []simRunning
}

type simRunning struct {
	node  int32
	start int64
	seq   uint32
}

const (
	evBoot = iota
	evJob
	evPreempt
	evIdle
)

type simEvent struct {
	t    int64
	kind uint8
	b    int32
	gen  uint32 // builder generation (evBoot, evPreempt, evIdle) or job seq (evJob)
	node int32
}

type eventHeap []simEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(a, b int) bool {
	if h[a].t != h[b].t {
		return h[a].t < h[b].t
	}
	if h[a].kind != h[b].kind {
		return h[a].kind < h[b].kind
	}
	return h[a].b < h[b].b
}
func (h eventHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *eventHeap) Pop() any {
	x := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return x
}

// SimulateElastic runs the build on a virtual clock with builders that
// the autoscaler's policy starts and stops, the same Core and the same
// demand signal (ready, running, critical path) as a real run: a builder
// takes Boot before its first job, is billed from its start to its stop,
// a spot builder may be taken back (its jobs lost and requeued, and a job
// lost PreemptLimit times waits for an on-demand builder), a machine
// bills at least MinBill, and every
// builder still running when the last job ends is stopped then. The
// result sets it beside Simulate with Max × Slots workers.
func SimulateElastic(g *Graph, opt ElasticSimOptions) (*ElasticSimResult, error) {
	pol := opt.Policy.Defaults()
	if err := opt.Policy.Check(); err != nil {
		return nil, err
	}
	n := g.Len()
	if len(opt.Dur) != n {
		return nil, fmt.Errorf("simulate: %d durations for %d packages", len(opt.Dur), n)
	}
	est := opt.Est
	if est == nil {
		est = opt.Dur
	}
	fixed, err := Simulate(g, SimOptions{Workers: pol.Max * pol.Slots, Dur: opt.Dur, Est: opt.Est})
	if err != nil {
		return nil, err
	}
	keys := Keys(g, est, OrderPath, nil)
	core, _ := NewCore(g, keys, slices.Clone(g.Initial), slices.Clone(g.Reason))
	rng := rand.New(rand.NewPCG(opt.Seed, 0xe1a5))
	res := &ElasticSimResult{Max: pol.Max, Min: pol.Min, BootMS: pol.Boot.Milliseconds(), IdleMS: pol.Idle.Milliseconds(),
		Spot: pol.Spot, SpotLoss: opt.SpotLoss, MinBillMS: max(opt.MinBill.Milliseconds(), 0)}

	var (
		now       int64
		evs       eventHeap
		bs        []*simBuilder
		live      []int32 // indexes of builders not stopped
		preempts  = make([]int, n)
		odQueue   []int32 // jobs only an on-demand builder may take
		running   int
		seq       uint32
		doneWork  int64
		doneJobs  int64
		closedMS  int64 // billed time of stopped builders
		startTime = time.Unix(0, 0)
	)
	at := func(ms int64) time.Time { return startTime.Add(time.Duration(ms) * time.Millisecond) }
	// billed is a builder's bill until now: at least the minimum.
	billed := func(b *simBuilder) int64 { return max(now-b.started, res.MinBillMS) }
	stopBuilder := func(i int32) {
		b := bs[i]
		b.stopped = now
		b.gen++
		bill := billed(b)
		res.MinBillExtra += bill - (now - b.started)
		closedMS += bill
		res.BilledMS += bill
		res.BootingMS += min(b.up, now) - b.started
		if b.spot {
			res.SpotMS += bill
		}
		live = slices.DeleteFunc(live, func(j int32) bool { return j == i })
	}
	startBuilder := func(spot bool) {
		b := &simBuilder{spot: spot, started: now, up: now + pol.Boot.Milliseconds(), stopped: -1}
		i := int32(len(bs))
		bs = append(bs, b)
		live = append(live, i)
		res.Started++
		res.Peak = max(res.Peak, len(live))
		heap.Push(&evs, simEvent{t: b.up, kind: evBoot, b: i})
		if spot && opt.SpotLoss > 0 {
			life := int64(rng.ExpFloat64() / opt.SpotLoss * 3_600_000)
			heap.Push(&evs, simEvent{t: now + max(life, 1), kind: evPreempt, b: i})
		}
	}
	idle := func(i int32) {
		b := bs[i]
		b.idleSince = now
		heap.Push(&evs, simEvent{t: now + pol.Idle.Milliseconds(), kind: evIdle, b: i, gen: b.gen})
	}
	run := func(i int32, node int32) {
		b := bs[i]
		seq++
		b.busy++
		running++
		b.jobs = append(b.jobs, simRunning{node: node, start: now, seq: seq})
		heap.Push(&evs, simEvent{t: now + opt.Dur[node], kind: evJob, b: i, gen: seq, node: node})
	}
	dispatch := func() {
		if res.BudgetSpent {
			return
		}
		for _, i := range live {
			b := bs[i]
			for b.up <= now && b.busy < pol.Slots && !b.draining {
				if !b.spot && len(odQueue) > 0 {
					run(i, odQueue[0])
					odQueue = odQueue[1:]
					continue
				}
				node, ok := core.Pop()
				if !ok {
					break
				}
				if b.spot && pol.Spot && preempts[node] >= pol.PreemptLimit {
					odQueue = append(odQueue, node)
					continue
				}
				run(i, node)
			}
		}
	}
	decide := func() {
		in := autoscale.Input{Now: at(now), NeedOnDemand: len(odQueue)}
		in.Demand = executor.Demand{Ready: core.Ready() + len(odQueue), Running: running}
		if i, ok := core.Peek(); ok {
			in.Demand.CriticalPath = time.Duration(keys[i].Path) * time.Millisecond
		}
		if doneJobs > 0 {
			in.MeanJob = time.Duration(doneWork/doneJobs) * time.Millisecond
		}
		spent := closedMS
		names := map[string]int32{}
		for _, i := range live {
			b := bs[i]
			spent += billed(b)
			name := strconv.Itoa(int(i))
			names[name] = i
			in.Builders = append(in.Builders, autoscale.Builder{Name: name, Spot: b.spot, Started: at(b.started),
				Up: b.up <= now, Busy: b.busy, IdleSince: at(b.idleSince), Draining: b.draining})
		}
		in.Spent = time.Duration(spent) * time.Millisecond
		dec := pol.Decide(in)
		res.BudgetSpent = res.BudgetSpent || dec.BudgetSpent
		for _, name := range dec.Drain {
			bs[names[name]].draining = true
		}
		for _, name := range dec.Stop {
			stopBuilder(names[name])
		}
		for range dec.StartOnDemand {
			startBuilder(false)
		}
		for range dec.StartSpot {
			startBuilder(true)
		}
	}

	// Slot time accounting between events.
	last := int64(0)
	account := func() {
		dt := now - last
		if dt > 0 {
			for _, i := range live {
				b := bs[i]
				if b.up <= last {
					res.IdleSlotMS += int64(pol.Slots-b.busy) * dt
				}
			}
		}
		last = now
	}

	decide()
	dispatch()
	for {
		if running == 0 && core.Ready() == 0 && len(odQueue) == 0 {
			break
		}
		if len(evs) == 0 {
			// Work is left and nothing will happen: the budget is spent.
			res.Left = core.Ready() + len(odQueue)
			break
		}
		e := heap.Pop(&evs).(simEvent)
		b := bs[e.b]
		// Events of a stopped builder, or of a job lost with one, are
		// void: they do not move the clock.
		k := -1
		if e.kind == evJob {
			k = slices.IndexFunc(b.jobs, func(r simRunning) bool { return r.seq == e.gen })
			if k < 0 {
				continue
			}
		} else if b.stopped >= 0 {
			continue
		}
		now = e.t
		account()
		switch e.kind {
		case evBoot:
			idle(e.b)
		case evJob:
			b.jobs = slices.Delete(b.jobs, k, k+1)
			b.busy--
			running--
			res.BusyMS += opt.Dur[e.node]
			doneWork += opt.Dur[e.node]
			doneJobs++
			core.Finish(e.node, Done, "")
			res.Jobs++
			if b.busy == 0 {
				idle(e.b)
			}
		case evPreempt:
			for _, r := range b.jobs {
				res.Preempted++
				res.LostMS += now - r.start
				res.BusyMS += now - r.start
				running--
				preempts[r.node]++
				if pol.Spot && preempts[r.node] == pol.PreemptLimit {
					res.OnDemandJobs++
				}
				if pol.Spot && preempts[r.node] >= pol.PreemptLimit {
					odQueue = append(odQueue, r.node)
				} else {
					core.Requeue(r.node, "")
				}
			}
			b.jobs, b.busy = nil, 0
			stopBuilder(e.b)
		case evIdle:
			if e.gen != b.gen || b.busy > 0 || now-b.idleSince < pol.Idle.Milliseconds() {
				continue
			}
		}
		// Several events at one instant: decide once they are all in.
		if len(evs) > 0 && evs[0].t == now {
			continue
		}
		dispatch()
		decide()
		dispatch()
	}
	account()
	for len(live) > 0 {
		stopBuilder(live[0])
	}
	res.MakespanMS = now
	if res.BilledMS > 0 {
		res.IdleShare = float64(res.IdleSlotMS) / float64(res.BilledMS*int64(pol.Slots))
		res.BootShare = float64(res.BootingMS) / float64(res.BilledMS)
	}
	res.FixedMakespanMS = fixed.MakespanMS
	res.FixedBilledMS = int64(pol.Max) * fixed.MakespanMS
	res.FixedIdleShare = 1 - fixed.Utilisation
	if fixed.MakespanMS > 0 {
		res.MakespanRatio = float64(res.MakespanMS) / float64(fixed.MakespanMS)
	}
	res.SavedMS = res.FixedBilledMS - res.BilledMS
	if math.IsNaN(res.IdleShare) {
		res.IdleShare = 0
	}
	return res, nil
}
