package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

// BenchmarkLeaseGrants: no-op jobs through the whole path: a scheduler
// side (Acquire, Run) and workers on real TLS (poll, report an up-to-date
// result), every lease written to and ended in the SQLite database.
// Prints grants/s (target: 5,000/s).
func BenchmarkLeaseGrants(b *testing.B) {
	for _, workers := range []int{8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			e := newEnv(b, func(c *Config) { c.LeaseTTL = time.Minute; c.PollWait = 5 * time.Second })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for i := range workers {
				c := e.worker(fmt.Sprintf("w%d", i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						l, err := c.Poll(ctx, LeaseRequest{Wait: Duration(time.Second)})
						if err != nil || l == nil {
							continue
						}
						r := job.Result{PkgName: l.PkgName, PkgPath: l.PkgPath, Status: job.StatusUpToDate}
						var buf bytes.Buffer
						r.Encode(&buf)
						if _, err := c.Report(ctx, l.Ref(), ResultReport{Stdout: buf.String()}); err != nil && ctx.Err() == nil {
							b.Errorf("report: %v", err)
						}
					}
				}()
			}
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var sched sync.WaitGroup
			for range workers {
				sched.Add(1)
				go func() {
					defer sched.Done()
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						sl, err := e.srv.Acquire(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						name := fmt.Sprintf("p%d-1.0", n)
						out, err := sl.Run(ctx, executor.Job{PkgName: name, PkgPath: "cat/p", Record: []byte("PKGNAME=" + name + "\n")})
						if err != nil || out.Result.Status != job.StatusUpToDate {
							b.Errorf("run %s: %v", name, err)
							return
						}
					}
				}()
			}
			sched.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "grants/s")
			cancel()
			wg.Wait()
		})
	}
}

// BenchmarkHeartbeat: the cost of one heartbeat on real TLS (a lease
// moved on in memory and in the database). A worker heartbeats every
// third of the lease TTL, so with the default 5m TTL one worker costs
// the server one of these every 100s.
func BenchmarkHeartbeat(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.LeaseTTL = time.Hour })
	c := e.worker("hb")
	sl, leases := e.acquire(c)
	done := run(sl, "hb-1.0")
	l := getLease(b, leases)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Heartbeat(context.Background(), l.Ref(), HeartbeatRequest{Phase: "build"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "heartbeats/s")
	// CPU of both ends (client and server share this process): an upper
	// bound of the server's cost per heartbeat.
	perBeat := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perBeat/1e3, "cpu-µs/heartbeat")
	// What one worker costs at the default TTL (a heartbeat every 100s),
	// as a share of one core.
	b.ReportMetric(perBeat/100e9, "core-share/worker@5m")
	c.Release(context.Background(), l.Ref(), "bench over")
	<-done
}

// BenchmarkLeaseStore: the lease store alone, without HTTP: a grant (the
// lease written to SQLite, committed in groups, before it is handed over)
// and its end (fenced in SQLite) per no-op job, from 32 concurrent slots.
func BenchmarkLeaseStore(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.LeaseTTL = time.Minute })
	const slots = 32
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range slots {
		ss, _ := e.srv.newSession(fmt.Sprintf("h%d", w), "t", fmt.Sprintf("pull:b%d", w), RegisterRequest{Cores: 1}, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				e.srv.mu.Lock()
				ss.waiting++
				sl := &Slot{s: e.srv, sess: ss, name: ss.worker, taken: true, CoreHold: executor.CoreHold{Pool: ss.pool}}
				e.srv.mu.Unlock()
				name := fmt.Sprintf("p%d-1.0", n)
				l, err := e.srv.grant(context.Background(), sl, executor.Job{PkgName: name, PkgPath: "cat/p"})
				if err != nil {
					b.Error(err)
					return
				}
				<-ss.deliver
				e.srv.finish(l, "done", nil)
				sl.giveBack()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "grants/s")
}

// BenchmarkRequeueAfterLoss: how long after a worker dies (it took its
// lease, then never heartbeats again) Run gives the job back with
// ErrLost: about the lease TTL (here 500ms; 5m by default, ttl= in the
// spec).
func BenchmarkRequeueAfterLoss(b *testing.B) {
	const ttl = 500 * time.Millisecond
	e := newEnv(b, func(c *Config) { c.LeaseTTL = ttl; c.Sweep = 50 * time.Millisecond })
	c := e.worker("dies")
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		sl, leases := e.acquire(c)
		done := run(sl, fmt.Sprintf("lost%d-1.0", i))
		getLease(b, leases)
		died := time.Now() // the worker's last word was its poll
		r := waitResult(b, done)
		if !errors.Is(r.err, executor.ErrLost) {
			b.Fatalf("Run: %v", r.err)
		}
		total += time.Since(died)
	}
	b.StopTimer()
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-requeue")
	b.ReportMetric(ttl.Seconds(), "s-ttl")
}

// Env of the worker swarm that BenchmarkServerCPU runs in a child process
// (the test binary again, see TestMain).
const (
	swarmEnv    = "PKGBULK_PULL_SWARM"        // "URL FINGERPRINT"
	swarmTokens = "PKGBULK_PULL_SWARM_TOKENS" // one token a line
)

func TestMain(m *testing.M) {
	if v := os.Getenv(swarmEnv); v != "" {
		url, fp, _ := strings.Cut(v, " ")
		swarm(url, fp, strings.Fields(os.Getenv(swarmTokens)))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// swarm runs one no-op worker per token until the server goes away.
func swarm(url, fp string, tokens []string) {
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := NewClient(ClientConfig{URL: url, Fingerprint: fp})
			if err != nil {
				return
			}
			ctx := context.Background()
			if _, err := c.Register(ctx, regReq(tok)); err != nil {
				fmt.Fprintln(os.Stderr, "swarm:", err)
				return
			}
			fails := 0
			for fails < 20 {
				l, err := c.Poll(ctx, LeaseRequest{Wait: Duration(time.Second)})
				if err != nil {
					fails++
					time.Sleep(50 * time.Millisecond)
					continue
				}
				fails = 0
				if l == nil {
					continue
				}
				r := job.Result{PkgName: l.PkgName, PkgPath: l.PkgPath, Status: job.StatusUpToDate}
				var buf bytes.Buffer
				r.Encode(&buf)
				c.Report(ctx, l.Ref(), ResultReport{Stdout: buf.String()})
			}
		}()
	}
	wg.Wait()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServerCPU: no-op jobs with the workers in another process
// (real TLS over loopback), measuring the server process's CPU per grant:
// the server's capacity is about (cores / cpu-µs per grant). Prints
// grants/s (on this machine, with the workers competing for it) and
// server-cpu-µs/grant.
func BenchmarkServerCPU(b *testing.B) {
	const workers = 16
	e := newEnv(b, func(c *Config) { c.LeaseTTL = time.Minute; c.PollWait = 5 * time.Second })
	var toks []string
	for i := range workers {
		toks = append(toks, e.token(fmt.Sprintf("s%d", i)))
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), swarmEnv+"="+e.hs.URL+" "+e.fp, swarmTokens+"="+strings.Join(toks, "\n"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { e.stop(); cmd.Wait() }()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); e.srv.Capacity() < workers; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d workers connected", e.srv.Capacity(), workers)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				sl, err := e.srv.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				name := fmt.Sprintf("c%d-1.0", n)
				if _, err := sl.Run(ctx, executor.Job{PkgName: name, PkgPath: "cat/c", Record: []byte("PKGNAME=" + name + "\n")}); err != nil {
					b.Errorf("run %s: %v", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "grants/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "server-cpu-µs/grant")
}
