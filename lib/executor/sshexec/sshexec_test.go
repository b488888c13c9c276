package sshexec_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest/schedcheck"
	"github.com/pkgbulk/pkgbulk/lib/executor/sshexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func TestMain(m *testing.M) { executortest.Main(m) }

func newExec(t *testing.T, srv *storetest.SSHServer, s job.Settings, slots int, name string) *sshexec.Executor {
	t.Helper()
	e, err := sshexec.New(sshexec.Config{
		Host:         sshexec.Host{Name: name, User: srv.User, Host: srv.Host, Port: srv.Port, Slots: slots, Pkgrun: executortest.FakePkgrun(t)},
		Settings:     s,
		IdentityFile: srv.IdentityFile,
		KnownHosts:   srv.KnownHosts,
		Tag:          t.Name(),
		Grace:        2 * time.Second,
		KeepAlive:    200 * time.Millisecond,
		Deadline:     2 * time.Second,
		BackoffMin:   100 * time.Millisecond,
		BackoffMax:   time.Second,
		GiveUp:       3,
		Log:          os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestSuite runs the conformance suite over a real sshd on loopback.
func TestSuite(t *testing.T) {
	srv := storetest.StartSSHD(t)
	factory := func(t *testing.T, s job.Settings, slots int) executor.Executor {
		return newExec(t, srv, s, slots, "")
	}
	executortest.Run(t, factory)
	t.Run("CrashRequeuedOnce", func(t *testing.T) { schedcheck.Requeue(t, factory) })
}

// ppid returns the parent of pid.
func ppid(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	p, _ := strconv.Atoi(f[1])
	return p
}

// markerPid is the pid the fake builder writes into its marker file; the
// file appears before its content, so wait (on a loaded machine, a while)
// for a pid.
func markerPid(t *testing.T, dir string) int {
	for i := 0; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "running.hang-1.0"))
		if err != nil {
			t.Fatal(err)
		}
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 1 {
			return p
		}
		if i == 1000 {
			t.Fatalf("the marker file holds %q, not a pid", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLost breaks the connection of a running job: its sshd processes
// killed (the link breaks, the host is still there), or stopped (the host
// hangs: keep-alives go unanswered). Run must report a lost worker within
// the deadline and the builder must be dead by then.
func TestLost(t *testing.T) {
	srv := storetest.StartSSHD(t)
	t.Run("SessionsKilled", func(t *testing.T) {
		dir := t.TempDir()
		e := newExec(t, srv, executortest.Settings(dir, 0), 1, "")
		executortest.Lost(t, e, dir, 10*time.Second, func() {
			if n := srv.DropSessions(); n == 0 {
				t.Error("no sshd session to kill")
			}
		}, func() {}, false)
	})
	t.Run("Stopped", func(t *testing.T) {
		dir := t.TempDir()
		e := newExec(t, srv, executortest.Settings(dir, 0), 1, "")
		var stopped []int
		executortest.Lost(t, e, dir, 10*time.Second, func() {
			// The builder's sshd session process: the connection
			// hangs, the listener still answers.
			p := ppid(t, markerPid(t, dir))
			for i := 0; i < 5; i++ {
				if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.HasPrefix(string(b), "sshd") {
					break
				}
				p = ppid(t, p)
			}
			stopped = []int{p}
			for _, p := range stopped {
				syscall.Kill(p, syscall.SIGSTOP)
			}
		}, func() {
			for _, p := range stopped {
				syscall.Kill(p, syscall.SIGCONT)
			}
		}, false)
	})
}

// TestLostUnreachable stops every sshd process of the host (the listener
// too): the scheduler cannot reach it to kill the builder, so the
// builder's own watchdog must have killed it once Run returns.
func TestLostUnreachable(t *testing.T) {
	srv := storetest.StartSSHD(t)
	dir := t.TempDir()
	e := newExec(t, srv, executortest.Settings(dir, 0), 1, "")
	var stopped []int
	executortest.Lost(t, e, dir, 15*time.Second, func() {
		for p := ppid(t, markerPid(t, dir)); p > 1; p = ppid(t, p) {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.HasPrefix(string(b), "sshd") {
				stopped = append(stopped, p)
			}
		}
		for _, p := range stopped {
			syscall.Kill(p, syscall.SIGSTOP)
		}
	}, func() {
		for _, p := range stopped {
			syscall.Kill(p, syscall.SIGCONT)
		}
	}, false)
	if len(stopped) < 2 {
		t.Errorf("stopped %v: want the session and the listener", stopped)
	}
}

// TestHostDown checks the circuit breaker: a host that cannot be reached
// is given up after GiveUp tries, with back-off between them.
func TestHostDown(t *testing.T) {
	srv := storetest.StartSSHD(t)
	srv.Stop()
	e := newExec(t, srv, executortest.Settings(t.TempDir(), 0), 1, "")
	start := time.Now()
	_, err := e.Acquire(context.Background())
	if !errors.Is(err, executor.ErrLost) {
		t.Fatalf("Acquire on a host that is down: %v, want ErrLost", err)
	}
	// Three tries, 100ms then 200ms apart.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("gave up after %v: no back-off", d)
	}
}

// TestUnknownHostKey: a host whose key is not in known_hosts is refused.
func TestUnknownHostKey(t *testing.T) {
	srv := storetest.StartSSHD(t)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o644)
	e, err := sshexec.New(sshexec.Config{
		Host:         sshexec.Host{User: srv.User, Host: srv.Host, Port: srv.Port, Slots: 1, Pkgrun: executortest.FakePkgrun(t)},
		IdentityFile: srv.IdentityFile, KnownHosts: empty, GiveUp: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Acquire(context.Background()); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown host key: %v", err)
	}
}

// TestWrongPkgrun: a pkgrun that does not speak our result version is
// refused at connect.
func TestWrongPkgrun(t *testing.T) {
	srv := storetest.StartSSHD(t)
	e, err := sshexec.New(sshexec.Config{
		Host:         sshexec.Host{User: srv.User, Host: srv.Host, Port: srv.Port, Slots: 1, Pkgrun: "/bin/echo"},
		IdentityFile: srv.IdentityFile, KnownHosts: srv.KnownHosts, GiveUp: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Acquire(context.Background()); err == nil || !strings.Contains(err.Error(), "result version") {
		t.Fatalf("wrong pkgrun: %v", err)
	}
}

// TestCleanStale: after a scheduler died in the middle of a job, the next
// run's executor removes the directory that job left (made since it
// started), and only for jobs of its own host; a lost job's own directory
// is removed when its builder is killed.
func TestCleanStale(t *testing.T) {
	srv := storetest.StartSSHD(t)
	dir := t.TempDir()
	e := newExec(t, srv, executortest.Settings(dir, 0), 1, "h1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "running.hang-1.0")); err == nil {
				srv.DropSessions()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	s.Run(ctx, executor.Job{PkgName: "hang-1.0", Record: []byte("PKGNAME=hang-1.0\nPKG_LOCATION=test/hang\n"), Attempt: 1})
	if left := executortest.JobDirs(t, dir); len(left) != 0 {
		t.Fatalf("job directories after the lost job was killed: %v", left)
	}
	// What a builder killed with its scheduler leaves.
	stale := filepath.Join(dir, "stale-1.0.12345")
	if err := os.MkdirAll(filepath.Join(stale, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	e2 := newExec(t, srv, executortest.Settings(dir, 0), 1, "h1")
	got, err := e2.CleanStale(ctx, []executor.StaleJob{{PkgName: "stale-1.0", Worker: "other/1", Started: started}})
	if err != nil || len(got) != 0 {
		t.Fatalf("CleanStale of another host's job: %v %v", got, err)
	}
	got, err = e2.CleanStale(ctx, []executor.StaleJob{{PkgName: "stale-1.0", Worker: "h1/1", Started: started}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Err != nil || !strings.HasSuffix(got[0].Path, stale) {
		t.Fatalf("CleanStale: %+v, want %s removed", got, stale)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("%s left after CleanStale", stale)
	}
}
