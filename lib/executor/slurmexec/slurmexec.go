// Package slurmexec is the executor that runs each job as one Slurm job
// step: every slot runs srun (one task, job name = PKGNAME, comment =
// the run's mark, see Comment) with pkgrun reading the presolve record on
// stdin, so Slurm's queue only ever holds jobs that are ready to build
// (pkgsched keeps the graph).
//
// Cores: Config.Cores is the most CPUs a job may ask for. A slot holds
// one, and implements executor.CoreSlot: the scheduler may Grow it up to
// Cores for the job's MAKE_JOBS, and srun asks for that many (srun -c
// MAKE_JOBS); Slurm packs the jobs onto its nodes.
//
// Before the first job, one srun runs `pkgrun version --json` on a node
// (lib/version): a missing pkgrun or one that speaks another job protocol
// is an error naming both versions, returned by every Acquire, so no job
// is started.
//
// CleanStale (after a scheduler was killed with -9: its sruns live on,
// each in its own process group) scancels every job in Slurm's queue that
// carries this run's comment, waits until they are gone, and removes the
// job directories they left on their nodes (or, for jobs Slurm no longer
// lists, on every node of the partition) with one more short step per
// node, as lib/executor/local's Cleaner does: only directories (never a
// symbolic link) named after a stale job and made since it started.
//
// The settings document reaches pkgrun through srun's environment
// (PKGBULK_JOB, written into a temporary file on the node by a small sh
// wrapper), so the compute nodes need no shared file from the scheduler,
// only pkgrun at Pkgrun and the pkgsrc tree the settings name. pkgrun's
// exit code and stdout come back through srun and are read by
// lib/executor/protocol; srun reports a task killed by signal N as exit
// 128+N, which is a crash like any other.
//
// When a job's context ends, srun gets SIGTERM (Slurm then cancels the
// step), SIGKILL after a grace period, and the job is scancelled by its id
// and waited for until squeue no longer shows it, so Run returns only when
// nothing of the job is left. A job directory a killed or crashed pkgrun
// left behind is removed by one more short step on the same node.
package slurmexec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/version"
)

// Config configures a Slurm executor.
type Config struct {
	Partition string // "" : the cluster's default partition
	Slots     int    // jobs in Slurm at once, at least 1
	Cores     int    // the most CPUs one job may ask for (srun --cpus-per-task = its MAKE_JOBS), default 1
	Pkgrun    string // pkgrun's path on the compute nodes (default "pkgrun")
	// Name names the slots, <Name>/<n> (default "slurm").
	Name     string
	Settings job.Settings
	Tag      string // put into every builder's environment as PKGSCHED_TAG
	// Conf is the slurm.conf for srun, scancel and squeue (SLURM_CONF);
	// "" : Slurm's default.
	Conf string
	// Grace is how long a cancelled srun has between SIGTERM and SIGKILL
	// (default 10s).
	Grace time.Duration
}

// JobVar carries the settings document to the wrapper on the node.
const JobVar = "PKGBULK_JOB"

// TagVar marks the scheduler's builders, as in lib/executor/local.
const TagVar = "PKGSCHED_TAG"

// marker starts the wrapper's first line on stderr: the node and job id.
const marker = "pkgbulk-slurm: node="

// wrapper runs on the node: $0 pkgrun, $1 work root. It says where it
// runs, writes the settings file, runs pkgrun with the record on stdin.
const wrapper = `echo "` + marker + `${SLURMD_NODENAME:-} job=${SLURM_JOB_ID:-}" >&2
f=$(mktemp "${TMPDIR:-/tmp}/pkgbulk-job.XXXXXX") || exit 2
printf '%s' "$` + JobVar + `" > "$f" || { rm -f "$f"; exit 2; }
"$0" --job "$f"
rc=$?
rm -f "$f"
exit $rc`

// Executor runs jobs through srun.
type Executor struct {
	cfg      Config
	doc      []byte
	comment  string
	free     chan int
	retired  *executor.Retirement
	closeOne sync.Once

	checkMu sync.Mutex
	checked bool
	fatal   error        // pkgrun on the nodes cannot run our jobs
	remote  version.Info // pkgrun on the nodes, once checked
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Cleaner  = (*Executor)(nil)
)

