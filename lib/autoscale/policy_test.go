package autoscale

import (
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
		{name: "an idle on-demand builder waited for is kept", pol: Policy{Max: 4, Spot: true, Idle: time.Minute},
			in: Input{Demand: executor.Demand{Ready: 1}, NeedOnDemand: 1, Builders: []Builder{up("o", false, 0, time.Hour)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now = t0
			d := tt.pol.Decide(in)
			if d.StartSpot != tt.spot || d.StartOnDemand != tt.ond || !slices.Equal(d.Stop, tt.stop) || d.BudgetSpent != tt.budget {
				t.Fatalf("Decide = spot %d, on-demand %d, stop %v, budget spent %v (%s); want %d, %d, %v, %v",
					d.StartSpot, d.StartOnDemand, d.Stop, d.BudgetSpent, d.Why, tt.spot, tt.ond, tt.stop, tt.budget)
			}
			if (d.StartSpot+d.StartOnDemand+len(d.Stop) > 0) != (d.Why != "") {
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
