package pullworker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
)

// lease is one lease in progress: its heartbeat's view of whether it is
// still the job's current lease.
type lease struct {
	w   *Worker
	l   *pull.Lease
	ref pull.LeaseRef

	// ctx is the lease's life: cancelled when the lease is gone (kill =
	// cancel), which kills the build's process groups at once.
	ctx  context.Context
	kill context.CancelFunc

	mu      sync.Mutex
	gone    error  // why the lease is no longer ours (fenced, revoked, unreachable past its TTL)
	revoked bool   // the token or session was revoked
	phase   string // the build's current step, sent with heartbeats
}

func (ls *lease) setGone(err error, revoked bool) {
	ls.mu.Lock()
	if ls.gone == nil {
		ls.gone, ls.revoked = err, revoked
	}
	ls.mu.Unlock()
	ls.kill()
}

func (ls *lease) goneErr() (error, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.gone, ls.revoked
}

// Write takes lib/build's progress lines ("foo-1.0: build") for the
// phase the heartbeat reports.
func (ls *lease) Write(p []byte) (int, error) {
	lines := strings.Split(strings.TrimRight(string(p), "\n"), "\n")
	last := lines[len(lines)-1]
	if _, step, ok := strings.Cut(last, ": "); ok {
		if len(step) > 64 {
			step = step[:64]
		}
		ls.mu.Lock()
		ls.phase = step
		ls.mu.Unlock()
	}
	return len(p), nil
}

func (ls *lease) currentPhase() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.phase
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// runLease builds one lease. It returns errPreempted after a preemption,
// an error wrapping ErrRevoked when the token was revoked, and nil
// otherwise (reported, dropped, or released on shutdown).
func (w *Worker) runLease(ctx context.Context, l *pull.Lease) error {
	w.count(func(s *Stats) { s.Leases++ })
	ls := &lease{w: w, l: l, ref: l.Ref()}
	ls.ctx, ls.kill = context.WithCancel(context.Background())
	defer ls.kill()
	w.logf("lease %s (attempt %d): %s (%s)", l.ID, l.Attempt, l.PkgName, l.PkgPath)

	// Heartbeats, from a goroutine of the worker (the build's commands
	// run in process groups of their own), until the result is in.
	hbStop := make(chan struct{})
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); ls.heartbeat(hbStop) }()
	stopHeartbeat := func() {
		select {
		case <-hbStop:
		default:
			close(hbStop)
		}
		<-hbDone
	}
	defer stopHeartbeat()

	// SIGTERM and preemption: kill the build, give the lease back.
	var release string
	var relMu sync.Mutex
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		var why string
		select {
		case <-ctx.Done():
			why = "the worker is shutting down"
		case <-w.preemptCh():
			why = "preempted (spot interruption notice)"
		case <-watchDone:
			return
		case <-ls.ctx.Done():
			return
		}
		relMu.Lock()
		release = why
		relMu.Unlock()
		ls.kill()
	}()
	released := func() string {
		relMu.Lock()
		defer relMu.Unlock()
		return release
	}

	rep, refused := w.checkLease(l)
	var st *Staging
	dir := filepath.Join(w.o.Settings.WorkRoot, leasesDir, unsafeChars.ReplaceAllString(l.ID, "_"))
	if refused == "" {
		os.RemoveAll(dir)
		defer os.RemoveAll(dir)
		var err error
		if err = os.MkdirAll(dir, 0o700); err == nil {
			// For a worker started after this one was killed: whose job
			// directories are left over.
			err = os.WriteFile(filepath.Join(dir, pkgnameFile), []byte(l.PkgName+"\n"), 0o600)
		}
		if err == nil {
			st, err = NewStaging(filepath.Join(dir, "store"), w.o.Reader, l.Objects, fmt.Sprintf("the pull server's store (lease %s)", l.ID))
		}
		if err != nil {
			rep = crashReport(2, err)
		} else {
			rep = w.o.Build(ls.ctx, w.settings(l), st, []byte(l.Record), ls)
		}
	} else {
		w.logf("lease %s: %s", l.ID, refused)
	}

	if why := released(); why != "" {
		stopHeartbeat()
		return w.releaseLease(ls, why)
	}
	if err, revoked := ls.goneErr(); err != nil {
		return w.drop(ls, err, revoked)
	}

	// Upload only the lease's objects, then the result.
	if st != nil {
		if err := w.upload(ls, st); err != nil {
			if why := released(); why != "" {
				stopHeartbeat()
				return w.releaseLease(ls, why)
			}
			if gerr, revoked := ls.goneErr(); gerr != nil {
				return w.drop(ls, gerr, revoked)
			}
			return w.giveUp(ls, err)
		}
	}
	resp, err := w.retry(ls, "report the result", func(c context.Context) error {
		r, err := w.o.Client.Report(c, ls.ref, rep)
		if err == nil {
			w.logf("lease %s: %s reported (exit %d); promoted %s", l.ID, l.PkgName, rep.Exit.Code, strings.Join(r.Promoted, " "))
		}
		return err
	})
	_ = resp
	if err != nil {
		if why := released(); why != "" {
			stopHeartbeat()
			return w.releaseLease(ls, why)
		}
		if gerr, revoked := ls.goneErr(); gerr != nil {
			return w.drop(ls, gerr, revoked)
		}
		return w.giveUp(ls, err)
	}
	w.count(func(s *Stats) { s.Reported++ })
	return nil
}