// Comment is the srun --comment that marks the jobs of the run tagged
// tag (a hash of it: the tag is the database's path).
func Comment(tag string) string {
	sum := sha256.Sum256([]byte(tag))
	return "pkgbulk:" + hex.EncodeToString(sum[:8])
}

// New checks the configuration and that srun is installed.
func New(cfg Config) (*Executor, error) {
	if cfg.Slots < 1 {
		return nil, fmt.Errorf("slurm executor: %d slots; need at least 1", cfg.Slots)
	}
	if cfg.Cores == 0 {
		cfg.Cores = 1
	}
	if cfg.Cores < 1 {
		return nil, fmt.Errorf("slurm executor: %d cores per job; need at least 1", cfg.Cores)
	}
	if cfg.Pkgrun == "" {
		cfg.Pkgrun = "pkgrun"
	}
	if cfg.Name == "" {
		cfg.Name = "slurm"
	}
	if cfg.Grace == 0 {
		cfg.Grace = 10 * time.Second
	}
	for _, p := range []string{"srun", "scancel", "squeue"} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("slurm executor: %w", err)
		}
	}
	doc, err := protocol.SettingsDocument(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("slurm executor: %w", err)
	}
	e := &Executor{cfg: cfg, doc: doc, comment: Comment(cfg.Tag), free: make(chan int, cfg.Slots), retired: executor.NewRetirement(cfg.Slots)}
	for i := 1; i <= cfg.Slots; i++ {
		e.free <- i
	}
	return e, nil
}

// Name is the executor's name (slot names start with it).
func (e *Executor) Name() string { return e.cfg.Name }

// Capacity is the number of slots not retired for lack of disk space.
func (e *Executor) Capacity() int { return e.retired.Live() }

// Acquire waits for a free slot; the first one checks pkgrun on the
// nodes.
func (e *Executor) Acquire(ctx context.Context) (executor.Slot, error) {
	if err := e.check(ctx); err != nil {
		return nil, err
	}
	select {
	case i := <-e.free:
		return &slot{e: e, n: i, cores: 1}, nil
	case <-e.retired.Gone():
		return nil, e.retired.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Executor) retire(err error) { e.retired.Retire(err) }

// check runs pkgrun version --json on a node once; an incompatible
// pkgrun is remembered and returned from then on.
func (e *Executor) check(ctx context.Context) error {
	e.checkMu.Lock()
	defer e.checkMu.Unlock()
	if e.checked {
		return e.fatal
	}
	ctx, stop := context.WithTimeout(ctx, 5*time.Minute)
	defer stop()
	var stdout bytes.Buffer
	stderr := &where{tail: &protocol.TailBuffer{Max: protocol.StderrTail}, first: true}
	args := append(e.srunArgs("pkgbulk-version", 1), "/bin/sh", "-c", version.Command(e.cfg.Pkgrun))
	cmd := e.command(ctx, "srun", args...)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		code = ee.ExitCode()
	default:
		if ctx.Err() != nil {
			return fmt.Errorf("%s: check pkgrun on the nodes: %w", e.cfg.Name, ctx.Err())
		}
		_, _, tail := stderr.get()
		return fmt.Errorf("%s: check pkgrun on the nodes: srun: %v (%s)", e.cfg.Name, err, strings.TrimSpace(tail))
	}
	_, _, tail := stderr.get()
	info, err := version.Remote(e.cfg.Name, e.cfg.Pkgrun, code, stdout.Bytes(), tail)
	if code != 0 && code != 126 && code != 127 && strings.Contains(tail, "srun: error:") {
		// srun itself failed (no such partition, no nodes): not pkgrun.
		return fmt.Errorf("%s: check pkgrun on the nodes: srun exit status %d: %s", e.cfg.Name, code, strings.TrimSpace(tail))
	}
	e.checked = true
	e.fatal, e.remote = err, info
	return err
}

// Remote is the nodes' pkgrun version, known after the first Acquire.
func (e *Executor) Remote() version.Info {
	e.checkMu.Lock()
	defer e.checkMu.Unlock()
	return e.remote
}

// Close does nothing: every job was waited for by its Run.
func (e *Executor) Close() error { return nil }

func (e *Executor) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = os.Environ()
	if e.cfg.Conf != "" {
		cmd.Env = append(cmd.Env, "SLURM_CONF="+e.cfg.Conf)
	}
	return cmd
}

