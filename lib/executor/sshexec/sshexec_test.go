package sshexec_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest/schedcheck"
	"github.com/pkgbulk/pkgbulk/lib/executor/noway"
	"github.com/pkgbulk/pkgbulk/lib/executor/sshexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
	"github.com/pkgbulk/pkgbulk/lib/version"
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

// TestVersionCheck: at connect the host's pkgrun is asked its version
// (pkgrun version --json); a missing pkgrun, one without the version
// command and one that speaks another job protocol take the host out at
// once with an error naming the host and both versions, and the host is
// not tried again (no crash loop).
func TestVersionCheck(t *testing.T) {
	srv := storetest.StartSSHD(t)
	ours := version.Current()
	for _, tc := range []struct {
		name   string
		script string // the host's pkgrun ("" : none)
		want   []string
	}{
		{"missing", "", []string{"no pkgrun at"}},
		{"old", "echo 'unexpected argument version' >&2; exit 2", []string{"failed with exit status 2", "unexpected argument version"}},
		{"garbage", "echo pkgrun 0.9", []string{"parse pkgrun version"}},
		{"mismatch", fmt.Sprintf(`echo '{"pkgbulk":"v0.1.0","protocol":%d,"result":1}'`, job.ProtocolVersion+1),
			[]string{fmt.Sprintf("speaks job protocol %d (pkgbulk v0.1.0)", job.ProtocolVersion+1), fmt.Sprintf("speaks %d (pkgbulk %s)", ours.Protocol, ours.Pkgbulk)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pkgrun := filepath.Join(dir, "pkgrun")
			count := filepath.Join(dir, "count")
			if tc.script != "" {
				if err := os.WriteFile(pkgrun, []byte("#!/bin/sh\necho x >> "+count+"\n"+tc.script+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var log strings.Builder
			e, err := sshexec.New(sshexec.Config{
				Host:         sshexec.Host{Name: "h1", User: srv.User, Host: srv.Host, Port: srv.Port, Slots: 1, Pkgrun: pkgrun},
				IdentityFile: srv.IdentityFile, KnownHosts: srv.KnownHosts, GiveUp: 5, BackoffMin: 10 * time.Millisecond, Log: &log,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			_, err = e.Acquire(context.Background())
			if err == nil || !errors.Is(err, version.ErrIncompatible) || !strings.Contains(err.Error(), "h1 taken out") {
				t.Fatalf("Acquire: %v, want the host taken out (ErrIncompatible)", err)
			}
			for _, w := range append(tc.want, pkgrun) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			start := time.Now()
			if _, err2 := e.Acquire(context.Background()); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second Acquire: %v, want the same error", err2)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("second Acquire took %v: the host was tried again", d)
			}
			if b, _ := os.ReadFile(count); strings.Count(string(b), "x") > 1 {
				t.Errorf("pkgrun asked %d times: the host was tried again", strings.Count(string(b), "x"))
			}
			if strings.Count(log.String(), "taken out") != 1 {
				t.Errorf("log: %q, want one line saying the host was taken out", log.String())
			}
		})
	}
	t.Run("match", func(t *testing.T) {
		e := newExec(t, srv, executortest.Settings(t.TempDir(), 0), 1, "")
		s, err := e.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
		if got := e.Remote(); got != ours {
			t.Errorf("the host's pkgrun: %+v, want %+v", got, ours)
		}
	})
}

// TestNever: the host's slots refuse the packages on its no-way list
// (executor.Accepter) and take the others.
func TestNever(t *testing.T) {
	srv := storetest.StartSSHD(t)
	never, err := noway.Parse([]string{"www/firefox*", "rust>=1.80"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := sshexec.New(sshexec.Config{
		Host:         sshexec.Host{User: srv.User, Host: srv.Host, Port: srv.Port, Slots: 1, Pkgrun: executortest.FakePkgrun(t), Never: never},
		IdentityFile: srv.IdentityFile, KnownHosts: srv.KnownHosts, Tag: t.Name(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, err := e.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	a, ok := s.(executor.Accepter)
	if !ok {
		t.Fatal("an ssh slot is not an executor.Accepter")
	}
	for _, tc := range []struct {
		pkgpath, pkgname string
		want             bool
	}{
		{"www/firefox", "firefox-128.0", false},
		{"www/firefox-esr", "firefox-esr-115", false},
		{"lang/rust", "rust-1.86.0", false},
		{"lang/rust", "rust-1.79.0", true},
		{"devel/foo", "foo-1.0", true},
	} {
		if got := a.Accepts(tc.pkgpath, tc.pkgname); got != tc.want {
			t.Errorf("Accepts(%s, %s) = %v, want %v", tc.pkgpath, tc.pkgname, got, tc.want)
		}
	}
}

// TestCores: a host's slots share one core pool of its cores (declared,
// or counted with nproc at connect, at least its slots) times the oversubscription: however
// the slots Grow, the cores granted on the host never add up to more, a
// slot beyond that waits in Acquire, and the cores come back with the
// slots.
func TestCores(t *testing.T) {
	srv := storetest.StartSSHD(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		cores, slots  int
		oversubscribe float64
		want          int // cores × oversubscribe
	}{
		{"declared", 2, 4, 1, 2},
		{"oversubscribed", 2, 4, 1.5, 3},
		{"many slots", 3, 6, 2, 6},
		{"nproc", 0, 2, 1, 0},
		{"nproc, more slots", 0, 2 * runtime.NumCPU(), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := sshexec.New(sshexec.Config{
				Host:         sshexec.Host{User: srv.User, Host: srv.Host, Port: srv.Port, Slots: tc.slots, Pkgrun: executortest.FakePkgrun(t), Cores: tc.cores},
				IdentityFile: srv.IdentityFile, KnownHosts: srv.KnownHosts, Tag: t.Name(), Oversubscribe: tc.oversubscribe,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			want := tc.want
			if tc.cores == 0 {
				want = max(runtime.NumCPU(), tc.slots) // the ssh host is this machine
			}
			var slots []executor.Slot
			granted := 0
			for len(slots) < tc.slots {
				s, err := e.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				slots = append(slots, s)
				cs, ok := s.(executor.CoreSlot)
				if !ok {
					t.Fatal("an ssh slot is not an executor.CoreSlot")
				}
				if tc.cores != 0 && cs.Cores() != tc.cores {
					t.Errorf("Cores() = %d, want %d", cs.Cores(), tc.cores)
				}
				granted += 1 + cs.Grow(1)
				if granted > want || granted+cs.FreeCores() != want {
					t.Fatalf("granted %d, free %d: more than cores × oversubscribe = %d", granted, cs.FreeCores(), want)
				}
				if cs.FreeCores() == 0 {
					break
				}
			}
			if len(slots) < tc.slots {
				// Every core is granted: the next slot waits.
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				_, err := e.Acquire(short)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Acquire with every core granted: %v, want it to wait", err)
				}
			}
			for _, s := range slots {
				s.Release()
			}
			s, err := e.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Release()
			cs := s.(executor.CoreSlot)
			if got := cs.Grow(want); got != want-1 || cs.FreeCores() != 0 {
				t.Errorf("after the slots came back: Grow(%d) = %d, free %d; want %d, 0", want, got, cs.FreeCores(), want-1)
			}
		})
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