// checkLease refuses what the worker said it will not build (the server
// should not have offered it) with a crash-like report, so the job goes to
// another worker.
func (w *Worker) checkLease(l *pull.Lease) (pull.ResultReport, string) {
	if w.noWay.Refuses(l.PkgPath, l.PkgName) {
		msg := fmt.Sprintf("%s (%s) is on this worker's no-way list", l.PkgName, l.PkgPath)
		return crashReport(2, errors.New(msg)), msg
	}
	return pull.ResultReport{}, ""
}

// settings are the lease's settings with the worker's own put over them:
// the tree, work root, kit, make and users are the worker's; the store is
// the staging store.
func (w *Worker) settings(l *pull.Lease) job.Settings {
	s := l.Settings
	s.Pkgsrc, s.WorkRoot, s.BootstrapKit, s.Make, s.UnprivUser = "", "", "", "", ""
	s.Store, s.StoreAccess = "", nil
	s = s.Override(w.o.Settings)
	s.Store, s.StoreAccess = "", nil
	return s
}

// heartbeat keeps the lease alive until stop. A fenced answer or a
// revoked session ends the lease at once; so does a server that stayed
// unreachable for longer than the lease's TTL (it has requeued the job).
func (ls *lease) heartbeat(stop <-chan struct{}) {
	w := ls.w
	ttl := w.reg.LeaseTTL.D()
	if ttl <= 0 {
		ttl = max(time.Until(ls.l.Expires), time.Second)
	}
	every := w.reg.Heartbeat.D()
	if every <= 0 || every > ttl/2 {
		every = ttl / 3
	}
	// The lease is surely over at deadline, on our own clock: the last
	// heartbeat the server took was sent before it received it. The
	// first heartbeat goes at once, to start that clock.
	deadline := time.Now().Add(ttl)
	wait := time.Duration(0)
	for {
		wait = max(min(wait, time.Until(deadline)), 0)
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		if time.Now().After(deadline) {
			// Cut off, or frozen (SIGSTOP, a suspended VM) past the TTL:
			// the server has requeued the job; stop before asking.
			ls.setGone(fmt.Errorf("no heartbeat reached the server for the lease's TTL %v: it has requeued the job", ttl), false)
			return
		}
		sent := time.Now()
		c, cancel := context.WithTimeout(context.Background(), min(max(every, 2*time.Second), max(time.Until(deadline), 100*time.Millisecond)))
		_, err := w.o.Client.Heartbeat(c, ls.ref, pull.HeartbeatRequest{Phase: ls.currentPhase()})
		cancel()
		switch {
		case err == nil:
			deadline = sent.Add(ttl)
			wait = every
		case pull.IsFenced(err):
			ls.setGone(fmt.Errorf("the server says the lease is no longer the job's: %w", err), false)
			return
		case pull.IsUnauthorized(err):
			ls.setGone(fmt.Errorf("%w: %v", ErrRevoked, err), true)
			return
		default:
			// Try again soon: the lease may still be saved.
			w.logf("lease %s: heartbeat: %v", ls.l.ID, err)
			wait = min(every, 2*time.Second)
		}
	}
}

