// Package executortest is the conformance suite every executor passes
// (local, ssh, pull...), and the fake pkgrun the suite drives.
//
// An executor's test file calls Run with a Factory that makes the
// executor run the fake builder (FakePkgrun) with the given settings; its
// TestMain calls Main so the test binary can act as that builder:
//
//	func TestMain(m *testing.M) { executortest.Main(m) }
//
//	func TestSuite(t *testing.T) {
//		executortest.Run(t, func(t *testing.T, s job.Settings, slots int) executor.Executor {
//			e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: slots, Settings: s})
//			...
//		})
//	}
//
// The suite checks results of every kind, crashes of every kind (exit 2,
// a signal, garbage on stdout), cancellation in the middle of a build
// (the build stops, nothing is left running, no crash is counted), slot
// accounting, a builder out of disk space (not a crash; its slot is
// retired). Lost checks a worker lost in the middle of a build. The
// suite does not import the scheduler: executortest/schedcheck runs an
// executor under the real scheduler (crashed jobs requeued once per
// crash, never run twice at once).
package executortest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

// Factory makes the executor under test with the given number of slots,
// running the fake builder with settings. It registers its own cleanup.
type Factory func(t *testing.T, settings job.Settings, slots int) executor.Executor

// Run runs the suite.
func Run(t *testing.T, newExec Factory) {
	t.Run("Results", func(t *testing.T) { testResults(t, newExec) })
	t.Run("Crashes", func(t *testing.T) { testCrashes(t, newExec) })
	t.Run("CancelMidBuild", func(t *testing.T) { testCancel(t, newExec) })
	t.Run("Slots", func(t *testing.T) { testSlots(t, newExec) })
	t.Run("NoSpace", func(t *testing.T) { testNoSpace(t, newExec) })
}

func record(name string) []byte {
	return []byte("PKGNAME=" + name + "\nPKG_LOCATION=test/" + strings.TrimSuffix(name, "-1.0") + "\n")
}

func runOne(t *testing.T, e executor.Executor, name string) (*executor.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if s.Name() == "" {
		t.Errorf("slot has no name")
	}
	return s.Run(ctx, executor.Job{PkgName: name, PkgPath: "test/x", Record: record(name), Attempt: 1})
}

func testResults(t *testing.T, newExec Factory) {
	dir := t.TempDir()
	e := newExec(t, Settings(dir, 0), 2)
	for _, tc := range []struct {
		name   string
		status job.Status
		phase  string
	}{
		{"ok-1.0", job.StatusDone, ""},
		{"failing-1.0", job.StatusFailed, "build"},
		{"skewed-1.0", job.StatusSkew, ""},
		{"timeout-1.0", job.StatusTimeout, "build"},
	} {
		out, err := runOne(t, e, tc.name)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if out.Result.PkgName != tc.name || out.Result.Status != tc.status || out.Result.FailedPhase != tc.phase {
			t.Errorf("%s: got %s %s phase %q, want %s phase %q", tc.name, out.Result.PkgName, out.Result.Status, out.Result.FailedPhase, tc.status, tc.phase)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, LogName))
	if got := strings.Count(string(log), "\n"); got != 4 {
		t.Errorf("the builder ran %d times, want 4:\n%s", got, log)
	}
}

func testCrashes(t *testing.T, newExec Factory) {
	dir := t.TempDir()
	e := newExec(t, Settings(dir, 0), 1)
	for _, name := range []string{"crash-1.0", "garbage-1.0", "signal-1.0"} {
		out, err := runOne(t, e, name)
		if err == nil {
			t.Errorf("%s: got result %+v, want a crash", name, out.Result)
			continue
		}
		if !errors.Is(err, executor.ErrCrash) {
			t.Errorf("%s: error %v does not wrap ErrCrash", name, err)
		}
		if errors.Is(err, context.Canceled) {
			t.Errorf("%s: a crash reported as cancellation: %v", name, err)
		}
	}
	// The slot came back after each crash.
	if out, err := runOne(t, e, "ok-1.0"); err != nil || out.Result.Status != job.StatusDone {
		t.Errorf("build after crashes: %v", err)
	}
	// The builder killed by a signal left its job directory.
	if left := JobDirs(t, dir); len(left) > 0 {
		t.Errorf("crashed builders left job directories: %v", left)
	}
}

