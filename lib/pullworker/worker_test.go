package pullworker_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/pullworker"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// rig is the real pull server (lib/pull) over a real database and file
// store, behind real TLS; the test plays the scheduler (Acquire, Run).
type rig struct {
	dir string
	db  *sql.DB
	st  *filestore.Store
	srv *pull.Server
	ts  *httptest.Server
	fp  string
}

func newRig(t testing.TB, ttl time.Duration) *rig {
	t.Helper()
	ctx := context.Background()
	r := &rig{dir: t.TempDir()}
	var err error
	// Create makes the schema on one connection; the server wants an
	// ordinary Open.
	path := filepath.Join(r.dir, "build.db")
	if r.db, err = db.Create(ctx, path); err != nil {
		t.Fatal(err)
	}
	r.db.Close()
	if r.db, err = db.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	if r.st, err = filestore.New(filepath.Join(r.dir, "store")); err != nil {
		t.Fatal(err)
	}
	r.srv, err = pull.NewServer(ctx, pull.Config{DB: r.db, Store: r.st, LeaseTTL: ttl, PollWait: 2 * time.Second, Sweep: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.ts = httptest.NewTLSServer(r.srv.Handler())
	t.Cleanup(func() { r.ts.Close(); r.srv.Close() })
	r.fp = "sha256:" + pull.Fingerprint(r.ts.Certificate().Raw)
	return r
}

// runningWorker is one worker loop of the test.
type runningWorker struct {
	w      *pullworker.Worker
	cancel context.CancelFunc
	done   chan error
	log    *testenv.Buffer
}

func (r *rig) worker(t *testing.T, name string, build pullworker.BuildFunc, preempt <-chan struct{}, never ...string) *runningWorker {
	t.Helper()
	tok, err := pull.AddToken(context.Background(), r.db, name, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pull.NewClient(pull.ClientConfig{URL: r.ts.URL, Fingerprint: r.fp})
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(r.dir, "tree")
	os.MkdirAll(tree, 0o755)
	rw := &runningWorker{done: make(chan error, 1), log: &testenv.Buffer{}}
	rw.w, err = pullworker.New(pullworker.Options{
		Client: cl, Reader: pullworker.ServerReader{C: cl}, Token: tok,
		Register: pull.RegisterRequest{Host: name, Platform: pullworker.LocalPlatform(), Cores: 1, NoWay: never},
		Settings: job.Settings{Pkgsrc: tree, WorkRoot: filepath.Join(r.dir, "work-"+name)},
		Build:    build, Preempt: preempt, Log: rw.log, PollWait: time.Second, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rw.cancel = cancel
	go func() { rw.done <- rw.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rw.done:
		case <-time.After(10 * time.Second):
			t.Errorf("worker %s did not stop", name)
		}
		if t.Failed() {
			t.Logf("worker %s log:\n%s", name, rw.log)
		}
	})
	return rw
}

func record(pkg string) executor.Job {
	return executor.Job{PkgName: pkg, PkgPath: "cat/" + strings.Split(pkg, "-")[0],
		Record: []byte(fmt.Sprintf("PKGNAME=%s\nPKG_LOCATION=cat/%s\n", pkg, strings.Split(pkg, "-")[0])), Attempt: 1}
}

// okBuild writes the objects of a done build into the staging store and
// reports pkgrun's result, as lib/build does, without building.
func okBuild(ctx context.Context, s job.Settings, st *pullworker.Staging, rec []byte, _ io.Writer) pull.ResultReport {
	name := strings.TrimPrefix(strings.SplitN(string(rec), "\n", 2)[0], "PKGNAME=")
	for _, o := range []string{"All/" + name + ".tgz", "index/" + name + ".pkginfo"} {
		if err := st.Put(ctx, o, strings.NewReader("data of "+o), int64(len("data of "+o))); err != nil {
			return pull.ResultReport{Exit: pull.Exit{Code: 2}, Stderr: err.Error()}
		}
	}
	res := &job.Result{PkgName: name, PkgPath: "cat/x", Status: job.StatusDone, Package: "All/" + name + ".tgz", Fragment: "index/" + name + ".pkginfo"}
	var b strings.Builder
	res.Encode(&b)
	return pull.ResultReport{Exit: pull.Exit{Code: 0}, Stdout: b.String()}
}

// blockingBuild stands for a long build: it returns when its context
// (the lease) ends, and records when.
type blockingBuild struct {
	mu      sync.Mutex
	started chan string
	ended   time.Time
}

func (b *blockingBuild) build(ctx context.Context, s job.Settings, st *pullworker.Staging, rec []byte, _ io.Writer) pull.ResultReport {
	b.started <- string(rec)
	<-ctx.Done()
	b.mu.Lock()
	b.ended = time.Now()
	b.mu.Unlock()
	return pull.ResultReport{Exit: pull.Exit{Code: 2}, Stderr: "interrupted"}
}

func (b *blockingBuild) endedAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ended
}

// TestWorkerBuilds: a worker takes two jobs in turn through the real
// server; their objects are promoted into the store and the results
// reach the scheduler.
func TestWorkerBuilds(t *testing.T) {
	r := newRig(t, 10*time.Second)
	rw := r.worker(t, "w1", okBuild, nil)
	ctx := context.Background()
	for _, pkg := range []string{"foo-1.0", "bar-2.0"} {
		sl, err := r.srv.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out, err := sl.Run(ctx, record(pkg))
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		if out.Result.Status != job.StatusDone || out.Result.PkgName != pkg {
			t.Fatalf("%s: result %+v", pkg, out.Result)
		}
		for _, o := range []string{"All/" + pkg + ".tgz", "index/" + pkg + ".pkginfo"} {
			if _, err := r.st.Stat(ctx, o); err != nil {
				t.Errorf("%s not promoted: %v", o, err)
			}
		}
	}
	// The server hands the result on before its answer reaches the worker.
	waitFor(ctx, 5*time.Second, func() bool { return rw.w.Stats().Reported == 2 })
	if s := rw.w.Stats(); s.Leases != 2 || s.Reported != 2 {
		t.Errorf("stats %+v, want 2 leases reported", s)
	}
}

// TestWorkerLeaseGone: when the scheduler cancels the job (the server
// revokes the lease), the worker's next heartbeat is refused and its
// build is killed at once; nothing of it is promoted and the worker goes
// on to the next job.
func TestWorkerLeaseGone(t *testing.T) {
	ttl := 3 * time.Second
	r := newRig(t, ttl)
	bb := &blockingBuild{started: make(chan string, 4)}
	rw := r.worker(t, "w1", bb.build, nil)
	sl, err := r.srv.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := sl.Run(ctx, record("foo-1.0")); errc <- err }()
	<-bb.started
	revoked := time.Now()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v", err)
	}
	waitFor(context.Background(), 2*ttl, func() bool { return !bb.endedAt().IsZero() })
	took := bb.endedAt().Sub(revoked)
	if bb.endedAt().IsZero() || took > ttl {
		t.Fatalf("the build of a revoked lease ran on (%v after the revocation)", took)
	}
	t.Logf("build killed %v after its lease was revoked (heartbeat every %v)", took.Round(time.Millisecond), ttl/3)
	if _, err := r.st.Stat(context.Background(), "All/foo-1.0.tgz"); err == nil {
		t.Error("the package of a revoked lease was promoted")
	}
	if !waitFor(context.Background(), 5*time.Second, func() bool { return rw.w.Stats().Dropped == 1 }) {
		t.Errorf("stats %+v, want one dropped lease", rw.w.Stats())
	}
}

