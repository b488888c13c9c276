package sched

import (
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
)

func TestSimulateElastic(t *testing.T) {
	g := randomGraph(t, 400, 60, 3)
	dur := Lognormal{MedianMS: 60_000, Sigma: 1, Cap: 50, Seed: 2}.Generate(g.Len())
	buildable := 0
	for _, s := range g.Initial {
		if s == Open {
			buildable++
		}
	}
	tests := []struct {
		name  string
		pol   autoscale.Policy
		loss  float64
		check func(t *testing.T, r *ElasticSimResult)
	}{
		{"no boot, never idle: the fixed pool", autoscale.Policy{Max: 8, Idle: 1000 * time.Hour}, 0, func(t *testing.T, r *ElasticSimResult) {
			if r.MakespanMS != r.FixedMakespanMS {
				t.Errorf("makespan %d, fixed pool %d: with no boot the elastic pool must match it", r.MakespanMS, r.FixedMakespanMS)
			}
		}},
		{"boot and idle timeout", autoscale.Policy{Max: 32, Boot: time.Minute, Idle: time.Minute}, 0, func(t *testing.T, r *ElasticSimResult) {
			if r.SavedMS <= 0 {
				t.Errorf("saved %d builder-ms against a fixed pool of 32 on a graph with a long chain", r.SavedMS)
			}
			if r.MakespanMS < r.FixedMakespanMS {
				t.Errorf("makespan %d below the fixed pool's %d", r.MakespanMS, r.FixedMakespanMS)
			}
			if r.Peak > 32 {
				t.Errorf("peak %d builders over max 32", r.Peak)
			}
		}},
		{"min builders", autoscale.Policy{Min: 4, Max: 8, Boot: time.Minute}, 0, func(t *testing.T, r *ElasticSimResult) {
			if r.Started < 4 {
				t.Errorf("started %d builders, min 4", r.Started)
			}
		}},
		{"spot losses", autoscale.Policy{Max: 16, Boot: time.Minute, Spot: true, PreemptLimit: 1}, 3, func(t *testing.T, r *ElasticSimResult) {
			if r.Preempted == 0 || r.OnDemandJobs == 0 || r.LostMS == 0 {
				t.Errorf("preempted %d, on-demand jobs %d, lost %d ms: want all above 0 at 3 losses an hour", r.Preempted, r.OnDemandJobs, r.LostMS)
			}
			if r.SpotMS >= r.BilledMS {
				t.Errorf("spot time %d of %d billed: the preempted jobs' on-demand builders are missing", r.SpotMS, r.BilledMS)
			}
		}},
		{"budget", autoscale.Policy{Max: 8, Boot: time.Minute, Budget: 2 * time.Hour, Spot: true}, 0.2, func(t *testing.T, r *ElasticSimResult) {
			if !r.BudgetSpent || r.Left == 0 {
				t.Errorf("budget spent %v, %d left: 2 builder-hours cannot build 400 packages", r.BudgetSpent, r.Left)
			}
			// Nothing starts once it is spent; the running builders
			// finish their jobs and stop once idle.
			if r.BilledMS > (2*time.Hour + 8*time.Duration(50*60_000)*time.Millisecond).Milliseconds() {
				t.Errorf("billed %s on a budget of 2h", time.Duration(r.BilledMS)*time.Millisecond)
			}
			// 8 builders spend 2 builder-hours in about 15 minutes; the
			// last job ends at most 50 minutes later (the cap). The
			// void events of stopped builders must not move the clock.
			if r.MakespanMS > (2 * time.Hour).Milliseconds() {
				t.Errorf("makespan %s after the budget of 2 builder-hours ran out on 8 builders", time.Duration(r.MakespanMS)*time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := SimulateElastic(g, ElasticSimOptions{Policy: tt.pol, Dur: dur, SpotLoss: tt.loss, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if r.Jobs+r.Left != buildable && !r.BudgetSpent {
				t.Errorf("built %d and left %d of %d", r.Jobs, r.Left, buildable)
			}
			if r.Left == 0 && r.Jobs != buildable {
				t.Errorf("built %d of %d", r.Jobs, buildable)
			}
			// Every billed slot-ms is a job's, idle or booting.
			slots := int64(tt.pol.Defaults().Slots)
			if got := r.BusyMS + r.IdleSlotMS + r.BootingMS*slots; got != r.BilledMS*slots {
				t.Errorf("busy %d + idle %d + booting %d = %d, billed %d", r.BusyMS, r.IdleSlotMS, r.BootingMS, got, r.BilledMS)
			}
			tt.check(t, r)
		})
	}
}

func TestSimulateElasticBadInput(t *testing.T) {
	g := randomGraph(t, 10, 3, 1)
	if _, err := SimulateElastic(g, ElasticSimOptions{Policy: autoscale.Policy{Max: 0}, Dur: make([]int64, 10)}); err == nil {
		t.Error("max 0 builders accepted")
	}
	if _, err := SimulateElastic(g, ElasticSimOptions{Policy: autoscale.Policy{Max: 2}, Dur: make([]int64, 3)}); err == nil {
		t.Error("3 durations for 10 packages accepted")
	}
}
