// Package autoscale decides how many builder machines an elastic build
// runs (Policy, pure and table-tested) and drives a provider to match
// (Driver): start machines when there is work the DAG can keep them busy
// with, stop them once idle, within min/max builders and a budget of
// builder time, spot machines where allowed and on-demand ones for the
// jobs that spot machines lost too often.
package autoscale

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// Policy is the autoscaler's rule set. The zero value of a field takes
// its default (see Defaults).
type Policy struct {
	Min int // builders kept even when idle (while the budget lasts)
	// Max is the most machines billed at once (at least 1): booting,
	// running and stopping ones that are not gone yet. It is a hard
	// limit: the on-demand builder for a job that spot builders lost
	// PreemptLimit times starts at Max only once an idle spot builder
	// was stopped and is gone.
	Max int
	// Boot is how long a builder takes from Start to its first lease
	// (the driver replaces it by what it measures: see BootEstimate).
	Boot time.Duration
	// Idle is how long a builder may have no job before it is stopped
	// (default: Boot, at least 10s).
	Idle time.Duration
	// Budget is the builder time all builders together may be billed
	// (builder-hours × time.Hour); 0 means none. Once it is spent no
	// builder is started any more; the running ones finish their jobs.
	Budget time.Duration
	// Spot starts preemptible builders; jobs preempted PreemptLimit times
	// go to on-demand ones.
	Spot         bool
	PreemptLimit int // default 2
	// SpotWait: when the provider has no spot capacity
	// (provider.ErrNoCapacity), start nothing in place of the spot
	// builders until SpotRetry passed (spot-fallback=wait). The default
	// starts on-demand builders meanwhile (spot-fallback=on-demand),
	// within Max and the budget.
	SpotWait bool
	// SpotRetry is how long after spot capacity ran short the driver
	// asks for spot builders again (default 5m; doubled while spot stays
	// short, up to 12 times as long).
	SpotRetry time.Duration
	Slots     int // jobs per builder (default 1)
	// Worth is how many boot times of work a new builder must have ahead
	// of it on average (default 8, so that booting is at most an eighth
	// of a builder's life): starting one for less costs more boot than it
	// saves. In the illumos simulation (bench/sched) 8 halves the
	// builders started at 1024 max against 2, at the same makespan.
	Worth float64
}

// Defaults fills in the zero fields.
func (p Policy) Defaults() Policy {
	p.Max = max(p.Max, 1)
	p.Min = min(max(p.Min, 0), p.Max)
	if p.Idle <= 0 {
		p.Idle = max(p.Boot, 10*time.Second)
	}
	if p.PreemptLimit <= 0 {
		p.PreemptLimit = 2
	}
	if p.SpotRetry <= 0 {
		p.SpotRetry = 5 * time.Minute
	}
	p.Slots = max(p.Slots, 1)
	if p.Worth <= 0 {
		p.Worth = 8
	}
	return p
}

// Check reports a policy that cannot work.
func (p Policy) Check() error {
	switch {
	case p.Max < 1:
		return fmt.Errorf("autoscale: max %d builders; want at least 1", p.Max)
	case p.Min < 0 || p.Min > p.Max:
		return fmt.Errorf("autoscale: min %d builders; want 0 to max (%d)", p.Min, p.Max)
	case p.Boot < 0 || p.Idle < 0 || p.Budget < 0 || p.SpotRetry < 0:
		return fmt.Errorf("autoscale: negative boot, idle, budget or spot retry time")
	case p.Slots < 0 || p.PreemptLimit < 0 || p.Worth < 0:
		return fmt.Errorf("autoscale: negative slots, preempt limit or worth")
	}
	return nil
}

// Builder is one machine as the policy sees it.
type Builder struct {
	Name    string
	Spot    bool
	Started time.Time
	Up      bool // its worker registered (booted); false while booting
	Busy    int  // jobs running on it
	// IdleSince is when it last had no job (its registration, or the end
	// of its last job); meaningful when Up and Busy is 0.
	IdleSince time.Time
	// Draining: it takes no new job (Decision.Drain) and is stopped once
	// its jobs ended.
	Draining bool
}

// Input is what the policy decides on.
type Input struct {
	Now    time.Time
	Demand executor.Demand
	// MeanJob is the mean build time of one job (learnt from the jobs
	// that finished; 0 when unknown): the ready and running jobs times
	// MeanJob estimate the work ahead.
	MeanJob time.Duration
	// NeedOnDemand is how many ready jobs only an on-demand builder may
	// take (preempted PreemptLimit times).
	NeedOnDemand int
	Builders     []Builder
	// Stopping is how many machines were stopped and are not gone yet
	// (a cloud instance shutting down): they bill, and count toward Max.
	Stopping int
	// Spent is the builder time billed so far (every builder from its
	// start to its stop or now).
	Spent time.Duration
}

// Decision is what to do now.
type Decision struct {
	StartSpot     int
	StartOnDemand int
	Stop          []string // builder names, longest idle first
	// Drain are busy spot builders to take no new job and to stop once
	// their jobs ended: at Max, while every spot builder is busy, they
	// make room for the on-demand builders that preempted jobs wait for.
	Drain []string
	Why   string // one line for the log
	// BudgetSpent is true once no builder may be started and no job
	// handed out any more.
	BudgetSpent bool
}

