// Package local is the executor that runs pkgrun as a child process on
// this machine: N slots, one pkgrun process per job.
//
// Each pkgrun gets the package's presolve record on stdin and the run's
// job.Settings as a JSON file (pkgrun --job FILE); its stdout must be
// exactly one job.Result. Exit 0 with a done/up-to-date result and exit 1
// with a failed/skew/timeout result are builds; anything else (exit 2 or
// another code, death by a signal, a result that does not parse or
// contradicts the exit code) is a crash of the builder
// (executor.ErrCrash), except exit job.ExitNoSpace: the builder ran out of
// disk space (executor.ErrNoSpace). That slot is then retired for the rest
// of the executor's life; once every slot is, Acquire fails with
// executor.ErrNoSpace.
//
// pkgrun runs in its own process group. When the job's context ends, the
// group gets SIGTERM, then SIGKILL after a grace period; when pkgrun
// exits, whatever is left of its group is killed, so no build outlives its
// job. The job directory a killed or crashed pkgrun left in the work root
// is removed then, unless keep_workdir is set (see CleanStale for the
// rules), and CleanStale removes those of the jobs of a scheduler that was
// killed itself. On Linux pkgrun also gets SIGKILL when pkgsched dies
// (parent-death signal), and every builder carries PKGSCHED_TAG=<tag> in
// its environment so that KillOrphans can find processes of a killed run
// that left pkgrun's group.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/proc"
)

// Config configures a local executor.
type Config struct {
	Pkgrun string // pkgrun program; "" finds it with FindPkgrun
	Slots  int    // parallel jobs, at least 1
	// Cores is this machine's cores as the scheduler may hand them out
	// (executor.CoreSlot): the MAKE_JOBS of the jobs running here add up
	// to at most Cores × Oversubscribe. 0 means max(runtime.NumCPU(),
	// Slots), so that local:N still runs N jobs at once.
	Cores         int
	Oversubscribe float64 // at least 1 (default 1)
	// Name names the slots, <Name>/<n> (default "local"); two local
	// executors in one run need different names.
	Name     string
	Settings job.Settings // passed to every pkgrun as --job FILE
	// Tag is put into every builder's environment as PKGSCHED_TAG; use
	// the same tag with KillOrphans after a crash of the scheduler.
	Tag string
	// Grace is how long a cancelled pkgrun has between SIGTERM and
	// SIGKILL (default 10s).
	Grace time.Duration
	// SettingsFile is the path of the settings file handed to every
	// pkgrun (default: a new file in the system's temporary directory).
	// pkgsched names one per run beside the database, so a scheduler
	// killed with -9 leaves no stray file in /tmp (the next run removes
	// it) and no run overwrites another's.
	SettingsFile string
}

// TagVar is the environment variable that marks the scheduler's builders.
const TagVar = "PKGSCHED_TAG"

// Executor runs pkgrun locally.
type Executor struct {
	cfg      Config
	cores    *executor.CorePool
	jobFile  string
	free     chan int
	closeOne sync.Once

	retired *executor.Retirement // slots taken out for lack of disk space
}

var _ executor.Executor = (*Executor)(nil)

// FindPkgrun returns the pkgrun beside the running program, else pkgrun
// on PATH.
func FindPkgrun() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "pkgrun")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("pkgrun")
	if err != nil {
		return "", fmt.Errorf("find pkgrun: not beside this program and not on PATH (use --pkgrun): %w", err)
	}
	return p, nil
}

