package sshexec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
)

type slot struct {
	e    *Executor
	n    int
	c    *conn
	once sync.Once

	executor.CoreHold // the host's cores taken for the job (1 + Grow)
}

var (
	_ executor.Accepter = (*slot)(nil)
	_ executor.CoreSlot = (*slot)(nil)
)

func (s *slot) Name() string { return fmt.Sprintf("%s/%d", s.e.name, s.n) }

func (s *slot) Release() {
	s.once.Do(func() {
		s.Return()
		s.e.free <- s.n
	})
}

func (s *slot) retire(err error) {
	s.once.Do(func() {
		s.Return()
		s.e.retire(err)
	})
}

// Accepts is false for the packages on the host's no-way list.
func (s *slot) Accepts(pkgpath, pkgname string) bool {
	return s.e.cfg.Host.Never.Accepts(pkgpath, pkgname)
}

// pidWriter takes the first line of the session's stdout ("pkgsched-pid
// N") and passes the rest on.
type pidWriter struct {
	mu   sync.Mutex
	line []byte
	pid  int
	got  chan struct{}
	rest *protocol.LimitedBuffer
}

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.got != nil {
		select {
		case <-w.got:
			w.rest.Write(p)
			return n, nil
		default:
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.line = append(w.line, p...)
			if len(w.line) > 64 {
				close(w.got) // garbage: no pid
			}
			return n, nil
		}
		w.line = append(w.line, p[:i]...)
		if v, ok := strings.CutPrefix(string(w.line), "pkgsched-pid "); ok {
			w.pid, _ = strconv.Atoi(v)
		}
		close(w.got)
		p = p[i+1:]
	}
	w.rest.Write(p)
	return n, nil
}

func (w *pidWriter) getPid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid
}

// Run runs pkgrun for j in a session on the host.
func (s *slot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	defer s.Release()
	e := s.e
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s.Name(), j.PkgName, err)
	}
	lost := func(format string, args ...any) error {
		return &executor.CrashError{Worker: s.Name(), Reason: fmt.Sprintf(format, args...), Lost: true}
	}
	sess, err := s.c.client.NewSession()
	if err != nil {
		s.c.kill(fmt.Errorf("open a session: %v", err))
		return nil, lost("open a session: %v", err)
	}
	defer sess.Close()
	stdout := protocol.LimitedBuffer{Max: protocol.MaxStdout}
	stderr := protocol.TailBuffer{Max: protocol.StderrTail}
	pw := &pidWriter{got: make(chan struct{}), rest: &stdout}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, lost("open a session: %v", err)
	}
	sess.Stdout = pw
	sess.Stderr = &stderr
	start := time.Now()
	if err := sess.Start(jobScript(e.cfg.Tag, e.cfg.Host.Pkgrun, e.docPath, len(j.Record), e.cfg.Deadline)); err != nil {
		s.c.kill(fmt.Errorf("start a job: %v", err))
		return nil, lost("start pkgrun: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	// The record, then a heartbeat for the builder's watchdog until the
	// job ends (the writes may block on a dead connection: not waited
	// for).
	beat := make(chan struct{})
	defer close(beat)
	go func() {
		if _, err := stdin.Write(j.Record); err != nil {
			return
		}
		t := time.NewTicker(e.cfg.KeepAlive)
		defer t.Stop()
		for {
			select {
			case <-beat:
				stdin.Close()
				return
			case <-t.C:
				if _, err := stdin.Write([]byte{'.'}); err != nil {
					return
				}
			}
		}
	}()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		s.stop(pw, waited, j.PkgName, start)
		s.clean(j.PkgName, start)
		return nil, fmt.Errorf("%s: %s: %w", s.Name(), j.PkgName, ctx.Err())
	case <-s.c.dead:
		werr = s.c.why
	}
	var exit protocol.Exit
	var ee *ssh.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee) && ee.Signal() != "":
		exit = protocol.Exit{Signal: signalNumber(ee.Signal()), SigName: ee.Signal()}
	case errors.As(werr, &ee):
		exit.Code = ee.ExitStatus()
	default:
		// No exit status: the connection broke, or sshd or the host
		// died. Whatever runs there must be stopped before the job can
		// be requeued.
		s.c.kill(werr)
		s.lostJob(pw.getPid(), j.PkgName, start)
		return nil, lost("%v", werr)
	}
	out, err := protocol.Interpret(protocol.Observed{Worker: s.Name(), Exit: exit, Stdout: stdout.Bytes(), Over: stdout.Over, Stderr: stderr.String()})
	if err != nil {
		s.clean(j.PkgName, start)
	}
	if errors.Is(err, executor.ErrNoSpace) {
		s.retire(err)
	}
	return out, err
}

