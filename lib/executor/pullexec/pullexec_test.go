package pullexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
)

func TestMain(m *testing.M) { executortest.Main(m) }

// start makes a pull executor on a new database and file store, with
// workers test workers that run the fake pkgrun in workRoot.
func start(t *testing.T, workRoot string, settings job.Settings, workers int) *Executor {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "bulk.db")
	d, err := db.Create(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if d, err = db.Open(context.Background(), dbPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{DB: d, Store: st, OwnStore: true, Settings: settings, Listen: "127.0.0.1:0",
		CertDir: dbPath, LeaseTTL: 1500 * time.Millisecond, PollWait: time.Second, Sweep: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		e.Close()
		wg.Wait()
	})
	pkgrun := executortest.FakePkgrun(t)
	for i := range workers {
		tok, err := e.MintToken(ctx, fmt.Sprintf("w%d", i), nil, true)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := testWorker(ctx, e.URL(), e.Fingerprint(), tok, pkgrun, workRoot); err != nil && ctx.Err() == nil {
				t.Logf("worker %d: %v", i, err)
			}
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); e.Capacity() < workers; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("capacity %d, want %d", e.Capacity(), workers)
		}
	}
	return e
}

// testWorker is a minimal pull worker: it runs pkgrun for each lease,
// heartbeats beside it (killing the build when the lease is fenced), and
// forwards what pkgrun left. (The real one is pkgrun worker.)
func testWorker(ctx context.Context, url, fp, token, pkgrun, workRoot string) error {
	c, err := pull.NewClient(pull.ClientConfig{URL: url, Fingerprint: fp})
	if err != nil {
		return err
	}
	defer c.CloseIdle()
	reg, err := c.Register(ctx, pull.RegisterRequest{Token: token, Host: "test", Cores: 1})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		l, err := c.Poll(ctx, pull.LeaseRequest{Wait: pull.Duration(time.Second)})
		if pull.IsUnauthorized(err) || pull.IsNoSpace(err) {
			return err
		}
		if err != nil || l == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		set := l.Settings
		set.WorkRoot = workRoot
		doc, _ := protocol.SettingsDocument(set)
		f := filepath.Join(os.TempDir(), "pullexec-test-"+l.ID+".json")
		os.WriteFile(f, doc, 0o600)
		cmd := exec.Command(pkgrun, "--job", f)
		cmd.Stdin = strings.NewReader(l.Record)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		fenced := make(chan struct{})
		stop := make(chan struct{})
		go func() {
			t := time.NewTicker(reg.Heartbeat.D())
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				if _, err := c.Heartbeat(ctx, l.Ref(), pull.HeartbeatRequest{}); pull.IsFenced(err) || pull.IsUnauthorized(err) {
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					close(fenced)
					return
				}
			}
		}()
		werr := cmd.Wait()
		close(stop)
		os.Remove(f)
		select {
		case <-fenced:
			continue
		default:
		}
		rep := pull.ResultReport{Stdout: stdout.String(), Stderr: stderr.String()}
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			ws := ee.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				rep.Exit = pull.Exit{Signal: int(ws.Signal()), SigName: ws.Signal().String()}
			} else {
				rep.Exit.Code = ws.ExitStatus()
			}
		}
		if _, err := c.Report(ctx, l.Ref(), rep); err != nil && !pull.IsFenced(err) {
			return err
		}
	}
	return nil
}

func runJob(t *testing.T, e *Executor, name string) (*executor.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if !strings.HasPrefix(s.Name(), "pull:w") {
		t.Errorf("slot name %q", s.Name())
	}
	rec := "PKGNAME=" + name + "\nPKG_LOCATION=test/" + strings.TrimSuffix(name, "-1.0") + "\n"
	return s.Run(ctx, executor.Job{PkgName: name, PkgPath: "test/x", Record: []byte(rec), Attempt: 1})
}

// TestResultsAndCrashes: results of every kind come back as the local
// executor's would (protocol.Interpret on the server); crashes of every
// kind are ErrCrash, not results; the builder ran once per job.
func TestResultsAndCrashes(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, executortest.Settings(dir, 0), 2)
	for _, tc := range []struct {
		name   string
		status job.Status
		crash  bool
	}{
		{"ok-1.0", job.StatusDone, false},
		{"failing-1.0", job.StatusFailed, false},
		{"skewed-1.0", job.StatusSkew, false},
		{"timeout-1.0", job.StatusTimeout, false},
		{"crash-1.0", "", true},
		{"garbage-1.0", "", true},
		{"signal-1.0", "", true},
	} {
		out, err := runJob(t, e, tc.name)
		switch {
		case tc.crash && (err == nil || !errors.Is(err, executor.ErrCrash) || errors.Is(err, executor.ErrLost)):
			t.Errorf("%s: %v, want a crash", tc.name, err)
		case !tc.crash && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.crash && (out.Result.PkgName != tc.name || out.Result.Status != tc.status):
			t.Errorf("%s: got %s %s", tc.name, out.Result.PkgName, out.Result.Status)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, executortest.LogName))
	if got := strings.Count(string(log), "\n"); got != 4 || strings.Contains(string(log), "DOUBLE") {
		t.Errorf("the builders logged %d jobs, want 4:\n%s", got, log)
	}
}