// retry calls f until it succeeds, the lease is gone or a 4xx other than
// 429/503 answers.
func (w *Worker) retry(ls *lease, what string, f func(context.Context) error) (struct{}, error) {
	backoff := time.Duration(0)
	for {
		err := f(ls.ctx)
		switch {
		case err == nil:
			return struct{}{}, nil
		case ls.ctx.Err() != nil:
			return struct{}{}, err
		case pull.IsFenced(err):
			ls.setGone(fmt.Errorf("%s: %w", what, err), false)
			return struct{}{}, err
		case pull.IsUnauthorized(err):
			ls.setGone(fmt.Errorf("%w: %v", ErrRevoked, err), true)
			return struct{}{}, err
		case isClientError(err) && !isBusy(err):
			return struct{}{}, fmt.Errorf("%s: %w", what, err)
		}
		next := min(max(2*backoff, 500*time.Millisecond), w.o.MaxBackoff)
		w.logf("lease %s: %s: %v (again in %v)", ls.l.ID, what, err, next)
		t := time.NewTimer(next)
		select {
		case <-ls.ctx.Done():
			t.Stop()
			return struct{}{}, ls.ctx.Err()
		case <-t.C:
		}
		backoff = next
	}
}

// upload sends the staged objects of the lease's scope.
func (w *Worker) upload(ls *lease, st *Staging) error {
	objs, err := st.Staged(ls.ctx)
	if err != nil {
		return err
	}
	for _, o := range objs {
		sum, err := fileSum(ls.ctx, st, o.Name)
		if err != nil {
			return err
		}
		_, err = w.retry(ls, "upload "+o.Name, func(c context.Context) error {
			rc, err := st.Open(c, o.Name)
			if err != nil {
				return err
			}
			defer rc.Close()
			return w.o.Client.Upload(c, ls.ref, o.Name, rc, o.Size, sum)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func fileSum(ctx context.Context, st *Staging, name string) (string, error) {
	rc, err := st.Open(ctx, name)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", fmt.Errorf("read staged %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// drop ends a lease that is no longer ours: nothing more is sent.
func (w *Worker) drop(ls *lease, why error, revoked bool) error {
	w.count(func(s *Stats) { s.Dropped++ })
	w.logf("lease %s: %s: dropped (%v)", ls.l.ID, ls.l.PkgName, why)
	if revoked || errors.Is(why, ErrRevoked) {
		return fmt.Errorf("%w (lease %s dropped)", ErrRevoked, ls.l.ID)
	}
	return nil
}

// giveUp ends a lease the server still holds whose work it refused for
// good (a 4xx answer to an upload or the result): the lease is released,
// so that the job is requeued at once rather than after the TTL.
func (w *Worker) giveUp(ls *lease, why error) error {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.o.Client.Release(c, ls.ref, "the worker could not hand in its work: "+why.Error()); err != nil && !pull.IsFenced(err) {
		w.logf("lease %s: release: %v", ls.l.ID, err)
	}
	return w.drop(ls, why, false)
}

// releaseLease gives the lease back at once after SIGTERM or a
// preemption.
func (w *Worker) releaseLease(ls *lease, why string) error {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.o.Client.Release(c, ls.ref, why); err != nil && !pull.IsFenced(err) {
		w.logf("lease %s: release: %v (the server requeues it when the lease expires)", ls.l.ID, err)
	} else {
		w.logf("lease %s: %s released: %s", ls.l.ID, ls.l.PkgName, why)
	}
	w.count(func(s *Stats) { s.Released++ })
	if w.preempted() {
		return errPreempted
	}
	return nil
}

// crashReport is what pkgrun says when it could not run the job: exit
// status code (2, or job.ExitNoSpace), the message on stderr, nothing on
// stdout.
func crashReport(code int, err error) pull.ResultReport {
	msg := "pkgrun: " + err.Error() + "\n"
	if len(msg) > protocol.StderrTail {
		msg = msg[len(msg)-protocol.StderrTail:]
	}
	return pull.ResultReport{Exit: pull.Exit{Code: code}, Stderr: msg}
}

// BuildWithLib builds the record with lib/build into st, as pkgrun does,
// and returns what pkgrun would have printed and exited with.
func BuildWithLib(ctx context.Context, s job.Settings, st *Staging, record []byte, progress io.Writer) pull.ResultReport {
	j, err := build.ParseJob("the lease's record", bytes.NewReader(record))
	if err != nil {
		return crashReport(2, err)
	}
	b := &build.Builder{Settings: s, Store: st, Progress: progress}
	res, err := b.Run(ctx, j)
	if err != nil {
		return crashReport(max(cli.ExitCode(err), 2), err)
	}
	var out bytes.Buffer
	if err := res.Encode(&out); err != nil {
		return crashReport(2, err)
	}
	code := 0
	if !res.Status.Success() {
		code = 1
	}
	return pull.ResultReport{Exit: pull.Exit{Code: code}, Stdout: out.String()}
}