// JobDirs lists the job directories (<PKGNAME>.<random>) in the work
// root dir.
func JobDirs(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.Contains(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// testNoSpace: a builder out of disk space is neither a result nor a
// crash; its slot is not handed out again, and once no slot is left
// Acquire fails at once with ErrNoSpace.
func testNoSpace(t *testing.T, newExec Factory) {
	e := newExec(t, Settings(t.TempDir(), 0), 2)
	for k := range 2 {
		out, err := runOne(t, e, "nospace-1.0")
		if err == nil {
			t.Fatalf("out of space: got result %+v, want an error", out.Result)
		}
		if !errors.Is(err, executor.ErrNoSpace) || errors.Is(err, executor.ErrCrash) {
			t.Errorf("out of space: error %v, want ErrNoSpace and no crash", err)
		}
		if !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("out of space: error %v lacks the builder's stderr", err)
		}
		if c := e.Capacity(); c != 1-k {
			t.Errorf("capacity %d after %d slots ran out of space, want %d", c, k+1, 1-k)
		}
		if k == 0 {
			if out, err := runOne(t, e, "ok-1.0"); err != nil || out.Result.Status != job.StatusDone {
				t.Errorf("build on the slot left: %v", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	s, err := e.Acquire(ctx)
	if err == nil {
		s.Release()
		t.Fatalf("acquired slot %s with every slot out of space", s.Name())
	}
	if !errors.Is(err, executor.ErrNoSpace) || time.Since(start) > 5*time.Second {
		t.Errorf("acquire with every slot out of space: %v after %v, want ErrNoSpace at once", err, time.Since(start))
	}
}

func testCancel(t *testing.T, newExec Factory) {
	dir := t.TempDir()
	e := newExec(t, Settings(dir, 0), 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "running.hang-1.0")
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(marker); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	out, err := s.Run(ctx, executor.Job{PkgName: "hang-1.0", Record: record("hang-1.0"), Attempt: 1})
	if err == nil {
		t.Fatalf("cancelled build returned a result: %+v", out.Result)
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, executor.ErrCrash) {
		t.Errorf("cancelled build: error %v, want context.Canceled and no crash", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancel took %v", d)
	}
	if b, err := os.ReadFile(marker); err == nil {
		if pid, err := strconv.Atoi(string(b)); err == nil && syscall.Kill(pid, 0) == nil {
			t.Errorf("builder pid %d still running after its job was cancelled", pid)
		}
	}
	if left := JobDirs(t, dir); len(left) > 0 {
		t.Errorf("the cancelled builder left its job directory: %v", left)
	}
	if out, err := runOne(t, e, "ok-1.0"); err != nil || out.Result.Status != job.StatusDone {
		t.Errorf("build after a cancel: %v", err)
	}
}

func testSlots(t *testing.T, newExec Factory) {
	e := newExec(t, Settings(t.TempDir(), 0), 2)
	if c := e.Capacity(); c != 2 {
		t.Errorf("capacity %d, want 2", c)
	}
	ctx := context.Background()
	a, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() == b.Name() {
		t.Errorf("two slots named %s", a.Name())
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if s, err := e.Acquire(short); err == nil {
		t.Errorf("acquired a third slot %s of 2", s.Name())
		s.Release()
	}
	a.Release()
	again, err := e.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	again.Release()
	b.Release()
}

// testRequeue runs the real scheduler over the executor: a job whose
// builder crashes is requeued once per crash and built again; a job that
// crashes every time stops the run at the bound without failing anything;
// no job ever runs twice at once.
