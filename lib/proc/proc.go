// Package proc runs one command as the leader of its own process group,
// with its output going straight to a log file, under two limits taken from
// poudriere: a wall-clock deadline (MAX_EXECUTION_TIME) and a maximum time
// without output (NOHANG_TIME), where "output" is growth of any of a set of
// watched files (the phase log and the build's work log). When a limit
// expires or the context is cancelled, the whole process group is killed,
// so a make that forked a compiler that forked a test suite dies entirely,
// not only the make.
//
// Run reports the wall time and the CPU time (user+system) of the command
// and of every descendant the command waited for, from the rusage wait4
// returns; processes that were orphaned and reaped by init are not counted,
// which is the limit of what rusage can see without cgroups.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Why says what stopped a command before it finished on its own.
type Why int

// The reasons Run can stop a command.
const (
	Finished Why = iota // the command exited by itself (successfully or not)
	WallTime            // the deadline passed
	NoOutput            // no watched file grew for Cmd.NoOutput
	Canceled            // the context was cancelled (SIGTERM/SIGINT of the caller)
)

func (w Why) String() string {
	switch w {
	case Finished:
		return "finished"
	case WallTime:
		return "wall-time limit"
	case NoOutput:
		return "no-output limit"
	case Canceled:
		return "cancelled"
	}
	return fmt.Sprintf("Why(%d)", int(w))
}

// Cmd is one command to run.
type Cmd struct {
	Path string   // program; looked up in PATH when it has no slash
	Args []string // arguments after the program name
	Dir  string
	Env  []string // nil: the caller's environment

	// Output receives stdout and stderr. An *os.File is handed to the
	// child directly, so a grandchild holding it open cannot make Run
	// wait; anything else goes through a pipe.
	Output io.Writer
	Stderr io.Writer // nil: Output
	Stdin  io.Reader // nil: /dev/null

	// Deadline is the wall-clock time at which the command is killed;
	// zero means none. It is absolute so that one limit can span the
	// several commands of a job.
	Deadline time.Time
	// NoOutput is the longest time none of Watch may grow; zero means no
	// limit.
	NoOutput time.Duration
	// Watch lists files whose growth counts as output. Files that do not
	// exist yet count as empty.
	Watch []string
	// Credential runs the command as another user (nil: as the caller).
	Credential *syscall.Credential
	// Cloneflags starts the command in new namespaces (CLONE_NEWNS...);
	// with them the command dies when the calling thread's process does
	// (Pdeathsig SIGKILL), so a killed caller leaves no namespace behind.
	Cloneflags uintptr
	// ExtraFiles are passed to the command as descriptors 3, 4...
	ExtraFiles []*os.File
}

// Result is what happened to a command.
type Result struct {
	Why      Why
	ExitCode int           // -1 when killed by a signal
	Wall     time.Duration // from start to reaped
	CPU      time.Duration // user+system of the command and its waited-for descendants
}

// OK reports whether the command finished by itself with exit status 0.
func (r Result) OK() bool { return r.Why == Finished && r.ExitCode == 0 }

// pollInterval bounds how late a limit is noticed.
const pollInterval = 250 * time.Millisecond

// Run starts c, waits for it and returns its Result. The error is non-nil
// only when the command could not be started; a command that fails or is
// killed is a Result, not an error.
func Run(ctx context.Context, c Cmd) (Result, error) {
	if !c.Deadline.IsZero() && !time.Now().Before(c.Deadline) {
		return Result{Why: WallTime, ExitCode: -1}, nil
	}
	if err := ctx.Err(); err != nil {
		return Result{Why: Canceled, ExitCode: -1}, nil
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Output
	cmd.Stderr = c.Output
	if c.Stderr != nil {
		cmd.Stderr = c.Stderr
	}
	cmd.ExtraFiles = c.ExtraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.Credential}
	if c.Cloneflags != 0 {
		cmd.SysProcAttr.Cloneflags = c.Cloneflags
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	// A pipe copier would wait for every grandchild holding the pipe;
	// the group is killed below, so this only bounds a pathological case.
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start %s: %w", c.Path, err)
	}
	pgid := cmd.Process.Pid

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	why := Finished
	var waitErr error
	var timer <-chan time.Time
	if !c.Deadline.IsZero() {
		t := time.NewTimer(time.Until(c.Deadline))
		defer t.Stop()
		timer = t.C
	}
	var tick <-chan time.Time
	lastSize, lastGrowth := watchedSize(c.Watch), time.Now()
	if c.NoOutput > 0 {
		iv := min(pollInterval, c.NoOutput/4)
		t := time.NewTicker(max(iv, 10*time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case <-timer:
			why = WallTime
			break wait
		case <-ctx.Done():
			why = Canceled
			break wait
		case now := <-tick:
			if s := watchedSize(c.Watch); s != lastSize {
				lastSize, lastGrowth = s, now
			} else if now.Sub(lastGrowth) >= c.NoOutput {
				why = NoOutput
				break wait
			}
		}
	}
	// Kill the group in every case: after a normal exit this removes
	// daemons a build left behind in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if why != Finished {
		waitErr = <-done
	}
	res := Result{Why: why, Wall: time.Since(start), ExitCode: -1}
	if ps := cmd.ProcessState; ps != nil {
		res.ExitCode = ps.ExitCode()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) && !errors.Is(waitErr, exec.ErrWaitDelay) && res.ExitCode == 0 {
		// An I/O error of the output copier with a clean exit: the log
		// is incomplete, so the command does not count as a success.
		res.ExitCode = -1
	}
	return res, nil
}

// watchedSize sums the sizes of the files; a changed sum means output.
func watchedSize(files []string) int64 {
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// WaitGroup waits for cmd, which was started as the leader of its own
// process group (Setpgid), and returns cmd.Wait's error. When ctx ends
// first it stops the command: SIGTERM (to the whole group, or to the
// leader only when termLeader is set: srun forwards it to its job
// step), then SIGKILL to the group if the command has not exited after
// grace; stopped says so. Either way nothing of the group outlives the
// call: what is left of it is killed once the leader was reaped. This is
// how an executor ends a builder it started (local pkgrun, srun).
func WaitGroup(ctx context.Context, cmd *exec.Cmd, grace time.Duration, termLeader bool) (stopped bool, err error) {
	pgid := cmd.Process.Pid
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	// Nothing of the job may outlive it: kill what is left of its group.
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case err := <-waited:
		return false, err
	case <-ctx.Done():
	}
	if termLeader {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	} else {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err = <-waited:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		err = <-waited
	}
	return true, err
}
