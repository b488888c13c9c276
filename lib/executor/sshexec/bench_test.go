package sshexec_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/executor/sshexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/store/sftpstore"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// noopPkgrun writes a pkgrun that builds nothing: it answers version
// --json like pkgrun and prints a done result for the record it is given.
func noopPkgrun(b testing.TB) string {
	p := filepath.Join(b.TempDir(), "pkgrun")
	script := `#!/bin/sh
in=/dev/stdin
while [ $# -gt 0 ]; do
	case $1 in
	version) echo '{"pkgbulk":"noop","protocol":%d,"result":%d}'; exit 0;;
	--input) in=$2; shift;;
	esac
	shift
done
name=$(sed -n 's/^PKGNAME=//p' "$in")
printf '{"version":1,"pkgname":"%%s","pkgpath":"x/y","status":"done"}\n' "$name"
`
	script = fmt.Sprintf(script, job.ProtocolVersion, job.ResultVersion)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	return p
}

// bareSession opens a second connection to srv and returns a function
// that times one bare session (running true) on it: what sshd and the
// login shell's start-up files cost every job before any of ours runs.
func bareSession(b *testing.B, srv *storetest.SSHServer) func() time.Duration {
	sc := sftpstore.Config{User: srv.User, Host: srv.Host, Port: srv.Port}
	hk, algos, err := sftpstore.HostKeyChecker(srv.KnownHosts, sc)
	if err != nil {
		b.Fatal(err)
	}
	auth, release, err := sftpstore.Auth(sftpstore.AuthOptions{IdentityFile: srv.IdentityFile})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(release)
	c, err := ssh.Dial("tcp", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)),
		&ssh.ClientConfig{User: srv.User, Auth: auth, HostKeyCallback: hk, HostKeyAlgorithms: algos})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return func() time.Duration {
		start := time.Now()
		s, err := c.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Run("true"); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
}

func benchSSH(b *testing.B, slots int) executor.Executor {
	e, _ := benchSSHServer(b, slots)
	return e
}

func benchSSHServer(b *testing.B, slots int) (executor.Executor, *storetest.SSHServer) {
	srv := storetest.StartSSHD(b)
	e, err := sshexec.New(sshexec.Config{
		Host:         sshexec.Host{User: srv.User, Host: srv.Host, Port: srv.Port, Slots: slots, Pkgrun: noopPkgrun(b)},
		IdentityFile: srv.IdentityFile, KnownHosts: srv.KnownHosts, Tag: b.Name(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e, srv
}

func benchLocal(b *testing.B, slots int) executor.Executor {
	e, err := local.New(local.Config{Pkgrun: noopPkgrun(b), Slots: slots, Tag: b.Name()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// BenchmarkDispatch is the cost of one no-op job, one after the other on
// one slot: over ssh on loopback, and locally for comparison (the
// difference is what ssh adds per job). For ssh it also reports the
// cost of a bare session (ms/session: sshd and the ssh user's login
// shell, whose start-up files run for every session) and the rest
// (ms/job-ours: the job's session set-up, wrapper and the no-op pkgrun).
func BenchmarkDispatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		mk   func(*testing.B, int) (executor.Executor, *storetest.SSHServer)
	}{{"ssh", benchSSHServer}, {"local", func(b *testing.B, n int) (executor.Executor, *storetest.SSHServer) { return benchLocal(b, n), nil }}} {
		b.Run(tc.name, func(b *testing.B) {
			e, srv := tc.mk(b, 1)
			ctx := context.Background()
			rec := []byte("PKGNAME=noop-1.0\nPKG_LOCATION=x/noop\n")
			// The first job connects.
			run := func() {
				s, err := e.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Run(ctx, executor.Job{PkgName: "noop-1.0", Record: rec, Attempt: 1}); err != nil {
					b.Fatal(err)
				}
			}
			run()
			var bare func() time.Duration
			var bareTotal time.Duration
			if srv != nil {
				bare = bareSession(b, srv)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
				if bare != nil {
					// A bare session right after each job, off the
					// clock, so that both see the same load.
					b.StopTimer()
					bareTotal += bare()
					b.StartTimer()
				}
			}
			b.StopTimer()
			perJob := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
			b.ReportMetric(perJob, "ms/job")
			if bare != nil {
				sess := float64(bareTotal.Microseconds()) / 1000 / float64(b.N)
				b.ReportMetric(sess, "ms/session")
				b.ReportMetric(perJob-sess, "ms/job-ours")
			}
		})
	}
}

// BenchmarkUtilisation runs 1,000 independent no-op packages through the
// real scheduler on 8 ssh slots on loopback and reports the slot
// utilisation and the idle slot time with packages ready.
func BenchmarkUtilisation(b *testing.B) {
	const n, slots = 1000, 8
	for _, tc := range []struct {
		name string
		mk   func(*testing.B, int) executor.Executor
	}{{"ssh", benchSSH}, {"local", benchLocal}} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				path := filepath.Join(b.TempDir(), "bulk.db")
				pkgs := make([]schedtest.Pkg, n)
				for k := range pkgs {
					pkgs[k] = schedtest.Pkg{Name: fmt.Sprintf("p%04d-1.0", k)}
				}
				if err := schedtest.WriteDB(context.Background(), path, pkgs); err != nil {
					b.Fatal(err)
				}
				d, err := db.Open(context.Background(), path)
				if err != nil {
					b.Fatal(err)
				}
				e := tc.mk(b, slots)
				b.StartTimer()
				start := time.Now()
				sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: e})
				if err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				d.Close()
				if sum.Counts[sched.Done] != n {
					b.Fatalf("%d done, want %d", sum.Counts[sched.Done], n)
				}
				b.ReportMetric(100*sum.Utilisation, "util%")
				b.ReportMetric(float64(el.Milliseconds())/n, "ms/job-wall")
				b.ReportMetric(float64(sum.BusyMS)/n, "ms/job-slot")
				b.ReportMetric(float64(sum.IdleReadyMS)/1000, "idle-ready-s")
			}
		})
	}
}
