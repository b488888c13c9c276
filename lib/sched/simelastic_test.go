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
			if got := r.BusyMS + r.IdleSlotMS + (r.BootingMS+r.MinBillExtra)*slots; got != r.BilledMS*slots {
				t.Errorf("busy %d + idle %d + booting %d = %d, billed %d", r.BusyMS, r.IdleSlotMS, r.BootingMS, got, r.BilledMS)
			}
			tt.check(t, r)
		})
	}
}

// TestSimulateElasticMinBill: with a least bill per machine (EC2's 60 s)
// every machine bills at least that, the builds are the same, and the
// builder time grows by exactly what the machines stopped early are
// billed past their stop.
func TestSimulateElasticMinBill(t *testing.T) {
	g := randomGraph(t, 400, 60, 3)
	dur := Lognormal{MedianMS: 20_000, Sigma: 1, Cap: 50, Seed: 2}.Generate(g.Len())
	// Short boot and idle timeout: many machines live under a minute.
	pol := autoscale.Policy{Max: 32, Boot: 5 * time.Second, Idle: 10 * time.Second, Worth: 0.5}
	exact, err := SimulateElastic(g, ElasticSimOptions{Policy: pol, Dur: dur, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	minBill, err := SimulateElastic(g, ElasticSimOptions{Policy: pol, Dur: dur, Seed: 1, MinBill: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if exact.MinBillExtra != 0 || minBill.MinBillMS != 60_000 {
		t.Fatalf("extra %d ms without a minimum; minimum %d ms", exact.MinBillExtra, minBill.MinBillMS)
	}
	if minBill.MinBillExtra <= 0 {
		t.Fatalf("no machine lived under a minute (%d started, %s billed): the case tests nothing", minBill.Started,
			time.Duration(minBill.BilledMS)*time.Millisecond)
	}
	if minBill.BilledMS < int64(minBill.Started)*60_000 {
		t.Errorf("%d machines billed %d ms: under a minute each", minBill.Started, minBill.BilledMS)
	}
	// The policy sees the larger bill only in the budget (none here): the
	// same machines start and stop at the same times.
	if minBill.MakespanMS != exact.MakespanMS || minBill.Started != exact.Started || minBill.Jobs != exact.Jobs {
		t.Errorf("makespan %d / %d, started %d / %d, jobs %d / %d: the minimum bill changed the build",
			minBill.MakespanMS, exact.MakespanMS, minBill.Started, exact.Started, minBill.Jobs, exact.Jobs)
	}
	if got := minBill.BilledMS - exact.BilledMS; got != minBill.MinBillExtra {
		t.Errorf("billed %d ms more with the minimum; the extra is %d", got, minBill.MinBillExtra)
	}
	t.Logf("%d machines: %.2f builder-hours from start to stop, %.2f with 60 s at least", exact.Started,
		float64(exact.BilledMS)/3.6e6, float64(minBill.BilledMS)/3.6e6)
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
