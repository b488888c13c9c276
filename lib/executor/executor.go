// Package executor is the boundary between the scheduler and the machines
// that build: an Executor hands out Slots (one builder that can take one
// job now), and a Slot runs one job and reports pkgrun's result.
//
// The scheduler (lib/sched) binds a job to a slot only when the slot is
// free, so the best job at that moment is chosen (late binding) and an
// executor whose capacity changes over time fits without any change to the
// scheduler: a local executor has N fixed slots, an ssh executor has slots
// per host, a pull executor has one slot per connected worker lease, and
// an elastic executor (VMs, cloud instances) grows by starting machines
// while Acquire waits and shrinks by not handing out slots.
//
// # Contract
//
//   - Acquire blocks until a slot is free or ctx ends. Every slot it
//     returns must be given back exactly once: by Run or by Release.
//   - Run runs the job once and returns only when nothing of it can still
//     be running or report later: a remote executor revokes the lease or
//     kills the remote process before it returns. This is what lets the
//     scheduler requeue the job without ever running it twice at once.
//   - Run returns a result (any status: done, failed, skew...) when the
//     builder produced a valid one. It returns an error wrapping ErrCrash
//     when the builder crashed (pkgrun exit 2, death by a signal, missing
//     or unparsable result) and one wrapping ErrLost when the worker or its
//     lease was lost; the scheduler requeues the job once per such error
//     and counts it apart from failed builds (and stops the run when one
//     job crashed too often: a crash is never a build failure). When ctx
//     is cancelled Run stops the build and returns ctx.Err() (wrapped);
//     the job is requeued without counting a crash.
//   - Run returns an error wrapping ErrNoSpace when the builder ran out of
//     disk space (pkgrun exit status job.ExitNoSpace). The job is not at
//     fault: the scheduler requeues it without counting a crash. The
//     executor stops handing out that builder for the rest of its life
//     (Capacity drops), and once every builder is out of space Acquire
//     returns an error wrapping ErrNoSpace at once, which stops the run.
//   - An executor that can clean up after a scheduler that died (kill -9,
//     a reboot) implements Cleaner.
//   - An executor that wants to know how much work is waiting (to start
//     or stop machines, or for its own back-off) implements Demander.
//
// Executors are opened from a spec with one scheme each (local:8,
// ssh://bulk@host1?slots=4) by lib/executor/execopen; several of them
// feed one run through lib/executor/multi.
package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// ErrCrash is wrapped by errors of a builder that did not produce a result.
var ErrCrash = errors.New("builder crashed")

// ErrLost is wrapped by errors of a worker or lease that went away.
var ErrLost = errors.New("worker lost")

// ErrNoSpace is wrapped by errors of a builder that ran out of disk space.
// It is neither a crash nor a failed build.
var ErrNoSpace = errors.New("builder out of disk space")

// Job is one package to build.
type Job struct {
	PkgName string
	PkgPath string
	Record  []byte // the package's presolve record: pkgrun's stdin
	Attempt int    // 1 for the first run of this package, counting crashes
	// MakeJobs is the MAKE_JOBS the scheduler granted the job (the cores
	// it reserved on the slot's builder); 0 leaves it to pkgrun's
	// settings. The scheduler appends it to Record as a MAKE_JOBS= line
	// (pkgrun's lib/build reads it); an executor whose builder is a
	// cluster node also asks for that many cores (srun -c).
	MakeJobs int
}

// Executor hands out slots.
type Executor interface {
	// Acquire waits for a free slot.
	Acquire(ctx context.Context) (Slot, error)
	// Capacity is the number of slots right now (for progress and
	// utilisation figures; an elastic executor's changes).
	Capacity() int
	// Close stops the executor; slots in use must have been given back.
	Close() error
}

// Slot is one builder reserved for one job.
type Slot interface {
	// Name identifies the worker, e.g. "local/3" or "ssh:host1/2"; it is
	// recorded in build_state.worker.
	Name() string
	// Run runs j and gives the slot back.
	Run(ctx context.Context, j Job) (*Outcome, error)
	// Release gives the slot back unused.
	Release()
}

// Accepter is implemented by slots whose builder does not take every job:
// an ssh host's or a pull worker's "no way" list of pkgpaths and patterns,
// or labels that a package requires. The scheduler hands such a slot the
// best ready job it accepts; a slot that accepts none of the ready jobs is
// kept idle by the scheduler (not given back, so Acquire does not spin on
// it) until another job becomes ready, and is never given a job it
// refuses. Slots that do not implement Accepter take every job.
type Accepter interface {
	Accepts(pkgpath, pkgname string) bool
}

// Closer is implemented by slots whose builder can go away while the
// scheduler holds the slot unused (a pull worker that left, an elastic
// builder retired while its slot was parked). The scheduler gives a
// parked slot that reports Closed back (Release) instead of keeping it
// and offering it jobs it can no longer run.
type Closer interface {
	Closed() bool
}

