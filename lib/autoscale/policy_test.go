package autoscale

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// up is a booted builder idle for idle (busy jobs: idle 0).
func up(name string, spot bool, busy int, idle time.Duration) Builder {
	return Builder{Name: name, Spot: spot, Started: t0.Add(-time.Hour), Up: true, Busy: busy, IdleSince: t0.Add(-idle)}
}

func draining(b Builder) Builder {
	b.Draining = true
	return b
}

func booting(name string, spot bool) Builder {
	return Builder{Name: name, Spot: spot, Started: t0.Add(-10 * time.Second)}
}

func TestDecide(t *testing.T) {
	base := Policy{Max: 4, Boot: time.Minute, Idle: time.Minute}
	tests := []struct {
		name   string
		pol    Policy
		in     Input
		spot   int
		ond    int
		stop   []string
		budget bool
		drain  []string
	}{
		{name: "no work, no builders", pol: base},
		{name: "min builders start without work", pol: Policy{Min: 2, Max: 4}, ond: 2},
		{name: "ready jobs, no history: up to max", pol: base,
			in: Input{Demand: executor.Demand{Ready: 10}}, ond: 4},
		{name: "never more than ready+running", pol: base,
			in: Input{Demand: executor.Demand{Ready: 1, Running: 1}, Builders: []Builder{up("a", false, 1, 0)}}, ond: 1},
		{name: "booting builders count", pol: base,
			in: Input{Demand: executor.Demand{Ready: 3}, Builders: []Builder{booting("a", false), booting("b", false)}}, ond: 1},
		{name: "at max", pol: base,
			in: Input{Demand: executor.Demand{Ready: 100, Running: 4}, Builders: []Builder{up("a", false, 1, 0), up("b", false, 1, 0), up("c", false, 1, 0), up("d", false, 1, 0)}}},
		{name: "slots per builder", pol: Policy{Max: 10, Slots: 4},
			in: Input{Demand: executor.Demand{Ready: 9}}, ond: 3},
		{name: "little work per boot: fewer builders", pol: Policy{Max: 10, Boot: time.Minute, Worth: 2},
			// 10 jobs of 30s = 5 min of work; one builder per 2 min of it.
			in: Input{Demand: executor.Demand{Ready: 10}, MeanJob: 30 * time.Second}, ond: 3},
		{name: "less work than a boot: still one builder", pol: Policy{Max: 10, Boot: time.Hour},
			in: Input{Demand: executor.Demand{Ready: 10}, MeanJob: time.Second}, ond: 1},
		{name: "less work than a boot: no second builder", pol: Policy{Max: 10, Boot: time.Hour},
			in: Input{Demand: executor.Demand{Ready: 10, Running: 1}, MeanJob: time.Second, Builders: []Builder{up("a", false, 1, 0)}}},
		{name: "critical path stands in for an unknown mean", pol: Policy{Max: 10, Boot: time.Minute, Worth: 1},
			// 6 ready jobs of at most 20 s each: 2 min of work, 2 builders.
			in: Input{Demand: executor.Demand{Ready: 6, CriticalPath: 20 * time.Second}}, ond: 2},
		{name: "long critical path: every ready job gets one", pol: Policy{Max: 10, Boot: time.Minute},
			in: Input{Demand: executor.Demand{Ready: 6, CriticalPath: 5 * time.Hour}}, ond: 6},
		{name: "spot", pol: Policy{Max: 4, Spot: true},
			in: Input{Demand: executor.Demand{Ready: 2}}, spot: 2},
		{name: "idle past the timeout stops, longest idle first", pol: base,
			in:   Input{Builders: []Builder{up("a", false, 0, 2*time.Minute), up("b", false, 0, 5*time.Minute), up("c", false, 0, 30*time.Second)}},
			stop: []string{"b", "a"}},
		{name: "busy builders never stop", pol: base,
			in: Input{Demand: executor.Demand{Running: 1}, Builders: []Builder{up("a", false, 1, time.Hour)}}},
		{name: "booting builders never stop", pol: base,
			in: Input{Builders: []Builder{booting("a", false)}}},
		{name: "min is kept", pol: Policy{Min: 1, Max: 4, Idle: time.Minute},
			in: Input{Builders: []Builder{up("a", false, 0, 2*time.Minute), up("b", false, 0, 3*time.Minute)}}, stop: []string{"b"}},
		{name: "idle on-demand before idle spot", pol: Policy{Max: 4, Idle: time.Minute, Spot: true},
			in: Input{Builders: []Builder{up("s", true, 0, 2*time.Minute), up("o", false, 0, 2*time.Minute)}}, stop: []string{"o", "s"}},
		{name: "budget spent: nothing starts, every builder without a job stops", pol: Policy{Min: 2, Max: 4, Idle: time.Hour, Budget: time.Hour},
			in:   Input{Demand: executor.Demand{Ready: 5, Running: 1}, Spent: time.Hour, Builders: []Builder{up("a", false, 1, 0), up("b", false, 0, time.Second), booting("c", true)}},
			stop: []string{"b", "c"}, budget: true},
		{name: "budget left", pol: Policy{Max: 4, Budget: time.Hour},
			in: Input{Demand: executor.Demand{Ready: 2}, Spent: 59 * time.Minute}, ond: 2},
		{name: "preempted jobs get an on-demand builder", pol: Policy{Max: 4, Spot: true},
			in: Input{Demand: executor.Demand{Ready: 1, Running: 2}, NeedOnDemand: 1, Builders: []Builder{up("s1", true, 1, 0), up("s2", true, 1, 0)}}, ond: 1},
		{name: "an on-demand builder is there already", pol: Policy{Max: 4, Spot: true},
			in: Input{Demand: executor.Demand{Ready: 1, Running: 1}, NeedOnDemand: 1, Builders: []Builder{up("s1", true, 1, 0), booting("o", false)}}},
		{name: "at max: an idle spot builder makes room", pol: Policy{Max: 2, Spot: true, Idle: time.Hour},
			in:  Input{Demand: executor.Demand{Ready: 1, Running: 1}, NeedOnDemand: 1, Builders: []Builder{up("s1", true, 1, 0), up("s2", true, 0, time.Second)}},
			ond: 1, stop: []string{"s2"}},
		{name: "over max for an on-demand builder: the idle spot one goes", pol: Policy{Max: 2, Spot: true, Idle: time.Hour},
			in:   Input{Demand: executor.Demand{Ready: 1, Running: 1}, NeedOnDemand: 1, Builders: []Builder{up("s1", true, 1, 0), up("s2", true, 0, time.Second), booting("o3", false)}},
			stop: []string{"s2"}},
		{name: "a stopping machine counts toward max: no on-demand yet", pol: Policy{Max: 2, Spot: true, Idle: time.Hour},
			in: Input{Demand: executor.Demand{Ready: 1, Running: 1}, NeedOnDemand: 1, Stopping: 1, Builders: []Builder{up("s1", true, 1, 0)}}},
		{name: "a stopping machine counts toward max: fewer spot starts", pol: Policy{Max: 3, Spot: true},
			in: Input{Demand: executor.Demand{Ready: 5}, Stopping: 2}, spot: 1},
		{name: "at max, the spot builders busy: one drains for the on-demand one", pol: Policy{Max: 2, Spot: true},
			in:    Input{Demand: executor.Demand{Ready: 1, Running: 2}, NeedOnDemand: 1, Builders: []Builder{up("s1", true, 1, 0), up("s2", true, 1, 0)}},
			drain: []string{"s1"}},
		{name: "one drains already: no second", pol: Policy{Max: 2, Spot: true},
			in: Input{Demand: executor.Demand{Ready: 1, Running: 2}, NeedOnDemand: 1, Builders: []Builder{draining(up("s1", true, 1, 0)), up("s2", true, 1, 0)}}},
		{name: "two jobs wait: two drain", pol: Policy{Max: 3, Spot: true},
			in:    Input{Demand: executor.Demand{Ready: 2, Running: 3}, NeedOnDemand: 2, Builders: []Builder{up("s1", true, 1, 0), up("s2", true, 1, 0), up("s3", true, 1, 0)}},
			drain: []string{"s1", "s2"}},
		{name: "on-demand builders do not drain", pol: Policy{Max: 2, Spot: true},
			in: Input{Demand: executor.Demand{Ready: 2, Running: 2}, NeedOnDemand: 2, Builders: []Builder{up("o1", false, 1, 0), up("o2", false, 1, 0)}}},
		{name: "a drained builder stops once idle, before its idle time, and the on-demand one starts", pol: Policy{Max: 2, Spot: true, Idle: time.Hour},
			in:  Input{Demand: executor.Demand{Ready: 1, Running: 1}, NeedOnDemand: 1, Builders: []Builder{draining(up("s1", true, 0, time.Second)), up("s2", true, 1, 0)}},
			ond: 1, stop: []string{"s1"}},
		{name: "a drained builder stops once idle even when no job waits any more", pol: Policy{Max: 2, Spot: true, Idle: time.Hour},
			in:   Input{Demand: executor.Demand{Running: 1}, Builders: []Builder{draining(up("s1", true, 0, time.Second)), up("s2", true, 1, 0)}},
			stop: []string{"s1"}},
		{name: "an idle on-demand builder waited for is kept", pol: Policy{Max: 4, Spot: true, Idle: time.Minute},
			in: Input{Demand: executor.Demand{Ready: 1}, NeedOnDemand: 1, Builders: []Builder{up("o", false, 0, time.Hour)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now = t0
			d := tt.pol.Decide(in)
			if d.StartSpot != tt.spot || d.StartOnDemand != tt.ond || !slices.Equal(d.Stop, tt.stop) || d.BudgetSpent != tt.budget || !slices.Equal(d.Drain, tt.drain) {
				t.Fatalf("Decide = spot %d, on-demand %d, stop %v, budget spent %v, drain %v (%s); want %d, %d, %v, %v, %v",
					d.StartSpot, d.StartOnDemand, d.Stop, d.BudgetSpent, d.Drain, d.Why, tt.spot, tt.ond, tt.stop, tt.budget, tt.drain)
			}
			if (d.StartSpot+d.StartOnDemand+len(d.Stop)+len(d.Drain) > 0) != (d.Why != "") {
				t.Fatalf("Why %q does not match the decision", d.Why)
			}
			if n := len(in.Builders) - len(d.Stop) + d.StartSpot + d.StartOnDemand; n > max(tt.pol.Max, 1) {
				t.Fatalf("%d builders after the decision; max %d", n, tt.pol.Max)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want string
	}{
		{Policy{Max: 1}, ""},
		{Policy{}, "max"},
		{Policy{Min: 3, Max: 2}, "min"},
		{Policy{Max: 2, Boot: -1}, "negative"},
		{Policy{Max: 2, Worth: -1}, "negative"},
	} {
		err := tt.p.Check()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v.Check() = %v, want %q", tt.p, err, tt.want)
		}
	}
}

// TestDecideNeverAboveMax: for random pools (booting, busy and idle spot
// and on-demand builders, stopping machines, preempted jobs, budgets),
// the machines billed after a decision that starts any (the builders
// left, the stopping ones and the new ones) are never more than Max;
// only idle or booting builders are stopped (any builder without a job
// once the budget is spent), each once; nothing starts once the budget
// is spent.
func TestDecideNeverAboveMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	for i := range 20000 {
		pol := Policy{Max: 1 + rng.IntN(6), Spot: rng.IntN(2) == 0, Slots: 1 + rng.IntN(2), PreemptLimit: 1 + rng.IntN(2),
			Boot: time.Duration(rng.IntN(120)) * time.Second, Idle: time.Duration(rng.IntN(120)) * time.Second}
		pol.Min = rng.IntN(pol.Max + 1)
		if rng.IntN(4) == 0 {
			pol.Budget = time.Hour
		}
		in := Input{Now: t0, Demand: executor.Demand{Ready: rng.IntN(12), Running: rng.IntN(6),
			CriticalPath: time.Duration(rng.IntN(3600)) * time.Second},
			MeanJob: time.Duration(rng.IntN(600)) * time.Second, Spent: time.Duration(rng.IntN(90)) * time.Minute}
		if pol.Spot {
			in.NeedOnDemand = rng.IntN(4)
		}
		// Up to Max machines billed now, some of them stopping.
		billed := rng.IntN(pol.Max + 1)
		in.Stopping = rng.IntN(billed + 1)
		for k := range billed - in.Stopping {
			name := string(rune('a' + k))
			spot := pol.Spot && rng.IntN(3) > 0
			switch rng.IntN(3) {
			case 0:
				in.Builders = append(in.Builders, booting(name, spot))
			case 1:
				in.Builders = append(in.Builders, up(name, spot, 1+rng.IntN(pol.Slots), 0))
			default:
				in.Builders = append(in.Builders, up(name, spot, 0, time.Duration(rng.IntN(300))*time.Second))
			}
			if b := &in.Builders[len(in.Builders)-1]; b.Spot && b.Up && rng.IntN(4) == 0 {
				b.Draining = true
			}
		}
		d := pol.Decide(in)
		after := len(in.Builders) + in.Stopping - len(d.Stop) + d.StartSpot + d.StartOnDemand
		if d.StartSpot < 0 || d.StartOnDemand < 0 || after > pol.Max {
			t.Fatalf("case %d: %+v\n%+v\nDecide = %+v: %d machines billed after it, max %d", i, pol, in, d, after, pol.Max)
		}
		if d.BudgetSpent && d.StartSpot+d.StartOnDemand > 0 {
			t.Fatalf("case %d: starts with the budget spent: %+v", i, d)
		}
		if !pol.Spot && d.StartSpot > 0 {
			t.Fatalf("case %d: spot builders without spot=true: %+v", i, d)
		}
		seen := map[string]bool{}
		for _, name := range d.Stop {
			k := slices.IndexFunc(in.Builders, func(b Builder) bool { return b.Name == name })
			if k < 0 || seen[name] {
				t.Fatalf("case %d: stops %q twice or unknown: %v", i, name, d.Stop)
			}
			seen[name] = true
			if b := in.Builders[k]; b.Busy > 0 || (!b.Up && !d.BudgetSpent) {
				t.Fatalf("case %d: stops %+v (busy or booting): %+v", i, b, d)
			}
		}
		// Drains: busy spot builders not draining yet, only when the
		// preempted jobs find no room, never more than they need.
		for _, name := range d.Drain {
			k := slices.IndexFunc(in.Builders, func(b Builder) bool { return b.Name == name })
			if k < 0 || seen[name] {
				t.Fatalf("case %d: drains %q twice, unknown or stopped: %+v", i, name, d)
			}
			seen[name] = true
			if b := in.Builders[k]; !b.Spot || b.Busy == 0 || b.Draining {
				t.Fatalf("case %d: drains %+v: %+v", i, b, d)
			}
		}
		if len(d.Drain) > 0 && (in.NeedOnDemand == 0 || after < pol.Max || len(d.Drain) > in.NeedOnDemand) {
			t.Fatalf("case %d: %d drains for %d jobs with %d of %d machines billed after: %+v\n%+v", i, len(d.Drain), in.NeedOnDemand, after, pol.Max, in, d)
		}
		for _, b := range in.Builders {
			if b.Draining && b.Up && b.Busy == 0 && !seen[b.Name] {
				t.Fatalf("case %d: drained idle %s not stopped: %+v", i, b.Name, d)
			}
		}
	}
}

func TestBootEstimate(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		name  string
		seed  time.Duration
		joins []time.Duration
		want  time.Duration
	}{
		{name: "no join: the seed", seed: 60 * s, want: 60 * s},
		{name: "one fast join moves it 30%", seed: 60 * s, joins: []time.Duration{10 * s}, want: 45 * s},
		{name: "two", seed: 60 * s, joins: []time.Duration{10 * s, 10 * s}, want: 34500 * time.Millisecond},
		{name: "slower than configured", seed: 10 * s, joins: []time.Duration{110 * s}, want: 40 * s},
		{name: "converges", seed: 60 * s, joins: slices.Repeat([]time.Duration{5 * s}, 20), want: 5 * s},
		{name: "no seed: the first join as it is", joins: []time.Duration{7 * s}, want: 7 * s},
		{name: "no seed, then weighted", joins: []time.Duration{10 * s, 20 * s}, want: 13 * s},
		{name: "negative ignored", seed: 60 * s, joins: []time.Duration{-5 * s}, want: 60 * s},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBootEstimate(tt.seed)
			for _, j := range tt.joins {
				b.Add(j)
			}
			// Within a millisecond of the weights' arithmetic; after 20
			// joins within 1% of the gap to the seed.
			tol := time.Millisecond
			if len(tt.joins) >= 20 {
				tol = 55 * s / 100
			}
			if d := b.Value() - tt.want; d < -tol || d > tol || b.N() != len(tt.joins) && tt.name != "negative ignored" {
				t.Errorf("estimate %v after %d joins, want %v", b.Value(), b.N(), tt.want)
			}
		})
	}
}