// stop kills the job's group (TERM, then KILL after the grace period) and
// waits for its session to end.
func (s *slot) stop(pw *pidWriter, waited <-chan error, pkg string, start time.Time) {
	e := s.e
	select {
	case <-pw.got:
	case <-time.After(e.cfg.Deadline):
	}
	pid := pw.getPid()
	if pid <= 0 {
		s.c.kill(errors.New("a cancelled job did not say its pid"))
		s.lostJob(0, pkg, start)
		return
	}
	bg := context.Background()
	ctx, cancel := context.WithTimeout(bg, e.cfg.Deadline)
	err := e.command(ctx, s.c, killScript(e.cfg.Tag, "TERM", []int{pid}), nil, nil)
	cancel()
	if err == nil {
		t := time.NewTimer(e.cfg.Grace)
		select {
		case <-waited:
			t.Stop()
			// The group may still hold processes that left the
			// session: kill them too.
			ctx, cancel = context.WithTimeout(bg, e.cfg.Deadline)
			err = e.command(ctx, s.c, killScript(e.cfg.Tag, "KILL", []int{pid}), nil, nil)
			cancel()
			if err != nil {
				s.c.kill(err)
				s.lostJob(pid, pkg, start)
			}
			return
		case <-t.C:
		case <-s.c.dead:
		}
	}
	ctx, cancel = context.WithTimeout(bg, e.cfg.Deadline)
	err = e.command(ctx, s.c, killScript(e.cfg.Tag, "KILL", []int{pid}), nil, nil)
	cancel()
	if err != nil {
		s.c.kill(err)
		s.lostJob(pid, pkg, start)
		return
	}
	select {
	case <-waited:
	case <-s.c.dead:
	case <-time.After(e.cfg.Deadline):
		s.c.kill(errors.New("a killed job's session did not end"))
	}
}

// lostJob tries, for up to the deadline, to reach the host again, kill
// the group of a job (pkg, started at start) whose connection was lost
// and remove its job directory; when that fails, it waits for the
// builder's watchdog, and the group is killed again at the next connect.
func (s *slot) lostJob(pid int, pkg string, start time.Time) {
	e := s.e
	if pid <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Deadline)
	defer cancel()
	c, err := e.connect(ctx)
	if err == nil {
		// connect killed no orphans of this job yet: do it now.
		err = e.command(ctx, c, killScript(e.cfg.Tag, "KILL", []int{pid}), nil, nil)
		if err == nil && !e.cfg.Settings.KeepWorkdir {
			_ = e.command(ctx, c, cleanScript(e.workRoot, pkg, start.Add(-clockSlack).Unix()), nil, nil)
		}
		e.mu.Lock()
		if err == nil && e.conn == nil {
			e.conn = c
			c = nil
		}
		e.mu.Unlock()
		if c != nil {
			c.kill(errors.New("spare connection"))
		}
		if err == nil {
			return
		}
	}
	fmt.Fprintf(e.cfg.Log, "pkgsched: %s: could not kill the builder of a lost job (process group %d): %v; waiting %s for its watchdog\n", s.Name(), pid, err, e.cfg.Deadline+time.Second)
	e.mu.Lock()
	e.orphans = append(e.orphans, orphan{pid: pid, pkg: pkg, start: start})
	e.mu.Unlock()
	// Without heartbeats the builder's watchdog kills its group after
	// the deadline: once that passed, the job may run elsewhere.
	time.Sleep(e.cfg.Deadline + time.Second)
}

// clean removes what a killed or crashed pkgrun left in the work root.
func (s *slot) clean(pkg string, start time.Time) {
	e := s.e
	if e.cfg.Settings.KeepWorkdir {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Deadline)
	defer cancel()
	_ = e.command(ctx, s.c, cleanScript(e.workRoot, pkg, start.Add(-clockSlack).Unix()), nil, nil)
}

// clockSlack allows for the host's clock being behind ours.
const clockSlack = 5 * time.Second

// CleanStale kills the builders of this host's stale jobs that are still
// running with this run's tag and removes their job directories.
func (e *Executor) CleanStale(ctx context.Context, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	mine := executor.Owned(jobs, e.Owns)
	if len(mine) == 0 {
		return nil, nil
	}
	c, err := e.connected(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: clean up stale jobs: %w", e.name, err)
	}
	// Builders of this run's tag (the database's path) are the dead
	// scheduler's: kill their groups first.
	kill := fmt.Sprintf(`for p in /proc/[0-9]*; do if tr '\0' '\n' < $p/environ 2>/dev/null | grep -qxF -- %s; then kill -KILL -${p#/proc/} 2>/dev/null; kill -KILL ${p#/proc/} 2>/dev/null; fi; done; true`,
		quote(TagVar+"="+e.cfg.Tag))
	if err := e.command(ctx, c, kill, nil, nil); err != nil {
		return nil, fmt.Errorf("%s: kill stale builders: %w", e.name, err)
	}
	var out []executor.Cleaned
	for _, j := range mine {
		var buf bytes.Buffer
		if err := e.command(ctx, c, cleanScript(e.workRoot, j.PkgName, j.Started.Add(-clockSlack).Unix()), nil, &buf); err != nil {
			return out, fmt.Errorf("%s: clean up after %s: %w", e.name, j.PkgName, err)
		}
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			verb, path, _ := strings.Cut(sc.Text(), " ")
			cl := executor.Cleaned{PkgName: j.PkgName, Path: e.name + ":" + path}
			if verb != "removed" {
				cl.Err = errors.New("could not remove it")
			}
			out = append(out, cl)
		}
	}
	return out, nil
}

func signalNumber(name string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
		"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}[name]
	if n == 0 {
		n = -1
	}
	return n
}