// Grower is implemented by executors whose builders come and go on their
// own: machines an autoscaler starts on demand, volunteers that may join
// at any time. Their slots of the moment say nothing about what they can
// take later, so while MayGrow is true the scheduler does not stop a run
// because every slot it holds refuses the ready jobs (see Accepter): it
// waits for a builder that takes them.
type Grower interface {
	MayGrow() bool
}

// CoreSlot is implemented by slots on builders that declare their cores
// (see CorePool). Acquire reserves one core of the builder with the slot;
// before Run the scheduler may Grow the slot to give its job more cores
// (its MAKE_JOBS) from the free cores of the same builder. Every core
// reserved comes back when the slot is given back (Run returns, or
// Release). Slots that do not implement CoreSlot run one core per job
// (MAKE_JOBS left to pkgrun's settings).
type CoreSlot interface {
	// Cores is the builder's declared cores (its whole size).
	Cores() int
	// FreeCores is how many more cores Grow could reserve now.
	FreeCores() int
	// Grow reserves up to n more cores on the slot's builder and returns
	// how many it got (0..n). It never blocks.
	Grow(n int) int
}

// StaleJob is a job that was running when an earlier scheduler died: the
// database still has it in_processing.
type StaleJob struct {
	PkgName string
	Worker  string    // the slot or host it was handed to
	Started time.Time // when it was handed out
}

// Owned returns the stale jobs whose worker an executor owns (its Owns),
// the ones its CleanStale has to clean up.
func Owned(jobs []StaleJob, owns func(worker string) bool) []StaleJob {
	var mine []StaleJob
	for _, j := range jobs {
		if owns(j.Worker) {
			mine = append(mine, j)
		}
	}
	return mine
}

// Cleaned is one leftover of a stale job that CleanStale found: removed
// (Err nil) or kept, and why.
type Cleaned struct {
	PkgName string
	Path    string // e.g. the job directory /var/tmp/pkgbulk/foo-1.0.123456
	Err     error  // why it was kept: in use, not a directory, ...
}

// Cleaner is implemented by executors that can remove what the builders of
// stale jobs left behind (their job directories, and on remote machines
// the builders themselves). The scheduler calls CleanStale once at the
// start of a run, before any job starts, with every stale job of the
// database: a Cleaner handles only those whose Worker is one of its own
// (see Owns) and leaves the others alone, so one run can use several
// executors. Local builders of a dead scheduler are killed before (they
// carry its tag); a remote executor kills its stale builders itself
// before it removes anything. It must remove only
// what belongs to those jobs (made since they started) and what no live
// process uses, never follow a symbolic link out of its work area, and
// report every leftover it found.
type Cleaner interface {
	CleanStale(ctx context.Context, jobs []StaleJob) ([]Cleaned, error)
	// Owns reports whether worker (a slot name recorded in the database,
	// e.g. "local/3" or "ssh:host1/2") is one of this executor's.
	Owns(worker string) bool
}

// Demand is the work waiting for slots, as the scheduler sees it.
type Demand struct {
	Ready   int // packages whose dependencies are built, waiting for a slot
	Running int // jobs handed to slots
	// CriticalPath is the longest remaining path (estimated build time)
	// through a ready package; 0 when unknown (pbulk order).
	CriticalPath time.Duration
}

// Demander is implemented by executors that want the demand signal: the
// scheduler calls Demand whenever the demand changes (from one goroutine;
// it must not block).
type Demander interface {
	Demand(d Demand)
}

// Outcome is a builder's result plus what the executor observed.
type Outcome struct {
	Result *job.Result
	// Stderr is the tail of the builder's standard error, for the record.
	Stderr string
}

// CrashError describes a crashed builder: who, and how it died.
type CrashError struct {
	Worker string
	Reason string // "exit status 2", "killed by signal 9", "garbage on stdout: ..."
	Stderr string // tail of the builder's standard error
	Lost   bool   // the worker itself was lost, not only the builder process
}

func (e *CrashError) Error() string {
	s := fmt.Sprintf("%s: builder crashed: %s", e.Worker, e.Reason)
	if e.Lost {
		s = fmt.Sprintf("%s: worker lost: %s", e.Worker, e.Reason)
	}
	if e.Stderr != "" {
		s += " (stderr: " + lastLine(e.Stderr) + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrCrash) and, for lost workers, ErrLost true.
func (e *CrashError) Is(target error) bool {
	return target == ErrCrash || (e.Lost && target == ErrLost)
}

// NoSpaceError is a builder that ran out of disk space.
type NoSpaceError struct {
	Worker string
	Stderr string // tail of the builder's standard error
}

func (e *NoSpaceError) Error() string {
	s := e.Worker + ": builder out of disk space"
	if e.Stderr != "" {
		s += " (stderr: " + lastLine(e.Stderr) + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrNoSpace) true.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

func lastLine(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