// TestWorkerTokenRevoked: revoking the worker's token mid-job kills the
// build, requeues the job (Run: ErrLost) and stops the worker with
// ErrRevoked.
func TestWorkerTokenRevoked(t *testing.T) {
	ttl := 3 * time.Second
	r := newRig(t, ttl)
	bb := &blockingBuild{started: make(chan string, 4)}
	rw := r.worker(t, "w1", bb.build, nil)
	sl, err := r.srv.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := sl.Run(context.Background(), record("foo-1.0")); errc <- err }()
	<-bb.started
	if err := pull.RevokeToken(context.Background(), r.db, "w1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, executor.ErrLost) {
			t.Errorf("Run after the revocation: %v, want ErrLost", err)
		}
	case <-time.After(3 * ttl):
		t.Fatal("Run did not return after the token was revoked")
	}
	select {
	case err := <-rw.done:
		rw.done <- err // for the cleanup
		if !errors.Is(err, pullworker.ErrRevoked) {
			t.Errorf("worker: %v, want ErrRevoked", err)
		}
	case <-time.After(3 * ttl):
		t.Fatal("the worker of a revoked token did not stop")
	}
	if bb.endedAt().IsZero() {
		t.Error("the build of a revoked token was not killed")
	}
}

// TestWorkerReleases: SIGTERM (the worker's context) and a preemption
// notice kill the build and give the lease back at once: the scheduler's
// Run returns ErrLost well before the lease's TTL.
func TestWorkerReleases(t *testing.T) {
	for _, how := range []string{"sigterm", "preempt"} {
		t.Run(how, func(t *testing.T) {
			ttl := 20 * time.Second
			r := newRig(t, ttl)
			bb := &blockingBuild{started: make(chan string, 4)}
			preempt := make(chan struct{})
			rw := r.worker(t, "w1", bb.build, preempt)
			sl, err := r.srv.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { _, err := sl.Run(context.Background(), record("foo-1.0")); errc <- err }()
			<-bb.started
			start := time.Now()
			if how == "sigterm" {
				rw.cancel()
			} else {
				close(preempt)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, executor.ErrLost) {
					t.Errorf("Run: %v, want ErrLost (requeued)", err)
				}
				t.Logf("%s: lease given back after %v (TTL %v)", how, time.Since(start).Round(time.Millisecond), ttl)
			case <-time.After(ttl / 2):
				t.Fatalf("%s: the lease was not released", how)
			}
			select {
			case err := <-rw.done:
				rw.done <- err
				if err != nil {
					t.Errorf("%s: worker returned %v, want nil", how, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: the worker did not exit", how)
			}
			if s := rw.w.Stats(); s.Released != 1 {
				t.Errorf("stats %+v, want one released lease", s)
			}
		})
	}
}

// TestWorkerNoWay: a job on the worker's no-way list that reaches it
// anyway (the scheduler asks the slot's Accepts; this test does not) is
// not built: the worker answers like a pkgrun that could not run it.
func TestWorkerNoWay(t *testing.T) {
	r := newRig(t, 10*time.Second)
	var mu sync.Mutex
	built := 0
	count := func(ctx context.Context, s job.Settings, st *pullworker.Staging, rec []byte, w io.Writer) pull.ResultReport {
		mu.Lock()
		built++
		mu.Unlock()
		return okBuild(ctx, s, st, rec, w)
	}
	r.worker(t, "w1", count, nil, "cat/foo", "bar-[0-9]*")
	for _, pkg := range []string{"foo-1.0", "bar-2.0"} {
		sl, err := r.srv.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := any(sl).(executor.Accepter); !ok || a.Accepts("cat/"+strings.Split(pkg, "-")[0], pkg) {
			t.Errorf("%s: the slot accepts a package on the worker's no-way list", pkg)
		}
		if _, err := sl.Run(context.Background(), record(pkg)); !errors.Is(err, executor.ErrCrash) {
			t.Errorf("%s: %v, want a crash (the worker refused it)", pkg, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if built != 0 {
		t.Errorf("%d jobs of the no-way list were built", built)
	}
}

// TestWorkerRefusedResult: a result the server refuses for good (here a
// done result whose package was never staged) is not retried until the
// lease expires: the worker releases the lease and the job is requeued at
// once.
func TestWorkerRefusedResult(t *testing.T) {
	ttl := 20 * time.Second
	r := newRig(t, ttl)
	noPackage := func(ctx context.Context, s job.Settings, st *pullworker.Staging, rec []byte, w io.Writer) pull.ResultReport {
		res := &job.Result{PkgName: "foo-1.0", PkgPath: "cat/foo", Status: job.StatusDone, Package: "All/foo-1.0.tgz", Fragment: "index/foo-1.0.pkginfo"}
		var b strings.Builder
		res.Encode(&b)
		return pull.ResultReport{Exit: pull.Exit{Code: 0}, Stdout: b.String()}
	}
	rw := r.worker(t, "w1", noPackage, nil)
	sl, err := r.srv.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := sl.Run(context.Background(), record("foo-1.0")); !errors.Is(err, executor.ErrLost) {
		t.Errorf("Run: %v, want ErrLost (released)", err)
	}
	if took := time.Since(start); took > ttl/2 {
		t.Errorf("the job came back after %v: the lease was not released (TTL %v)", took, ttl)
	}
	if _, err := r.st.Stat(context.Background(), "All/foo-1.0.tgz"); err == nil {
		t.Error("a package appeared that was never uploaded")
	}
	waitFor(context.Background(), 5*time.Second, func() bool { return rw.w.Stats().Dropped == 1 })
	if s := rw.w.Stats(); s.Dropped != 1 {
		t.Errorf("stats %+v, want one dropped lease", s)
	}
}

// TestWorkerHeartbeatUnderLoad: while the build saturates the machine
// (twice as many CPU-bound processes as cores, in their own process
// group, for three lease TTLs), the worker's heartbeats keep the lease:
// the result is accepted.
func TestWorkerHeartbeatUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("saturates the machine for a few seconds")
	}
	ttl := 2 * time.Second
	r := newRig(t, ttl)
	burn := func(ctx context.Context, s job.Settings, st *pullworker.Staging, rec []byte, w io.Writer) pull.ResultReport {
		n := 2 * runtime.NumCPU()
		cmd := exec.Command("sh", "-c", fmt.Sprintf("for i in $(seq %d); do (while :; do :; done) & done; wait", n))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return pull.ResultReport{Exit: pull.Exit{Code: 2}, Stderr: err.Error()}
		}
		select {
		case <-ctx.Done():
		case <-time.After(3 * ttl):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if ctx.Err() != nil {
			return pull.ResultReport{Exit: pull.Exit{Code: 2}, Stderr: "killed"}
		}
		return okBuild(ctx, s, st, rec, w)
	}
	r.worker(t, "w1", burn, nil)
	sl, err := r.srv.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := sl.Run(context.Background(), record("foo-1.0"))
	if err != nil {
		t.Fatalf("the lease was lost while the build loaded the machine: %v", err)
	}
	if out.Result.Status != job.StatusDone {
		t.Errorf("result %+v", out.Result)
	}
}