// TestNoSpace: a worker out of disk space is retired (capacity drops);
// once every worker is, Acquire fails at once with ErrNoSpace.
func TestNoSpace(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, executortest.Settings(dir, 0), 2)
	for k := range 2 {
		_, err := runJob(t, e, "nospace-1.0")
		if !errors.Is(err, executor.ErrNoSpace) || errors.Is(err, executor.ErrCrash) {
			t.Fatalf("out of space: %v", err)
		}
		if c := e.Capacity(); c != 1-k {
			t.Errorf("capacity %d after %d workers ran out of space", c, k+1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := e.Acquire(ctx); !errors.Is(err, executor.ErrNoSpace) {
		if err == nil {
			s.Release()
		}
		t.Errorf("acquire with every worker out of space: %v", err)
	}
}

// TestCancelAndLost: a cancelled Run returns the context's error at once
// (the lease fenced), and the worker kills its build at its next
// heartbeat; a worker that vanishes (its build hangs and it stops
// heartbeating) loses the job after the TTL with ErrLost.
func TestCancelAndLost(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, executortest.Settings(dir, 0), 1)
	ctx, cancel := context.WithCancel(context.Background())
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
	_, err = s.Run(ctx, executor.Job{PkgName: "hang-1.0", Record: []byte("PKGNAME=hang-1.0\n")})
	if !errors.Is(err, context.Canceled) || errors.Is(err, executor.ErrCrash) {
		t.Errorf("cancelled: %v", err)
	}
	b, _ := os.ReadFile(marker)
	pid, _ := strconv.Atoi(string(b))
	for deadline := time.Now().Add(10 * time.Second); pid > 0 && syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the build %d still runs 10s after its lease was cancelled", pid)
		}
	}
	if out, err := runJob(t, e, "ok-1.0"); err != nil || out.Result.Status != job.StatusDone {
		t.Errorf("build after a cancel: %v", err)
	}
}

// TestSelfSignedKept: the self-signed certificate is made once and kept
// beside the database (key 0600), so its fingerprint survives a restart.
func TestSelfSignedKept(t *testing.T) {
	base := filepath.Join(t.TempDir(), "bulk.db")
	a, err := SelfSigned(base+".pull-cert.pem", base+".pull-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	b, err := SelfSigned(base+".pull-cert.pem", base+".pull-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if pull.Fingerprint(a.Certificate[0]) != pull.Fingerprint(b.Certificate[0]) {
		t.Errorf("a second start made a new certificate")
	}
	if fi, err := os.Stat(base + ".pull-key.pem"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v %v, want 0600", fi.Mode(), err)
	}
	os.Remove(base + ".pull-cert.pem")
	if _, err := SelfSigned(base+".pull-cert.pem", base+".pull-key.pem"); err == nil {
		t.Errorf("a key without its certificate was replaced silently")
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec, err string
		ttl       time.Duration
	}{
		{"pull://127.0.0.1:8443", "", 0},
		{"pull://:8443?ttl=2m&poll=10s&tree=abc&platform=NetBSD%2010.0/x86_64", "", 2 * time.Minute},
		{"pull://0.0.0.0:8443?cert=/c.pem&key=/k.pem", "", 0},
		{"pull://host", "listen address", 0},
		{"pull://:1?ttl=5", "ttl", 0},
		{"pull://:1?ttl=10ms", "ttl", 0},
		{"pull://:1?bogus=1", "unknown setting", 0},
		{"pull://:1?platform=NetBSD", "platform", 0},
		{"pull://user@:1", "want pull://", 0},
		{"pull://:1/path", "want pull://", 0},
	} {
		c, err := ParseSpec(tc.spec)
		if tc.err == "" && (err != nil || c.LeaseTTL != tc.ttl) {
			t.Errorf("%s: %+v %v", tc.spec, c, err)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want one about %s", tc.spec, err, tc.err)
		}
	}
	c, _ := ParseSpec("pull://:1?platform=NetBSD%2010.0/x86_64")
	if c.Platform != (pull.Platform{OpSys: "NetBSD", OSVersion: "10.0", Arch: "x86_64"}) {
		t.Errorf("platform %+v", c.Platform)
	}
}

func FuzzParseSpec(f *testing.F) {
	f.Add("pull://:8443?ttl=5m&platform=NetBSD/x86_64")
	f.Add("pull://[::1]:1?cert=a&key=b")
	f.Fuzz(func(t *testing.T, s string) {
		ParseSpec(s)
	})
}

// TestScanDefaults: without tree= and platform=, the skew check takes the
// scan's from the database's meta; the spec wins.
func TestScanDefaults(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "bulk.db")
	d, err := db.Create(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var c Config
	if err := scanDefaults(context.Background(), d, &c); err != nil || c.Tree != "" || c.Platform != (pull.Platform{}) {
		t.Errorf("no meta: %+v %v", c, err)
	}
	d.Exec(`INSERT INTO meta (key, value) VALUES ('scan.tree_revision', 'abc'), ('scan.platform', 'NetBSD 10.0/x86_64')`)
	if err := scanDefaults(context.Background(), d, &c); err != nil || c.Tree != "abc" || c.Platform.Arch != "x86_64" || c.Platform.OSVersion != "10.0" {
		t.Errorf("from meta: %+v %v", c, err)
	}
	c = Config{Tree: "def"}
	scanDefaults(context.Background(), d, &c)
	if c.Tree != "def" {
		t.Errorf("the spec's tree lost to meta: %+v", c)
	}
	d.Exec(`UPDATE meta SET value = 'garbage' WHERE key = 'scan.platform'`)
	if err := scanDefaults(context.Background(), d, &Config{}); err == nil || !strings.Contains(err.Error(), "scan.platform") {
		t.Errorf("bad platform in meta: %v", err)
	}
}