// New checks the configuration and writes the settings file.
func New(cfg Config) (*Executor, error) {
	if cfg.Slots < 1 {
		return nil, fmt.Errorf("local executor: %d slots; need at least 1", cfg.Slots)
	}
	if cfg.Name == "" {
		cfg.Name = "local"
	}
	if cfg.Cores < 0 {
		return nil, fmt.Errorf("local executor: %d cores; need at least 1", cfg.Cores)
	}
	if cfg.Cores == 0 {
		cfg.Cores = max(runtime.NumCPU(), cfg.Slots)
	}
	if cfg.Grace == 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Pkgrun == "" {
		p, err := FindPkgrun()
		if err != nil {
			return nil, err
		}
		cfg.Pkgrun = p
	} else if _, err := exec.LookPath(cfg.Pkgrun); err != nil {
		return nil, fmt.Errorf("local executor: pkgrun %s: %w", cfg.Pkgrun, err)
	}
	b, err := protocol.SettingsDocument(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("local executor: %w", err)
	}
	var f *os.File
	if cfg.SettingsFile != "" {
		f, err = os.Create(cfg.SettingsFile)
	} else {
		f, err = os.CreateTemp("", "pkgsched-job-*.json")
	}
	if err != nil {
		return nil, fmt.Errorf("local executor: write settings: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("local executor: write settings %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("local executor: write settings %s: %w", f.Name(), err)
	}
	e := &Executor{cfg: cfg, cores: executor.NewCorePool(cfg.Cores, cfg.Oversubscribe), jobFile: f.Name(), free: make(chan int, cfg.Slots), retired: executor.NewRetirement(cfg.Slots)}
	for i := 1; i <= cfg.Slots; i++ {
		e.free <- i
	}
	return e, nil
}

// Capacity is the number of slots not retired for lack of disk space.
func (e *Executor) Capacity() int { return e.retired.Live() }

// Cores is the machine's declared cores (Config.Cores).
func (e *Executor) Cores() int { return e.cores.Cores() }

// Acquire waits for a free slot and one free core. When every slot was
// retired because its builder ran out of disk space, it returns an error
// wrapping executor.ErrNoSpace.
func (e *Executor) Acquire(ctx context.Context) (executor.Slot, error) {
	select {
	case i := <-e.free:
		if err := e.cores.Take(ctx, 1); err != nil {
			e.free <- i
			return nil, err
		}
		return &slot{e: e, n: i, CoreHold: executor.NewCoreHold(e.cores, 1)}, nil
	case <-e.retired.Gone():
		return nil, e.retired.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// retire takes a slot whose builder ran out of disk space out of service.
func (e *Executor) retire(err error) { e.retired.Retire(err) }

// Close removes the settings file.
func (e *Executor) Close() error {
	var err error
	e.closeOne.Do(func() { err = os.Remove(e.jobFile) })
	return err
}

type slot struct {
	e                 *Executor
	n                 int
	once              sync.Once
	executor.CoreHold // cores reserved on the machine (1 + Grow)
}

var (
	_ executor.Slot     = (*slot)(nil)
	_ executor.CoreSlot = (*slot)(nil)
)

func (s *slot) Name() string { return fmt.Sprintf("%s/%d", s.e.cfg.Name, s.n) }

func (s *slot) Release() {
	s.once.Do(func() {
		s.Return()
		s.e.free <- s.n
	})
}

// retire gives the slot up for good (its builder is out of disk space).
func (s *slot) retire(err error) {
	s.once.Do(func() {
		s.Return()
		s.e.retire(err)
	})
}

// Run runs pkgrun for j.
func (s *slot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	defer s.Release()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s.Name(), j.PkgName, err)
	}
	stdout := protocol.LimitedBuffer{Max: protocol.MaxStdout}
	stderr := protocol.TailBuffer{Max: protocol.StderrTail}
	cmd := exec.Command(s.e.cfg.Pkgrun, "--job", s.e.jobFile)
	cmd.Stdin = bytes.NewReader(j.Record)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), TagVar+"="+s.e.cfg.Tag)
	cmd.SysProcAttr = sysProcAttr()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, &executor.CrashError{Worker: s.Name(), Reason: "start " + s.e.cfg.Pkgrun + ": " + err.Error()}
	}
	cancelled, werr := proc.WaitGroup(ctx, cmd, s.e.cfg.Grace, false)
	// A pkgrun that was killed, or crashed, may have left its job
	// directory; one out of space should give its space back.
	clean := func() {
		if !s.e.cfg.Settings.KeepWorkdir {
			stale := []executor.StaleJob{{PkgName: j.PkgName, Worker: s.Name(), Started: start}}
			cleanJobDirs(context.WithoutCancel(ctx), s.e.WorkRoot(), stale)
		}
	}
	if cancelled {
		clean()
		return nil, fmt.Errorf("%s: %s: %w", s.Name(), j.PkgName, ctx.Err())
	}
	out, err := s.interpret(j, werr, stdout.Bytes(), stderr.String(), stdout.Over)
	if err != nil {
		clean()
	}
	if errors.Is(err, executor.ErrNoSpace) {
		s.retire(err)
	}
	return out, err
}

func (s *slot) interpret(j executor.Job, werr error, out []byte, errTail string, over bool) (*executor.Outcome, error) {
	o := protocol.Observed{Worker: s.Name(), Stdout: out, Over: over, Stderr: errTail}
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return nil, &executor.CrashError{Worker: s.Name(), Reason: fmt.Sprintf("wait for pkgrun: %v", werr), Stderr: errTail}
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			o.Exit = protocol.Exit{Signal: int(ws.Signal()), SigName: ws.Signal().String()}
		} else {
			o.Exit.Code = ee.ExitCode()
		}
	}
	return protocol.Interpret(o)
}
