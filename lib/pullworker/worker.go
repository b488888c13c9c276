// Package pullworker is the builder side of volunteer pull builders
// (`pkgrun worker`): a machine nobody can connect to dials out to
// pkgsched's pull server (lib/pull), registers, long-polls for a lease on
// one job, builds it with lib/build exactly as pkgrun does (in its
// sandbox, into a local staging store over the server's packages),
// heartbeats the lease from a goroutine of its own while the build runs,
// uploads only the lease's objects, reports pkgrun's result, and loops.
//
// Fencing is the server's; the worker helps: when a heartbeat (or an
// upload) says the lease is gone (revoked, replaced, expired), or no
// heartbeat reached the server for the lease's TTL by the worker's own
// clock (cut off, or frozen and woken up: the server has requeued the job
// by then), the build's process groups are killed at once and nothing of
// it is uploaded or reported. On SIGTERM (ctx cancelled) and on a
// preemption notice (Options.Preempt) the build is killed and the lease
// released, so the job is requeued at once; so is a lease whose result
// the server refused for good.
//
// The registration token is read by the caller from a file and only ever
// sent in the body of the registration; the file is hidden from every
// build's sandbox, and neither the token nor the session is logged.
package pullworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
)

// Client is the part of lib/pull's client the worker uses (*pull.Client
// satisfies it).
type Client interface {
	Register(ctx context.Context, req pull.RegisterRequest) (*pull.RegisterResponse, error)
	Poll(ctx context.Context, req pull.LeaseRequest) (*pull.Lease, error)
	Heartbeat(ctx context.Context, ref pull.LeaseRef, req pull.HeartbeatRequest) (*pull.HeartbeatResponse, error)
	Upload(ctx context.Context, ref pull.LeaseRef, name string, r io.Reader, size int64, sum string) error
	Report(ctx context.Context, ref pull.LeaseRef, rep pull.ResultReport) (*pull.ResultResponse, error)
	Release(ctx context.Context, ref pull.LeaseRef, reason string) error
	Bye(ctx context.Context) error
}

// Options configure a worker.
type Options struct {
	Client Client
	// Reader reads the server's store for builds (dependencies, the
	// up-to-date check).
	Reader Reader
	// Token is the registration token (from --token-file).
	Token string
	// Register is the registration without the token: host, platform,
	// tree revision, cores, labels, no-way list.
	Register pull.RegisterRequest
	// Settings are the worker's own pkgrun settings (pkgsrc tree, work
	// root, kit, make...); the lease's settings fill in the rest.
	Settings job.Settings
	// Preempt, when it is closed or receives, makes the worker kill its
	// build, release its lease and return nil (a spot instance's
	// interruption notice).
	Preempt <-chan struct{}
	// Log receives one line per event; never a token or session.
	Log io.Writer
	// PollWait is how long a lease poll may be held (0: the server's).
	PollWait time.Duration
	// MaxBackoff bounds the pause between attempts to reach the server
	// (default 10s).
	MaxBackoff time.Duration
	// Build runs one job (nil: lib/build, as pkgrun does). Tests replace
	// it only to count calls; the end-to-end tests use the real one.
	Build BuildFunc
}

// BuildFunc builds one job's record with settings into st and returns
// what pkgrun would print and exit with.
type BuildFunc func(ctx context.Context, s job.Settings, st *Staging, record []byte, progress io.Writer) pull.ResultReport

// ErrRevoked is wrapped by Run's error when the server ended the
// worker's token or session.
var ErrRevoked = errors.New("the server revoked this worker's token")

// Worker is one running worker.
type Worker struct {
	o     Options
	reg   *pull.RegisterResponse
	name  string
	noWay *pull.NoWay

	mu    sync.Mutex
	stats Stats
}

// Stats count what a worker did, for its log and tests.
type Stats struct {
	Leases   int // leases taken
	Reported int // results the server accepted
	Dropped  int // leases lost (fenced, expired, revoked) whose work was dropped
	Released int // leases given back (SIGTERM, preemption)
}

// Stats returns the counts so far.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

