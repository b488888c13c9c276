// Package schedbench holds the scheduler's benchmarks; they print the
// figures the issue asks for (see README.md here).
package schedbench

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var illumos struct {
	once sync.Once
	g    *sched.Graph
	err  error
}

// illumosGraph parses the real 29,022-package presolve file once.
func illumosGraph(b testing.TB) *sched.Graph {
	p := testenv.SharedData(b, "scan/presolve-illumos-2026.txt.zst")
	illumos.once.Do(func() {
		f, err := os.Open(p)
		if err != nil {
			illumos.err = err
			return
		}
		defer f.Close()
		zr, err := zstd.NewReader(f)
		if err != nil {
			illumos.err = err
			return
		}
		defer zr.Close()
		illumos.g, illumos.err = sched.ParsePresolve(zr, p)
	})
	if illumos.err != nil {
		b.Fatal(illumos.err)
	}
	return illumos.g
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSimulateIllumos simulates the whole illumos tree with
// lognormal durations (sched.DefaultLognormal, fixed seed) at 8, 64 and
// 512 workers, in our order (durations known exactly, and known only to
// within a lognormal error of sigma 0.5 as history gives them) and in
// pbulk's order, and prints makespan / lower bound and the CPU time of the
// scheduler's decisions for the whole run.
func BenchmarkSimulateIllumos(b *testing.B) {
	g := illumosGraph(b)
	dur := sched.DefaultLognormal.Generate(g.Len())
	noisy := sched.Lognormal{MedianMS: 1000, Sigma: 0.5, Seed: 7}.Generate(g.Len())
	est := make([]int64, len(dur))
	for i := range dur {
		est[i] = max(dur[i]*noisy[i]/1000, 1)
	}
	for _, w := range []int{8, 64, 512} {
		for _, v := range []struct {
			name  string
			order sched.Order
			est   []int64
		}{
			{"path-exact", sched.OrderPath, nil},
			{"path-noisy", sched.OrderPath, est},
			{"pbulk", sched.OrderPbulk, nil},
		} {
			b.Run(fmt.Sprintf("W=%d/%s", w, v.name), func(b *testing.B) {
				var r *sched.SimResult
				var cpu time.Duration
				for b.Loop() {
					c0 := cpuSelf()
					var err error
					r, err = sched.Simulate(g, sched.SimOptions{Workers: w, Order: v.order, Dur: dur, Est: v.est})
					if err != nil {
						b.Fatal(err)
					}
					cpu = cpuSelf() - c0
				}
				b.ReportMetric(r.Ratio, "makespan/LB")
				b.ReportMetric(r.Utilisation, "util")
				b.ReportMetric(cpu.Seconds(), "cpu-s/run")
				fmt.Printf("W=%-4d %-10s jobs %d makespan %s LB %s (critical %s, work/W %s) ratio %.4f util %.3f decisions %.3fs CPU\n",
					w, v.name, r.Jobs, ms(r.MakespanMS), ms(r.LowerBoundMS), ms(r.CriticalMS), ms(r.TotalWorkMS/int64(w)), r.Ratio, r.Utilisation, cpu.Seconds())
			})
		}
	}
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).Round(time.Second).String() }