func (e *Executor) srunArgs(pkg string, cores int) []string {
	args := []string{"--quiet", "--job-name=" + pkg, "--comment=" + e.comment, "--ntasks=1", "--nodes=1",
		"--cpus-per-task=" + strconv.Itoa(cores), "--kill-on-bad-exit=1"}
	if e.cfg.Partition != "" {
		args = append(args, "--partition="+e.cfg.Partition)
	}
	return args
}

type slot struct {
	e     *Executor
	n     int
	once  sync.Once
	mu    sync.Mutex
	cores int // granted: 1 + what Grow gave, at most Config.Cores
}

var _ executor.CoreSlot = (*slot)(nil)

// Cores is the most CPUs a job may ask for (Config.Cores).
func (s *slot) Cores() int { return s.e.cfg.Cores }

// FreeCores is how many more cores this slot's job may ask for.
func (s *slot) FreeCores() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e.cfg.Cores - s.cores
}

// Grow lets the job ask for up to n more cores, up to Config.Cores in
// all (Slurm finds a node with that many free).
func (s *slot) Grow(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := max(min(n, s.e.cfg.Cores-s.cores), 0)
	s.cores += got
	return got
}

// jobCores is what srun asks for j: its MAKE_JOBS (at most Config.Cores),
// else the cores granted to the slot.
func (s *slot) jobCores(j executor.Job) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.MakeJobs > 0 {
		return min(j.MakeJobs, s.e.cfg.Cores)
	}
	return s.cores
}

func (s *slot) Name() string { return fmt.Sprintf("%s/%d", s.e.cfg.Name, s.n) }

func (s *slot) Release() { s.once.Do(func() { s.e.free <- s.n }) }

func (s *slot) retire(err error) { s.once.Do(func() { s.e.retire(err) }) }

// where is pkgrun's stderr as srun passes it on: the wrapper's first line
// (the node and the job id) is taken out, and so are srun's own reports
// of how the task ended ("srun: error: node: task 0: Exited with exit
// code 1"), which the exit status says already.
type where struct {
	mu      sync.Mutex
	node    string
	job     string
	partial []byte
	first   bool // the first line was seen
	tail    *protocol.TailBuffer
}

func (w *where) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) > protocol.StderrTail {
				w.tail.Write(w.partial)
				w.partial, w.first = w.partial[:0], true
			}
			break
		}
		w.line(append(w.partial, p[:i+1]...))
		w.partial, p = w.partial[:0], p[i+1:]
	}
	return n, nil
}

func (w *where) line(l []byte) {
	s := strings.TrimRight(string(l), "\n")
	if !w.first {
		w.first = true
		if rest, ok := strings.CutPrefix(s, marker); ok {
			w.node, w.job, _ = strings.Cut(rest, " job=")
			return
		}
	}
	if rest, ok := strings.CutPrefix(s, "srun: error: "); ok && strings.Contains(rest, ": task ") &&
		(strings.Contains(rest, ": Exited with exit code ") || strings.HasSuffix(rest, ": Killed") || strings.HasSuffix(rest, ": Terminated")) {
		return
	}
	w.tail.Write(l)
}

// get returns the node and job id, and the tail of stderr.
func (w *where) get() (node, id, tail string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(w.partial)
		w.partial = nil
	}
	return w.node, w.job, w.tail.String()
}