func (w *Worker) count(f func(*Stats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// New checks the options.
func New(o Options) (*Worker, error) {
	if o.Client == nil || o.Reader == nil {
		return nil, errors.New("pull worker: no client")
	}
	if o.Token == "" {
		return nil, errors.New("pull worker: empty registration token")
	}
	if o.Settings.Pkgsrc == "" {
		return nil, errors.New("pull worker: no pkgsrc tree given (--pkgsrc)")
	}
	if o.Settings.Store != "" {
		return nil, errors.New("pull worker: a worker has no store of its own (--store): it stores through the server")
	}
	if o.Settings.WorkRoot == "" {
		o.Settings.WorkRoot = filepath.Join(os.TempDir(), "pkgrun")
	}
	abs, err := filepath.Abs(o.Settings.WorkRoot)
	if err != nil {
		return nil, err
	}
	o.Settings.WorkRoot = abs
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Build == nil {
		o.Build = BuildWithLib
	}
	if o.Register.Cores < 1 {
		o.Register.Cores = 1
	}
	nw, err := pull.CompileNoWay(o.Register.NoWay)
	if err != nil {
		return nil, fmt.Errorf("--never: %w", err)
	}
	return &Worker{o: o, noWay: nw}, nil
}

func (w *Worker) logf(format string, args ...any) {
	fmt.Fprintf(w.o.Log, "pkgrun worker: "+format+"\n", args...)
}

// errPreempted ends the loop after a preemption.
var errPreempted = errors.New("preempted")

// Run registers and builds leases until ctx ends (SIGTERM: the lease in
// hand is released first, and Run returns nil), the worker is preempted
// (nil), the server retires it (nil), or the token is revoked or the
// worker refused (an error).
func (w *Worker) Run(ctx context.Context) error {
	lock, err := lockWorkRoot(w.o.Settings.WorkRoot)
	if err != nil {
		return err
	}
	defer lock.Close()
	removed, err := cleanLeftovers(w.o.Settings.WorkRoot)
	for _, p := range removed {
		w.logf("removed %s (left by a worker that was killed)", p)
	}
	if err != nil {
		return err
	}
	if err := w.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		w.o.Client.Bye(c)
		cancel()
	}()
	backoff := time.Duration(0)
	for {
		if w.preempted() {
			w.logf("preempted: leaving")
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		pctx, cancel := w.withPreempt(ctx)
		l, err := w.o.Client.Poll(pctx, pull.LeaseRequest{TreeRevision: w.o.Register.TreeRevision, Wait: pull.Duration(w.o.PollWait)})
		cancel()
		switch {
		case err == nil:
			backoff = 0
		case ctx.Err() != nil:
			return nil
		case w.preempted():
			continue
		case pull.IsSkew(err):
			return fmt.Errorf("the server refuses this worker: %w", err)
		case isRetired(err):
			w.logf("the server retired this worker: leaving")
			return nil
		case pull.IsNoSpace(err):
			return fmt.Errorf("the server gives this worker no more jobs: it ran out of disk space (%w)", err)
		case pull.IsUnauthorized(err):
			if isRevoked(err) {
				return fmt.Errorf("%w: %v", ErrRevoked, err)
			}
			// The session ended (not the token): register again.
			w.logf("session ended (%v): registering again", err)
			if err := w.register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		default:
			backoff = w.pause(ctx, backoff, "lease poll", err)
			continue
		}
		if l == nil {
			continue
		}
		if err := w.runLease(ctx, l); err != nil {
			if errors.Is(err, errPreempted) {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// withPreempt is ctx, also cancelled by a preemption (a poll must not
// hold a preempted worker). The caller calls cancel.
func (w *Worker) withPreempt(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	if w.o.Preempt != nil {
		go func() {
			select {
			case <-w.o.Preempt:
				cancel()
			case <-c.Done():
			}
		}()
	}
	return c, cancel
}

func (w *Worker) preempted() bool {
	if w.o.Preempt == nil {
		return false
	}
	select {
	case <-w.o.Preempt:
		return true
	default:
		return false
	}
}

// pause waits before the next attempt to reach the server, doubling up
// to MaxBackoff, and returns the new pause.
func (w *Worker) pause(ctx context.Context, last time.Duration, what string, err error) time.Duration {
	next := min(max(2*last, 500*time.Millisecond), w.o.MaxBackoff)
	w.logf("%s: %v (again in %v)", what, err, next)
	t := time.NewTimer(next)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-w.preemptCh():
	}
	return next
}

// preemptCh is Preempt, or a channel that never fires.
func (w *Worker) preemptCh() <-chan struct{} {
	if w.o.Preempt == nil {
		return nil
	}
	return w.o.Preempt
}

// register trades the token for a session, retrying while the server is
// unreachable or busy.
func (w *Worker) register(ctx context.Context) error {
	req := w.o.Register
	req.Token = w.o.Token
	backoff := time.Duration(0)
	for {
		resp, err := w.o.Client.Register(ctx, req)
		switch {
		case err == nil:
			w.reg = resp
			w.name = resp.Worker
			w.logf("registered as %s (%s, tree %q, %d cores); lease TTL %v", resp.Worker, req.Platform, req.TreeRevision, req.Cores, resp.LeaseTTL.D())
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case pull.IsSkew(err):
			return fmt.Errorf("the server refuses this worker: %w", err)
		case pull.IsUnauthorized(err):
			return fmt.Errorf("%w: %v", ErrRevoked, err)
		case isClientError(err) && !isBusy(err):
			return fmt.Errorf("register: %w", err)
		}
		backoff = w.pause(ctx, backoff, "register", err)
		if w.preempted() {
			return errPreempted
		}
	}
}

func isRevoked(err error) bool {
	var a *pull.APIError
	return errors.As(err, &a) && a.Code == pull.CodeRevoked
}

func isBusy(err error) bool {
	var a *pull.APIError
	return errors.As(err, &a) && a.Code == pull.CodeBusy
}

// isRetired: the server told the worker to go away (it is being stopped
// by an autoscaler, or the run is over).
func isRetired(err error) bool {
	var a *pull.APIError
	return errors.As(err, &a) && a.Status == 410
}

// isClientError is a 4xx answer: asking again the same way will not help.
func isClientError(err error) bool {
	var a *pull.APIError
	return errors.As(err, &a) && a.Status >= 400 && a.Status < 500
}
