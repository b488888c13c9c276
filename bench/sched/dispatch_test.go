package schedbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// trivialPkgrun answers every job at once with a done result.
const trivialPkgrun = `#!/bin/sh
read l
cat >/dev/null
printf '{"version":1,"pkgname":"%s","status":"done","wall_ms":0,"cpu_ms":0,"disk_bytes":0}\n' "${l#PKGNAME=}"
`

// BenchmarkDispatch measures pkgsched's own cost per job on the local
// executor: 2,000 jobs of a random DAG, a pkgrun that does nothing, two
// slots. The figure is the CPU time of this process (rusage self: the
// scheduler, its database commits and the fork/exec of pkgrun; the
// children's CPU is not included) divided by the jobs.
func BenchmarkDispatch(b *testing.B) {
	const jobs = 2000
	dir := b.TempDir()
	pkgrun := filepath.Join(dir, "pkgrun")
	if err := os.WriteFile(pkgrun, []byte(trivialPkgrun), 0o755); err != nil {
		b.Fatal(err)
	}
	pkgs := schedtest.RandomDAG(42, jobs)
	ctx := context.Background()
	for k := 0; b.Loop(); k++ {
		path := filepath.Join(dir, fmt.Sprintf("bulk%d.db", k))
		if err := schedtest.WriteDB(ctx, path, pkgs); err != nil {
			b.Fatal(err)
		}
		d, err := db.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		e, err := local.New(local.Config{Pkgrun: pkgrun, Slots: 2, Tag: path})
		if err != nil {
			b.Fatal(err)
		}
		c0, t0 := cpuSelf(), time.Now()
		sum, err := sched.Run(ctx, d, sched.RunOptions{Exec: e})
		cpu, wall := cpuSelf()-c0, time.Since(t0)
		e.Close()
		d.Close()
		if err != nil {
			b.Fatal(err)
		}
		if sum.Counts[sched.Done] != jobs || sum.Jobs != jobs {
			b.Fatalf("summary %+v", sum)
		}
		per := cpu / jobs
		b.ReportMetric(float64(per.Microseconds())/1000, "cpu-ms/job")
		fmt.Printf("dispatch: %d jobs at -j 2 in %v wall, pkgsched CPU %v = %.3f ms/job (target < 5), utilisation %.1f%%\n",
			jobs, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(per.Microseconds())/1000, 100*sum.Utilisation)
	}
}
