package pullworker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/pullworker"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// e2e is one end-to-end run: pkgsched with the pull executor in the
// server namespace, pkgrun workers in worker namespaces.
type e2e struct {
	t        *testing.T
	x        *executortest.ExampleTree
	n        *netTopo
	mk       string
	db       string
	store    string
	port     int
	ttl      time.Duration
	tree     string // the tree revision the scan is checked against
	fp       string
	schedOut *testenv.Buffer

	mu        sync.Mutex
	sched     *exec.Cmd
	schedExit chan int // the exit status of sched
	schedN    int      // pkgsched processes started
}

func (e *e2e) bin(name string) string { return filepath.Join(e.x.Bin, name) }

// pkgsched runs a pkgsched subcommand on the database (outside the run).
func (e *e2e) pkgsched(args ...string) (string, error) {
	cmd := exec.Command(e.bin("pkgsched"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("pkgsched %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

var tokenRE = regexp.MustCompile(regexp.QuoteMeta(pull.TokenPrefix) + `[A-Za-z0-9_-]+`)

// token adds a registration token and writes it to a 0600 file.
func (e *e2e) token(name string) string {
	out, err := e.pkgsched("token", "add", "--db", e.db, name)
	if err != nil {
		e.t.Fatal(err)
	}
	tok := tokenRE.FindString(out)
	if tok == "" {
		e.t.Fatalf("pkgsched token add %s printed no token", name)
	}
	f := filepath.Join(e.x.Dir, "token-"+name)
	if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// startSched starts pkgsched run in the server namespace.
func (e *e2e) startSched() {
	e.mu.Lock()
	defer e.mu.Unlock()
	spec := fmt.Sprintf("pull://0.0.0.0:%d?ttl=%v&poll=5s&tree=%s", e.port, e.ttl, e.tree)
	args := []string{"netns", "exec", e.n.server, e.bin("pkgsched"), "run", "--db", e.db, "--executor", spec,
		"--store", "file://" + e.store, "--pkgrun", e.bin("pkgrun"), "--pkgsrc", e.x.Tree, "--make", e.mk,
		"--max-time", "5m", "--max-crashes", "20", "--json", "--work-root", filepath.Join(e.x.Dir, "work-sched")}
	cmd := exec.Command("ip", args...)
	e.schedN++
	fmt.Fprintf(e.schedOut, "=== pkgsched run #%d\n", e.schedN)
	cmd.Stdout, cmd.Stderr = e.schedOut, e.schedOut
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	exit := make(chan int, 1)
	go func() {
		cmd.Wait()
		exit <- cmd.ProcessState.ExitCode()
	}()
	e.sched, e.schedExit = cmd, exit
}

func (e *e2e) current() (*exec.Cmd, chan int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sched, e.schedExit
}

// certFingerprint waits for the self-signed certificate beside the
// database and returns its pin, as a worker's operator would read it.
func (e *e2e) certFingerprint() string {
	var fp string
	waitFor(context.Background(), 60*time.Second, func() bool {
		b, err := os.ReadFile(e.db + ".pull-cert.pem")
		if err != nil {
			return false
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return false
		}
		fp = fmt.Sprintf("sha256:%x", sha256.Sum256(blk.Bytes))
		return true
	})
	if fp == "" {
		e.t.Fatalf("no certificate beside %s; pkgsched:\n%s", e.db, e.schedOut)
	}
	return fp
}

// worker is one `pkgrun worker` process in a worker namespace.
type worker struct {
	e     *e2e
	name  string
	ns    *wNS
	token string
	log   *testenv.Buffer
	tree  string // the tree revision it reports ("": the scan's)
	extra []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan int // the exit status of the current process
}

func (e *e2e) newWorker(name string, ns *wNS, token string, extra ...string) *worker {
	return &worker{e: e, name: name, ns: ns, token: token, log: &testenv.Buffer{}, extra: extra}
}

func (w *worker) start() {
	e := w.e
	tree := w.tree
	if tree == "" {
		tree = e.tree
	}
	args := append([]string{"netns", "exec", w.ns.ns, e.bin("pkgrun"), "worker",
		"--server", fmt.Sprintf("https://%s:%d", w.ns.serverAddr, e.port), "--token-file", w.token,
		"--fingerprint", e.fp, "--name", w.name, "--tree-revision", tree,
		"--pkgsrc", e.x.Tree, "--make", e.mk, "--work-root", filepath.Join(e.x.Dir, "work-"+w.name), "--poll-wait", "5s"}, w.extra...)
	cmd := exec.Command("ip", args...)
	fmt.Fprintf(w.log, "=== start %s\n", time.Now().Format("15:04:05.000"))
	cmd.Stdout, cmd.Stderr = w.log, w.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	exit := make(chan int, 1)
	go func() {
		cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		fmt.Fprintf(w.log, "=== exit %d at %s\n", code, time.Now().Format("15:04:05.000"))
		exit <- code
	}()
	w.mu.Lock()
	w.cmd, w.exit = cmd, exit
	w.mu.Unlock()
}

func (w *worker) process() (*exec.Cmd, chan int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cmd, w.exit
}

// busy reports whether the worker builds now: its namespace holds more
// processes than the worker itself (the build's sandbox).
func (w *worker) busy() bool { return len(nsPids(w.ns.ns)) > 1 }

var leaseLine = regexp.MustCompile(`lease (\S+) \(attempt (\d+)\): (\S+) \(`)

// current is the lease the worker's log names last.
func (w *worker) current() (id, pkg string) {
	m := leaseLine.FindAllStringSubmatch(w.log.String(), -1)
	if len(m) == 0 {
		return "", ""
	}
	return m[len(m)-1][1], m[len(m)-1][3]
}

// building reports whether the worker's build runs now: a process of
// its namespace other than the worker itself that is not stopped
// (SIGSTOP) or dead.
func (w *worker) building() bool {
	cmd, _ := w.process()
	self := 0
	if cmd != nil && cmd.Process != nil {
		self = cmd.Process.Pid
	}
	for _, p := range nsPids(w.ns.ns) {
		if p == self {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) STATE ...: comm may hold spaces, the state follows
		// the last ')'.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		if f := strings.Fields(rest); len(f) > 0 && f[0] != "T" && f[0] != "t" && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// overlaps watches, every 100ms, which package each worker is building,
// and keeps the longest time one package was built by two workers at
// once (a fenced worker's build lives until its next heartbeat).
type overlaps struct {
	mu    sync.Mutex
	seen  int // samples in which some worker was building
	since map[string]time.Time
	worst time.Duration
	what  string
}

func (o *overlaps) watch(ws []*worker, done <-chan struct{}) {
	o.since = map[string]time.Time{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		by := map[string][]string{}
		for _, w := range ws {
			if w.building() {
				_, pkg := w.current()
				by[pkg] = append(by[pkg], w.name)
			}
		}
		now := time.Now()
		o.mu.Lock()
		if len(by) > 0 {
			o.seen++
		}
		for pkg := range o.since {
			if len(by[pkg]) < 2 {
				delete(o.since, pkg)
			}
		}
		for pkg, names := range by {
			if len(names) < 2 {
				continue
			}
			if o.since[pkg].IsZero() {
				o.since[pkg] = now
			}
			if d := now.Sub(o.since[pkg]); d >= o.worst {
				o.worst, o.what = d, fmt.Sprintf("%s on %s", pkg, strings.Join(names, " and "))
			}
		}
		o.mu.Unlock()
	}
}

// TestPullNetnsExampleTree builds the example tree with pkgsched's pull
// executor in a server namespace and three `pkgrun worker`s in worker
// namespaces behind NAT-like rules, over real TLS with a pinned
// certificate, while faults hit them: a worker is killed with SIGKILL
// mid-build (and restarted), a worker's link is cut past its lease, a
// worker is frozen past its lease (SIGSTOP, then SIGCONT: it drops its
// late work), a worker gets SIGTERM mid-build (it releases its lease), the
// scheduler is killed with SIGKILL and restarted while workers build, and
// a worker's token is revoked mid-job. A probe client of the test's own
// takes a lease, is refused another job's object, and after its lease
// expired is refused its late upload and result. The run must end with
// the statuses and packages of a local build, no package may start again
// before its last run ended, no package may be built by two workers at
// once for longer than a fenced worker takes to hear of it (a heartbeat),
// and no build may be left on a worker.
func TestPullNetnsExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example tree twice")
	}
	needNetns(t)
	e := &e2e{t: t, mk: testenv.Program(t, "bmake"), ttl: 6 * time.Second, tree: "example-tree-1", schedOut: &testenv.Buffer{}}
	e.x = executortest.NewExampleTree(t, "local.db", "pull.db")
	e.db, e.store = e.x.DB("pull.db"), filepath.Join(e.x.Dir, "store-pull")
	e.port = 20000 + os.Getpid()%20000

	// The reference: a local build.
	storeL := filepath.Join(e.x.Dir, "store-local")
	start := time.Now()
	lcmd := exec.Command(e.bin("pkgsched"), "run", "--db", e.x.DB("local.db"), "-j", "2", "--store", "file://"+storeL,
		"--work-root", filepath.Join(e.x.Dir, "work-local"), "--pkgrun", e.bin("pkgrun"), "--pkgsrc", e.x.Tree,
		"--make", e.mk, "--max-time", "5m", "--json")
	outL, _ := lcmd.CombinedOutput()
	codeL := lcmd.ProcessState.ExitCode()
	t.Logf("local run: exit %d in %v", codeL, time.Since(start).Round(time.Second))

	// The network.
	e.n = newTopo(t)
	var nss []*wNS
	for i := 1; i <= 3; i++ {
		w := e.n.worker(i)
		checkNAT(t, e.n, w)
		nss = append(nss, w)
	}

	var workers []*worker
	for i, ns := range nss {
		name := fmt.Sprintf("w%d", i+1)
		workers = append(workers, e.newWorker(name, ns, e.token(name)))
	}
	probeTok := e.token("probe")
	skewTok := e.token("skewed")

	e.startSched()
	t.Cleanup(func() {
		if cmd := e.sched; cmd != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	e.fp = e.certFingerprint()

	// The probe: a client of the test's own, through the real client.
	probeDone := make(chan []string, 1)
	go func() { probeDone <- e.probe(probeTok) }()

	// A worker whose tree is not the scan's gets no job and a clear
	// message.
	skew := e.newWorker("skewed", nss[0], skewTok)
	skew.tree = "some-other-revision"
	skew.start()
	_, skewExit := skew.process()
	select {
	case code := <-skewExit:
		if code != 2 || !strings.Contains(skew.log.String(), "skew") {
			t.Errorf("the skewed worker: exit %d, log:\n%s", code, skew.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the skewed worker is still running; log:\n%s", skew.log)
	}

	start = time.Now()
	for _, w := range workers {
		w.start()
	}
	faults := &faultLog{}
	done := make(chan struct{})
	ov := &overlaps{}
	ovDone := make(chan struct{})
	go func() { defer close(ovDone); ov.watch(workers, done) }()
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); e.faults(workers, done, faults) }()

	// The run: pkgsched may be restarted by the faults; wait for the
	// last one to exit.
	var codeP int
	for {
		cmd, exit := e.current()
		code := <-exit
		if !faults.schedKilled(cmd) {
			codeP = code
			break
		}
		// Killed by the fault: wait for its successor.
		waitFor(context.Background(), 30*time.Second, func() bool {
			next, _ := e.current()
			return next != cmd
		})
	}
	close(done)
	<-faultsDone
	<-ovDone
	t.Logf("pull run: exit %d in %v; faults: %s", codeP, time.Since(start).Round(time.Second), strings.Join(faults.list(), "; "))

	// The workers leave on SIGTERM, with exit status 0.
	for _, w := range workers {
		cmd, exit := w.process()
		select {
		case code := <-exit:
			exit <- code
			continue
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case code := <-exit:
			exit <- code
			if code != 0 {
				t.Errorf("worker %s: exit %d after SIGTERM, want 0", w.name, code)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("worker %s did not exit on SIGTERM", w.name)
			cmd.Process.Kill()
		}
	}
	if codeP != codeL {
		t.Errorf("pull run: exit %d, local %d\nlocal:\n%s\npull:\n%s", codeP, codeL, outL, e.schedOut)
	}
	sl, sp := executortest.States(t, e.x.DB("local.db")), executortest.States(t, e.db)
	for p, s := range sl {
		if sp[p] != s {
			t.Errorf("%s: %s by pull workers, %s locally", p, sp[p], s)
		}
	}
	if pl, pp := executortest.Packages(storeL), executortest.Packages(e.store); strings.Join(pl, " ") != strings.Join(pp, " ") {
		t.Errorf("packages differ:\nlocal: %v\npull:  %v", pl, pp)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.store, pull.StagingPrefix)); len(ents) > 0 {
		t.Errorf("%d staged objects left in the store", len(ents))
	}
	// A package is built by two workers at once only while a fenced
	// worker has not heard of it yet: at most until its next heartbeat.
	if ov.seen == 0 {
		t.Error("the overlap watch never saw a worker build")
	}
	if ov.worst > 0 {
		t.Logf("longest time a package was built twice at once: %v (%s); heartbeat every %v", ov.worst.Round(100*time.Millisecond), ov.what, e.ttl/3)
	}
	if ov.worst > e.ttl/3+2*time.Second {
		t.Errorf("%s was built by two workers at once for %v (heartbeat every %v)", ov.what, ov.worst, e.ttl/3)
	}
	ev := e.checkEvents(faults)
	t.Logf("events: %v", ev)
	if probe := <-probeDone; len(probe) > 0 {
		for _, p := range probe {
			t.Error("probe: " + p)
		}
	}
	e.checkFaults(workers, faults)
	// Nothing is left in the workers' work roots: no lease's staging
	// store, no job directory (the SIGKILLed worker's were removed by its
	// successor).
	for _, w := range workers {
		root := filepath.Join(e.x.Dir, "work-"+w.name)
		ents, _ := os.ReadDir(root)
		for _, en := range ents {
			if en.Name() == ".pkgrun-worker.lock" {
				continue
			}
			if en.Name() == "leases" {
				if ls, _ := os.ReadDir(filepath.Join(root, "leases")); len(ls) > 0 {
					t.Errorf("worker %s: %d lease directories left", w.name, len(ls))
				}
				continue
			}
			t.Errorf("worker %s: %s left in its work root", w.name, en.Name())
		}
	}
	faults.mu.Lock()
	killed := faults.kill9.pkg != ""
	faults.mu.Unlock()
	if log := workers[0].log.String(); killed && !strings.Contains(log, "left by a worker that was killed") {
		t.Errorf("the worker started after a SIGKILL did not clean up after it; log:\n%s", log)
	}
	time.Sleep(500 * time.Millisecond)
	for _, ns := range nss {
		if n := len(nsPids(ns.ns)); n > 0 {
			t.Errorf("%s: %d processes left after the run", ns.ns, n)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("pkgsched:\n%s", e.schedOut)
		for _, w := range workers {
			t.Logf("worker %s:\n%s", w.name, w.log)
		}
	}
}

// faultLog records what the faults did.
type faultLog struct {
	mu      sync.Mutex
	items   []string
	killed  map[*exec.Cmd]bool
	kill9   hit // the SIGKILLed worker's job
	frozen  hit // the SIGSTOPped worker's lease
	cut     hit // the cut-off worker's lease
	term    hit // the SIGTERMed worker's job
	revoked string
	orphans bool // the SIGKILLed worker's build outlived it
}

// hit is the job a fault hit.
type hit struct {
	at         time.Time
	lease, pkg string
}

func (f *faultLog) add(format string, args ...any) {
	f.mu.Lock()
	f.items = append(f.items, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *faultLog) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.items...)
}

func (f *faultLog) schedKilled(cmd *exec.Cmd) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.killed[cmd]
}

func (f *faultLog) revokedName() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revoked
}

// faults hits the workers and the scheduler one after the other, each
// while its target builds.
func (e *e2e) faults(ws []*worker, done <-chan struct{}, f *faultLog) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-done; cancel() }()
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	busy := func(w *worker) bool { return waitFor(ctx, 20*time.Second, w.busy) && ctx.Err() == nil }
	w1, w2, w3 := ws[0], ws[1], ws[2]
	var wg sync.WaitGroup
	par := func(fs ...func()) {
		for _, fn := range fs {
			wg.Add(1)
			go func() { defer wg.Done(); fn() }()
		}
		wg.Wait()
	}

	// First, at once, each while its worker builds:
	par(func() {
		// 1. SIGKILL a worker mid-build; start it again once its job
		// was requeued (a new registration would end the old session
		// at once).
		if !busy(w1) {
			return
		}
		cmd, exit := w1.process()
		_, pkg := w1.current()
		cmd.Process.Signal(syscall.SIGKILL)
		f.mu.Lock()
		f.kill9 = hit{at: time.Now(), pkg: pkg}
		f.mu.Unlock()
		f.add("SIGKILL w1 building %s", pkg)
		<-exit
		// The build dies with its worker (the sandbox's parent-death
		// signal): nothing is left in the namespace.
		if !waitFor(ctx, 5*time.Second, func() bool { return len(nsPids(w1.ns.ns)) == 0 }) {
			f.add("BUG: %d processes of the SIGKILLed worker's build still run", len(nsPids(w1.ns.ns)))
			f.mu.Lock()
			f.orphans = true
			f.mu.Unlock()
		}
		sleep(e.ttl + 2*time.Second)
		w1.start()
	}, func() {
		// 2. Cut a worker's link past its lease, then restore it.
		if !busy(w2) {
			return
		}
		id, pkg := w2.current()
		f.mu.Lock()
		f.cut = hit{at: time.Now(), lease: id, pkg: pkg}
		f.mu.Unlock()
		f.add("link of w2 down building %s", pkg)
		exec.Command("ip", "-n", e.n.server, "link", "set", w2.ns.serverIf, "down").Run()
		sleep(e.ttl + 2*time.Second)
		exec.Command("ip", "-n", e.n.server, "link", "set", w2.ns.serverIf, "up").Run()
	}, func() {
		// 3. Freeze a worker past its lease, then let it go on: it
		// drops its late work.
		if !busy(w3) {
			return
		}
		id, pkg := w3.current()
		f.mu.Lock()
		f.frozen = hit{at: time.Now(), lease: id, pkg: pkg}
		f.mu.Unlock()
		f.add("SIGSTOP w3 building %s", pkg)
		signalNS(w3.ns.ns, syscall.SIGSTOP)
		sleep(e.ttl + 2*time.Second)
		signalNS(w3.ns.ns, syscall.SIGCONT)
	})
	if ctx.Err() != nil {
		return
	}
	par(func() {
		// 4. SIGTERM a worker mid-build: it releases its lease at once.
		if !busy(w2) {
			return
		}
		cmd, exit := w2.process()
		_, pkg := w2.current()
		f.mu.Lock()
		f.term = hit{at: time.Now(), pkg: pkg}
		f.mu.Unlock()
		cmd.Process.Signal(syscall.SIGTERM)
		code := <-exit
		f.add("SIGTERM w2 building %s: exit %d", pkg, code)
		w2.start()
	}, func() {
		// 5. Revoke a worker's token mid-job.
		if !busy(w1) {
			return
		}
		_, pkg := w1.current()
		if _, err := e.pkgsched("token", "revoke", "--db", e.db, "w1"); err != nil {
			f.add("token revoke failed: %v", err)
			return
		}
		f.mu.Lock()
		f.revoked = "w1"
		f.mu.Unlock()
		f.add("token of w1 revoked while it built %s", pkg)
	})

	// 6. SIGKILL the scheduler while workers build (after the running
	// one saw the revocation); start it again.
	if !sleep(2 * time.Second) {
		return
	}
	if !waitFor(ctx, 20*time.Second, func() bool { return w2.busy() || w3.busy() }) || ctx.Err() != nil {
		return
	}
	sched, _ := e.current()
	f.mu.Lock()
	if f.killed == nil {
		f.killed = map[*exec.Cmd]bool{}
	}
	f.killed[sched] = true
	f.mu.Unlock()
	// ip netns exec execs pkgsched: the process is pkgsched itself.
	sched.Process.Signal(syscall.SIGKILL)
	f.add("SIGKILL pkgsched")
	// (The test's main goroutine reaps it.)
	time.Sleep(time.Second)
	e.startSched()
}

// probe is a worker of the test's own through the real client: it takes
// a lease, tries objects outside it, lets it expire and then tries its
// late upload and result. It returns what went wrong.
func (e *e2e) probe(tokFile string) []string {
	var bad []string
	ctx := context.Background()
	cl, err := pull.NewClient(pull.ClientConfig{URL: fmt.Sprintf("https://%s:%d", e.n.probe, e.port), Fingerprint: e.fp})
	if err != nil {
		return []string{err.Error()}
	}
	// A wrong pin is refused by the TLS handshake.
	wrong, _ := pull.NewClient(pull.ClientConfig{URL: fmt.Sprintf("https://%s:%d", e.n.probe, e.port), Fingerprint: strings.Repeat("ab", 32)})
	tok, err := pullworker.ReadToken(tokFile)
	if err != nil {
		return []string{err.Error()}
	}
	reg := pull.RegisterRequest{Token: tok, Host: "probe", Platform: pullworker.LocalPlatform(), TreeRevision: e.tree, Cores: 1}
	if _, err := wrong.Register(ctx, reg); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		bad = append(bad, fmt.Sprintf("a client pinning another certificate registered: %v", err))
	}
	var resp *pull.RegisterResponse
	waitFor(ctx, 30*time.Second, func() bool {
		resp, err = cl.Register(ctx, reg)
		return err == nil
	})
	if err != nil {
		return append(bad, fmt.Sprintf("register: %v", err))
	}
	var l *pull.Lease
	waitFor(ctx, 60*time.Second, func() bool {
		l, err = cl.Poll(ctx, pull.LeaseRequest{TreeRevision: e.tree, Wait: pull.Duration(5 * time.Second)})
		return l != nil
	})
	if l == nil {
		return append(bad, fmt.Sprintf("the probe got no lease: %v", err))
	}
	ref := l.Ref()
	data := []byte("not a package")
	up := func(name string) error {
		return cl.Upload(ctx, ref, name, bytes.NewReader(data), int64(len(data)), "")
	}
	// Another job's objects, finished artifacts, names that climb out.
	other := "All/zzother-1.0.tgz"
	if l.PkgName == "zzother-1.0" {
		other = "All/yyother-1.0.tgz"
	}
	for _, name := range []string{other, "index/zzother-1.0.pkginfo", "bulklog/zzother-1.0/build.log",
		"All/pkg_summary.gz", l.Objects.LogDir + "../zzother-1.0/build.log", l.Objects.LogDir + "sub/x.log", "staging/x"} {
		if err := up(name); err == nil {
			bad = append(bad, fmt.Sprintf("upload of %s with the lease of %s was accepted", name, l.PkgName))
		} else if !pull.IsForbidden(err) && !strings.Contains(err.Error(), " 400 ") && !strings.Contains(err.Error(), " 404 ") {
			bad = append(bad, fmt.Sprintf("upload of %s: %v, want 403 (or 400)", name, err))
		}
	}
	// Its own log is accepted while the lease lives.
	if err := up(l.Objects.LogDir + "probe.log"); err != nil {
		bad = append(bad, fmt.Sprintf("upload of its own log: %v", err))
	}
	// Frozen past its lease: no heartbeat for TTL and more.
	time.Sleep(resp.LeaseTTL.D() + 3*time.Second)
	if err := up(l.Objects.Package); !pull.IsFenced(err) {
		bad = append(bad, fmt.Sprintf("late upload of %s: %v, want 409 fenced", l.Objects.Package, err))
	}
	res := &job.Result{PkgName: l.PkgName, PkgPath: l.PkgPath, Status: job.StatusFailed, FailedPhase: "build", Message: "late"}
	var b strings.Builder
	res.Encode(&b)
	if _, err := cl.Report(ctx, ref, pull.ResultReport{Exit: pull.Exit{Code: 1}, Stdout: b.String()}); !pull.IsFenced(err) {
		bad = append(bad, fmt.Sprintf("late result of %s: %v, want 409 fenced", l.PkgName, err))
	}
	if _, err := cl.Heartbeat(ctx, ref, pull.HeartbeatRequest{}); !pull.IsFenced(err) {
		bad = append(bad, fmt.Sprintf("late heartbeat of %s: %v, want 409 fenced", l.PkgName, err))
	}
	cl.Bye(ctx)
	return bad
}

// checkEvents checks the job events: no package starts again before its
// last run ended; and measures how long the SIGKILLed worker's job took
// to be requeued (about the lease TTL) and the SIGTERMed one's (at once).
func (e *e2e) checkEvents(f *faultLog) map[string]int {
	t := e.t
	d, err := db.OpenReadOnly(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT e.at, COALESCE(e.pkg_id, 0), COALESCE(p.pkgname, ''), e.event, e.detail FROM events e LEFT JOIN packages p ON p.id = e.pkg_id ORDER BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	running := map[int64]bool{}
	events := map[string]int{}
	type ev struct {
		at   time.Time
		pkg  string
		name string
	}
	var all []ev
	for rows.Next() {
		var at, id int64
		var pkg, name, detail string
		if err := rows.Scan(&at, &id, &pkg, &name, &detail); err != nil {
			t.Fatal(err)
		}
		events[name]++
		all = append(all, ev{time.UnixMilli(at), pkg, name})
		switch name {
		case "start":
			if running[id] {
				t.Errorf("%s started again before its last run ended", pkg)
			}
			running[id] = true
		case "init", "cleanup":
		default:
			running[id] = false
		}
	}
	requeued := func(pkg string, after time.Time) (time.Time, bool) {
		for _, x := range all {
			if x.pkg == pkg && x.name == "requeue" && !x.at.Before(after) {
				return x.at, true
			}
		}
		return time.Time{}, false
	}
	f.mu.Lock()
	k, term := f.kill9, f.term
	f.mu.Unlock()
	if k.pkg != "" {
		if at, ok := requeued(k.pkg, k.at); ok {
			took := at.Sub(k.at)
			t.Logf("requeue after SIGKILL of its worker: %s in %v (lease TTL %v)", k.pkg, took.Round(10*time.Millisecond), e.ttl)
			fmt.Printf("pull: a killed worker's job was requeued %.2fs after the kill (lease TTL %v)\n", took.Seconds(), e.ttl)
			if took > e.ttl+5*time.Second {
				t.Errorf("the SIGKILLed worker's job %s was requeued only after %v (TTL %v)", k.pkg, took, e.ttl)
			}
		} else {
			t.Errorf("the SIGKILLed worker's job %s was never requeued", k.pkg)
		}
	}
	if term.pkg != "" {
		if at, ok := requeued(term.pkg, term.at); ok {
			took := at.Sub(term.at)
			t.Logf("requeue after SIGTERM of its worker (lease released): %s in %v", term.pkg, took.Round(10*time.Millisecond))
			fmt.Printf("pull: a SIGTERMed worker's job was requeued %.2fs after the signal (released; TTL %v)\n", took.Seconds(), e.ttl)
			if took > e.ttl/2 {
				t.Errorf("the SIGTERMed worker's job %s was requeued only after %v: it was not released", term.pkg, took)
			}
		} else {
			t.Errorf("the SIGTERMed worker's job %s was never requeued", term.pkg)
		}
	}
	return events
}

// checkFaults checks what the workers did about the faults.
func (e *e2e) checkFaults(ws []*worker, f *faultLog) {
	t := e.t
	f.mu.Lock()
	frozen, cut, revoked := f.frozen, f.cut, f.revoked
	f.mu.Unlock()
	if f.orphans {
		t.Errorf("the SIGKILLed worker's build outlived it")
	}
	if len(f.list()) < 6 {
		t.Errorf("only %d of 6 faults happened before the run ended: %v", len(f.list()), f.list())
	}
	// The frozen worker's late work was dropped, never handed in: on
	// waking it knows its lease is past its TTL (or the server answers
	// 409); the probe shows the server refusing such late work.
	if frozen.lease != "" {
		log := ws[2].log.String()
		id := regexp.QuoteMeta(frozen.lease)
		if !regexp.MustCompile(`lease `+id+`: \S+: dropped \((no heartbeat reached the server|.*409)`).MatchString(log) ||
			regexp.MustCompile(`lease `+id+`: \S+ reported`).MatchString(log) {
			t.Errorf("the frozen worker's lease %s (%s) was not dropped after it woke up; its log:\n%s", frozen.lease, frozen.pkg, log)
		}
	}
	// The cut-off worker gave up its lease (the server had requeued it).
	if cut.lease != "" {
		if !strings.Contains(ws[1].log.String(), "lease "+cut.lease+": ") || !regexp.MustCompile(`lease `+regexp.QuoteMeta(cut.lease)+`: \S+: dropped`).MatchString(ws[1].log.String()) {
			t.Errorf("the cut-off worker's lease %s (%s) was not dropped; its log:\n%s", cut.lease, cut.pkg, ws[1].log)
		}
	}
	if revoked != "" {
		log := ws[0].log.String()
		if !strings.Contains(log, "=== exit 2") || !strings.Contains(log, "revoked") {
			t.Errorf("the worker whose token was revoked did not stop with exit 2; its log:\n%s", log)
		}
	}
	// No token in any log.
	for _, w := range ws {
		if tokenRE.MatchString(w.log.String()) {
			t.Errorf("worker %s logged a token", w.name)
		}
	}
	if tokenRE.MatchString(e.schedOut.String()) {
		t.Errorf("pkgsched logged a token")
	}
}