// Run runs j as one srun job step.
func (s *slot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	defer s.Release()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s.Name(), j.PkgName, err)
	}
	e := s.e
	stdout := protocol.LimitedBuffer{Max: protocol.MaxStdout}
	stderr := &where{tail: &protocol.TailBuffer{Max: protocol.StderrTail}}
	args := append(e.srunArgs(j.PkgName, s.jobCores(j)), "/bin/sh", "-c", wrapper, e.cfg.Pkgrun)
	cmd := e.command(context.Background(), "srun", args...)
	cmd.Env = append(cmd.Env, JobVar+"="+string(e.doc), TagVar+"="+e.cfg.Tag)
	cmd.Stdin = bytes.NewReader(j.Record)
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, &executor.CrashError{Worker: s.Name(), Reason: "start srun: " + err.Error()}
	}
	cancelled, werr := proc.WaitGroup(ctx, cmd, e.cfg.Grace, true)
	node, id, errTail := stderr.get()
	bg := context.WithoutCancel(ctx)
	if cancelled {
		// srun is gone; make sure its job is too before the job may
		// run elsewhere.
		if err := e.cancel(bg, j.PkgName, id); err != nil {
			return nil, &executor.CrashError{Worker: s.Name(), Reason: "cancel: " + err.Error(), Lost: true}
		}
		s.clean(bg, j.PkgName, node, start)
		return nil, fmt.Errorf("%s: %s: %w", s.Name(), j.PkgName, ctx.Err())
	}
	o := protocol.Observed{Worker: s.Name(), Stdout: stdout.Bytes(), Over: stdout.Over, Stderr: errTail}
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return nil, &executor.CrashError{Worker: s.Name(), Reason: fmt.Sprintf("wait for srun: %v", werr), Stderr: o.Stderr}
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			o.Exit = protocol.Exit{Signal: int(ws.Signal()), SigName: "srun " + ws.Signal().String()}
		} else if c := ee.ExitCode(); c > 128 && c < 128+65 {
			// srun: the task was killed by signal c-128.
			sig := syscall.Signal(c - 128)
			o.Exit = protocol.Exit{Signal: int(sig), SigName: sig.String()}
		} else {
			o.Exit.Code = c
		}
	}
	out, err := protocol.Interpret(o)
	if err != nil {
		s.clean(bg, j.PkgName, node, start)
	}
	if errors.Is(err, executor.ErrNoSpace) {
		s.retire(err)
	}
	return out, err
}

// cancel scancels the job (by id, else by name in the partition) and
// waits until squeue no longer lists it.
func (e *Executor) cancel(ctx context.Context, pkg, id string) error {
	ctx, stop := context.WithTimeout(ctx, 2*time.Minute)
	defer stop()
	sel := []string{"--name=" + pkg, "--user=" + strconv.Itoa(os.Getuid())}
	if e.cfg.Partition != "" {
		sel = append(sel, "--partition="+e.cfg.Partition)
	}
	if id != "" {
		sel = []string{id}
	}
	for {
		_ = e.command(ctx, "scancel", append([]string{"--quiet"}, sel...)...).Run()
		q := []string{"--noheader", "--format=%i"}
		if id != "" {
			q = append(q, "--jobs="+id)
		} else {
			q = append(q, sel...)
		}
		var out bytes.Buffer
		cmd := e.command(ctx, "squeue", q...)
		cmd.Stdout = &out
		err := cmd.Run()
		if err == nil && strings.TrimSpace(out.String()) == "" {
			return nil
		}
		if id != "" && err != nil && strings.TrimSpace(out.String()) == "" {
			// squeue -j of a job Slurm forgot already fails.
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("job %s %s still in squeue: %w", pkg, id, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clean removes the job directory a crashed or killed pkgrun left on node,
// through one more short step there.
func (s *slot) clean(ctx context.Context, pkg, node string, start time.Time) {
	if s.e.cfg.Settings.KeepWorkdir || node == "" {
		return
	}
	ctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	args := append(s.e.srunArgs(pkg+"-clean", 1), "--nodelist="+node, "/bin/sh", "-c",
		cleanScript(s.e.cfg.Settings.WorkRoot, pkg, start.Add(-2*time.Second).Unix()))
	cmd := s.e.command(ctx, "srun", args...)
	cmd.Stdin = nil
	_ = cmd.Run()
	// The step's job lingers as COMPLETING after srun returns: Run
	// returns only when nothing of the job, its clean-up included, is
	// left in Slurm.
	_ = s.e.cancel(ctx, pkg+"-clean", "")
}

// cleanScript removes root/pkg.* directories modified since since (as
// lib/executor/sshexec does), printing "removed PATH" or "kept PATH" for
// each.
func cleanScript(root, pkg string, since int64) string {
	return fmt.Sprintf(`root=%s; [ -n "$root" ] || root="${TMPDIR:-/tmp}/pkgrun"; for d in "$root"/%s.*; do `+
		`[ -d "$d" ] && [ ! -L "$d" ] || continue; case "${d##*/}" in %s.*.*) continue;; esac; `+
		`[ "$(stat -c %%Y "$d")" -ge %d ] || continue; if rm -rf -- "$d"; then echo "removed $d"; else echo "kept $d"; fi; done; true`,
		quote(root), quote(pkg), quote(pkg), since)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
