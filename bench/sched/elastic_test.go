package schedbench

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// historyDurations gives every package of g a build time drawn from the
// real history (../shared/data/history: the median wall time of a random
// one of its 71 packages, fixed seed).
func historyDurations(b testing.TB, g *sched.Graph) []int64 {
	p := testenv.SharedData(b, "history/bob-history-mutt.csv")
	hist, err := sched.ReadHistoryCSVFile(p)
	if err != nil {
		b.Fatal(err)
	}
	var pool []int64
	for _, k := range slices.Sorted(maps.Keys(hist)) {
		pool = append(pool, max(hist[k], 1))
	}
	rng := rand.New(rand.NewPCG(13, 1))
	out := make([]int64, g.Len())
	for i := range out {
		out[i] = pool[rng.IntN(len(pool))]
	}
	return out
}

// BenchmarkElastic simulates the 29,022-package illumos scan with
// durations drawn from the real history on builders that the autoscaler
// (lib/autoscale.Policy) starts and stops, 60 s boot and 60 s idle
// timeout, each machine billed 60 s at least (as EC2 bills), against a fixed pool of max builders that never boots or
// stops: makespan (target within 10% of the fixed pool's), idle share of
// the billed builder time (target ≤ 5%), boot share, and the builder-hours
// saved; then spot builders lost at 0.1 and 0.5 per builder-hour (a job lost
// twice goes to an on-demand builder).
func BenchmarkElastic(b *testing.B) {
	g := illumosGraph(b)
	dur := historyDurations(b, g)
	for _, c := range []struct {
		name string
		max  int
		loss float64
	}{
		{"max=16", 16, 0}, {"max=64", 64, 0}, {"max=256", 256, 0}, {"max=1024", 1024, 0},
		{"max=64/spot-loss=0.1", 64, 0.1}, {"max=64/spot-loss=0.5", 64, 0.5},
	} {
		b.Run(c.name, func(b *testing.B) {
			pol := autoscale.Policy{Max: c.max, Boot: time.Minute, Idle: time.Minute, Spot: c.loss > 0}
			var r *sched.ElasticSimResult
			for b.Loop() {
				var err error
				r, err = sched.SimulateElastic(g, sched.ElasticSimOptions{Policy: pol, Dur: dur, SpotLoss: c.loss, Seed: 1, MinBill: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.MakespanRatio, "makespan/fixed")
			b.ReportMetric(r.IdleShare, "idle-share")
			b.ReportMetric(r.BootShare, "boot-share")
			b.ReportMetric(float64(r.SavedMS)/3.6e6, "builder-h-saved")
			fmt.Printf("%-22s jobs %d makespan %s (fixed %d: %s, ratio %.3f) builder-hours %.1f (%.2f of them the 60 s minimum; fixed %.1f, saved %.1f = %.0f%%) idle %.1f%% (fixed %.1f%%) boot %.1f%% started %d peak %d spot-hours %.1f preempted %d on-demand jobs %d lost %s\n",
				c.name, r.Jobs, ms(r.MakespanMS), c.max, ms(r.FixedMakespanMS), r.MakespanRatio,
				float64(r.BilledMS)/3.6e6, float64(r.MinBillExtra)/3.6e6, float64(r.FixedBilledMS)/3.6e6, float64(r.SavedMS)/3.6e6, 100*float64(r.SavedMS)/float64(max(r.FixedBilledMS, 1)),
				100*r.IdleShare, 100*r.FixedIdleShare, 100*r.BootShare, r.Started, r.Peak, float64(r.SpotMS)/3.6e6, r.Preempted, r.OnDemandJobs, ms(r.LostMS))
		})
	}
}