// Want is the number of builders the work ahead can keep busy: the
// ready and running jobs (never more builders than the DAG has jobs for
// now), and at most one per Worth boot times of the estimated work of
// those jobs (their number times MeanJob; until a job has finished, the
// remaining critical path, the longest chain through a ready job, stands
// in for MeanJob as an upper bound of one job's time). Min and Max bound
// the result; with ready jobs it is at least 1.
func (p Policy) Want(in Input) int {
	p = p.Defaults()
	d := in.Demand
	jobs := d.Ready + d.Running
	want := ceilDiv(jobs, p.Slots)
	mean := in.MeanJob
	if mean <= 0 {
		mean = d.CriticalPath
	}
	if p.Boot > 0 && mean > 0 {
		work := float64(jobs) * float64(mean)
		perBuilder := float64(p.Boot) * p.Worth * float64(p.Slots)
		want = min(want, max(int(math.Ceil(work/perBuilder)), 1))
	}
	want = min(max(want, p.Min), p.Max)
	if d.Ready > 0 {
		want = max(want, 1)
	}
	return want
}

// Decide is the policy: start builders up to Want (spot or on-demand),
// on-demand ones for the jobs that need them, and stop builders idle for
// Idle, down to Min; nothing is started once the budget is spent. The
// machines billed after the decision (builders left, stopping ones and
// the ones started) are never more than Max: a start that needs a stop
// to make room assumes that the stop happens at once; a driver whose
// stop did not (the worker would not retire, the machine is still
// shutting down) starts only what Max leaves room for.
func (p Policy) Decide(in Input) Decision {
	p = p.Defaults()
	var dec Decision
	live := len(in.Builders)
	onDemand := 0
	for _, b := range in.Builders {
		if !b.Spot {
			onDemand++
		}
	}
	want := p.Want(in)
	dec.BudgetSpent = p.Budget > 0 && in.Spent >= p.Budget
	var why []string

	// Idle builders, longest idle first; on-demand ones (dearer) before
	// spot ones of the same idleness unless jobs wait for on-demand.
	var idle []Builder
	for _, b := range in.Builders {
		if b.Up && b.Busy == 0 && in.Now.Sub(b.IdleSince) >= p.Idle {
			idle = append(idle, b)
		}
	}
	slices.SortStableFunc(idle, func(a, b Builder) int {
		if c := a.IdleSince.Compare(b.IdleSince); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.Spot), boolInt(b.Spot))
	})
	if dec.BudgetSpent {
		// No builder starts and no job either: builders stop as soon as
		// their jobs ended, booting ones at once.
		for _, b := range in.Builders {
			if b.Busy == 0 {
				dec.Stop = append(dec.Stop, b.Name)
			}
		}
		dec.Why = fmt.Sprintf("budget of %s builder time spent: stop %d builders without a job", p.Budget, len(dec.Stop))
		return dec
	}
	// A draining builder whose jobs ended goes at once: it takes none.
	for _, b := range in.Builders {
		if b.Draining && b.Up && b.Busy == 0 {
			dec.Stop = append(dec.Stop, b.Name)
		}
	}
	drained := len(dec.Stop)
	keep := p.Min
	for _, b := range idle {
		if slices.Contains(dec.Stop, b.Name) {
			continue
		}
		if live-len(dec.Stop) <= keep {
			break
		}
		if !b.Spot && in.NeedOnDemand > 0 {
			continue // it is idle for a moment: a job waits for it
		}
		dec.Stop = append(dec.Stop, b.Name)
	}
	if drained > 0 {
		why = append(why, fmt.Sprintf("stop %d drained", drained))
	}
	if n := len(dec.Stop) - drained; n > 0 {
		why = append(why, fmt.Sprintf("stop %d idle for %s", n, p.Idle))
	}
	// working: the builders left; billed: those and the stopping ones.
	working := live - len(dec.Stop)
	billed := working + in.Stopping
	if p.Spot && in.NeedOnDemand > 0 {
		// Jobs that spot builders lost PreemptLimit times wait for an
		// on-demand builder; make room under Max by stopping idle spot
		// builders (they refuse those jobs), even before their Idle.
		start := max(ceilDiv(in.NeedOnDemand, p.Slots)-onDemand, 0)
		made := 0
		for _, b := range in.Builders {
			if start <= p.Max-billed {
				break
			}
			if b.Spot && b.Up && b.Busy == 0 && !slices.Contains(dec.Stop, b.Name) {
				dec.Stop = append(dec.Stop, b.Name)
				working--
				billed--
				made++
			}
		}
		if made > 0 {
			why = append(why, fmt.Sprintf("stop %d idle spot builders to make room for on-demand ones", made))
		}
		// Still no room: busy spot builders drain (no new job; stopped
		// once their jobs ended), as many as the room wanted, counting
		// those draining already and the machines on their way out.
		need := start - max(p.Max-billed, 0) - in.Stopping
		for _, b := range in.Builders {
			if b.Draining && b.Busy > 0 {
				need--
			}
		}
		for _, b := range in.Builders {
			if need <= 0 {
				break
			}
			if b.Spot && b.Up && b.Busy > 0 && !b.Draining {
				dec.Drain = append(dec.Drain, b.Name)
				need--
			}
		}
		if len(dec.Drain) > 0 {
			why = append(why, fmt.Sprintf("drain %d busy spot builders to make room for on-demand ones", len(dec.Drain)))
		}
		if start = max(min(start, p.Max-billed), 0); start > 0 {
			dec.StartOnDemand = start
			working += start
			billed += start
			why = append(why, fmt.Sprintf("start %d on-demand for %d jobs preempted %d times", start, in.NeedOnDemand, p.PreemptLimit))
		}
	}
	if more := min(want-working, p.Max-billed); more > 0 {
		if p.Spot {
			dec.StartSpot = more
		} else {
			dec.StartOnDemand += more
		}
		why = append(why, fmt.Sprintf("start %d: %d ready, %d running, critical path %s, want %d", more,
			in.Demand.Ready, in.Demand.Running, in.Demand.CriticalPath.Round(time.Second), want))
	}
	dec.Why = strings.Join(why, "; ")
	return dec
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
