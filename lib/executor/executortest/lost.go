package executortest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// Lost checks an executor whose worker goes away in the middle of a build:
// e (made with Settings(dir, ...)) runs a job that hangs, breakWorker is
// called once the builder runs (kill the server, cut the link, stop the
// host), and Run must return an error wrapping executor.ErrLost (and
// executor.ErrCrash, so the scheduler requeues the job) within limit,
// with the builder no longer running by then, unless the worker cannot
// be reached to stop it (mayOutlive: a stopped host), when it must be dead
// by the time heal has run and another job ran on e.
func Lost(t *testing.T, e executor.Executor, dir string, limit time.Duration, breakWorker, heal func(), mayOutlive bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit+time.Minute)
	defer cancel()
	s, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "running.hang-1.0")
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(marker); err == nil {
				breakWorker()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	out, err := s.Run(ctx, executor.Job{PkgName: "hang-1.0", Record: record("hang-1.0"), Attempt: 1})
	took := time.Since(start)
	if err == nil {
		t.Fatalf("lost worker returned a result: %+v", out.Result)
	}
	if !errors.Is(err, executor.ErrLost) || !errors.Is(err, executor.ErrCrash) {
		t.Errorf("lost worker: error %v, want ErrLost and ErrCrash", err)
	}
	if took > limit {
		t.Errorf("lost worker noticed after %v, want at most %v", took, limit)
	}
	pid := 0
	if b, err := os.ReadFile(marker); err == nil {
		pid, _ = strconv.Atoi(string(b))
	}
	alive := func() bool { return pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) }
	if !mayOutlive && alive() {
		t.Errorf("builder pid %d still running after Run returned for its lost worker", pid)
	}
	heal()
	if out, err := runOne(t, e, "ok-1.0"); err != nil || out.Result.Status != "done" {
		t.Errorf("build after the worker came back: %v", err)
	}
	for i := 0; alive() && i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive() {
		t.Errorf("builder pid %d of the lost job still running after the worker came back and built again", pid)
	}
}

// zombie reports whether pid is a zombie (dead, not yet reaped).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'Z'
		}
	}
	return false
}
