package elastic

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/process"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var pkgrunBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// pkgrun builds cmd/pkgrun from this checkout once.
func pkgrun(t *testing.T) string {
	t.Helper()
	pkgrunBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "elastic-pkgrun-")
		if err != nil {
			pkgrunBin.err = err
			return
		}
		pkgrunBin.path = filepath.Join(dir, "pkgrun")
		cmd := exec.Command("go", "build", "-o", pkgrunBin.path, "./cmd/pkgrun")
		cmd.Dir = testenv.RepoRoot(t)
		pkgrunBin.out, pkgrunBin.err = cmd.CombinedOutput()
	})
	if pkgrunBin.err != nil {
		t.Fatalf("go build pkgrun: %v\n%s", pkgrunBin.err, pkgrunBin.out)
	}
	return pkgrunBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkgrunBin.path != "" {
		os.RemoveAll(filepath.Dir(pkgrunBin.path))
	}
	os.Exit(code)
}

// env is a pull server on a fresh database and a process provider whose
// workers are real `pkgrun worker` processes.
type env struct {
	t      *testing.T
	dbPath string
	px     *pullexec.Executor
	prov   *process.Provider
	dir    string
	log    *testenv.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bin := pkgrun(t)
	dir := t.TempDir()
	e := &env{t: t, dir: dir, dbPath: filepath.Join(dir, "bulk.db"), log: &testenv.Buffer{}}
	d, err := db.Create(context.Background(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	e.px, err = pullexec.Open(context.Background(), "pull://127.0.0.1:0?poll=2s", job.Settings{Store: "file://" + store}, e.dbPath, e.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.px.Close() })
	tree := filepath.Join(testenv.RepoRoot(t), "examples", "tree")
	e.prov, err = process.New(process.Config{Dir: filepath.Join(dir, "builders"), Pkgrun: bin, Args: []string{"--pkgsrc", tree}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) newExec(pol autoscale.Policy, run string) *Executor {
	return e.newExecOn(e.prov, pol, run)
}

func (e *env) newExecOn(prov provider.Provider, pol autoscale.Policy, run string) *Executor {
	return e.newExecWith(e.px, prov, pol, run)
}

func (e *env) newExecWith(px *pullexec.Executor, prov provider.Provider, pol autoscale.Policy, run string) *Executor {
	e.t.Helper()
	x, err := New(context.Background(), Config{Pull: px, Provider: prov, Policy: pol, Run: run,
		Tick: 100 * time.Millisecond, ListEvery: 300 * time.Millisecond, JoinTimeout: time.Minute, Log: e.log})
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool, show func() string) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s\n%s", what, d, show())
}

// builders lists the machines of run and their worker processes' pids.
func (e *env) builders(run string) ([]provider.Instance, []int) {
	list, err := e.prov.List(context.Background(), map[string]string{provider.TagRun: run})
	if err != nil {
		e.t.Fatal(err)
	}
	var pids []int
	for _, in := range list {
		b, _ := os.ReadFile(filepath.Join(e.dir, "builders", in.ID+".json"))
		if i := strings.Index(string(b), `"pid":`); i >= 0 {
			s := string(b[i+6:])
			s = s[:strings.IndexAny(s, ",}")]
			if p, err := strconv.Atoi(s); err == nil {
				pids = append(pids, p)
			}
		}
	}
	return list, pids
}

func (e *env) show() string {
	var b strings.Builder
	b.WriteString("executor log:\n" + e.log.String())
	logs, _ := filepath.Glob(filepath.Join(e.dir, "builders", "*", "worker.log"))
	for _, l := range logs {
		c, _ := os.ReadFile(l)
		b.WriteString("== " + l + "\n" + string(c))
	}
	return b.String()
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// TestScaleUpAndDown: a demand of two ready jobs starts two real workers
// that register with the pull server; their tokens are in no process's
// arguments and in 0600 files; the boot time estimate moves from the
// configured 30s toward the joins measured (well under a second or two);
// once there is no demand they are retired and their processes stopped
// after the idle timeout; Close leaves nothing running.
func TestScaleUpAndDown(t *testing.T) {
	e := newEnv(t)
	run := e.dbPath
	const boot = 30 * time.Second
	x := e.newExec(autoscale.Policy{Max: 3, Boot: boot, Idle: time.Second}, run)
	defer x.Close()
	if x.Capacity() != 0 {
		t.Fatalf("capacity %d before any demand", x.Capacity())
	}
	if s := x.Driver().Stats(); s.Boot != boot || s.Joins != 0 {
		t.Fatalf("boot estimate %v after %d joins before any start; want the configured %v", s.Boot, s.Joins, boot)
	}
	asked := time.Now()
	x.Demand(executor.Demand{Ready: 2})
	waitFor(t, "two workers registered", 60*time.Second, func() bool { return len(e.px.Workers()) == 2 }, e.show)
	// The joins took at most this; the driver notices them within a tick.
	joined := time.Since(asked)
	waitFor(t, "two joins measured", 10*time.Second, func() bool { return x.Driver().Stats().Joins == 2 }, e.show)
	// Two joins of at most `joined` each, weighing 0.3 then 0.3 of the rest.
	if s := x.Driver().Stats(); s.Boot < boot*49/100 || s.Boot > boot*49/100+joined*51/100 {
		t.Errorf("boot estimate %v after joins of at most %v; want between %v and %v", s.Boot, joined, boot*49/100, boot*49/100+joined*51/100)
	}
	if n := strings.Count(e.log.String(), "boot estimate now"); n != 2 {
		t.Errorf("%d lines on joins in the log; want 2:\n%s", n, e.log)
	}
	list, pids := e.builders(run)
	if len(list) != 2 || len(pids) != 2 {
		t.Fatalf("provider lists %v (pids %v), want 2", list, pids)
	}
	for _, in := range list {
		if in.Tags[provider.TagRun] != run || in.Tags[provider.TagSpot] != "false" || in.Tags[provider.TagWorker] != in.Name {
			t.Errorf("machine %s tags %v", in.ID, in.Tags)
		}
	}
	for _, w := range e.px.Workers() {
		if w.Labels["capacity"] != "on-demand" {
			t.Errorf("worker %s labels %v: want capacity=on-demand from its token", w.Name, w.Labels)
		}
	}
	// The tokens: in files of mode 0600 only.
	toks, _ := filepath.Glob(filepath.Join(e.dir, "builders", "*", "token"))
	if len(toks) != 2 {
		t.Fatalf("token files %v", toks)
	}
	for _, f := range toks {
		fi, _ := os.Stat(f)
		tok, _ := os.ReadFile(f)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", f, fi.Mode().Perm())
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if c, _ := os.ReadFile(p); len(tok) > 10 && strings.Contains(string(c), strings.TrimSpace(string(tok))) {
				t.Errorf("a token is in the arguments of %s", p)
			}
		}
		if strings.Contains(e.log.String(), strings.TrimSpace(string(tok))) {
			t.Error("a token is in the executor's log")
		}
	}
	if s := x.Driver().Stats(); s.Live != 2 || s.Started != 2 {
		t.Errorf("stats %+v\n%s", s, e.show())
	}
	x.Demand(executor.Demand{})
	waitFor(t, "workers retired and stopped", 30*time.Second, func() bool {
		l, _ := e.builders(run)
		return len(l) == 0 && len(e.px.Workers()) == 0 && x.Driver().Stats().Live == 0
	}, e.show)
	for _, p := range pids {
		if alive(p) {
			t.Errorf("worker pid %d still runs", p)
		}
	}
	if s := x.Driver().Stats(); s.Live != 0 || s.Billed <= 0 {
		t.Errorf("stats %+v\n%s", s, e.show())
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReapOrphans: the machines a master left running (it died without
// Close) are found by their run tag and stopped when the next executor of
// the same run starts; machines of another run are left alone.
func TestReapOrphans(t *testing.T) {
	e := newEnv(t)
	run := e.dbPath
	// The crashed master: its own pull server, and a driver that
	// started machines and died before it could stop them (its
	// provider's Stop never happens, its server is gone, as after kill
	// -9). The workers live on in their own sessions, retrying.
	store := filepath.Join(e.dir, "store")
	oldPx, err := pullexec.Open(context.Background(), "pull://127.0.0.1:0?poll=2s", job.Settings{Store: "file://" + store}, e.dbPath, e.log)
	if err != nil {
		t.Fatal(err)
	}
	old := e.newExecWith(oldPx, crashed{e.prov}, autoscale.Policy{Max: 2, Boot: time.Second}, run)
	old.Demand(executor.Demand{Ready: 2})
	waitFor(t, "two workers registered", 60*time.Second, func() bool { return len(oldPx.Workers()) == 2 }, e.show)
	oldPx.Close()
	old.cancel()
	<-old.done
	time.Sleep(time.Second) // the workers notice the server is gone
	_, oldPids := e.builders(run)
	// A machine of another run.
	other := e.newExec(autoscale.Policy{Max: 1, Min: 1, Boot: time.Second}, run+"-other")
	defer other.Close()
	waitFor(t, "the other run's machine", 60*time.Second, func() bool { l, _ := e.builders(run + "-other"); return len(l) == 1 }, e.show)
	if len(oldPids) != 2 {
		t.Fatalf("machines of the crashed master: pids %v (stopped at its exit?)", oldPids)
	}
	for _, p := range oldPids {
		if !alive(p) {
			t.Fatalf("pid %d of the crashed master died by itself", p)
		}
	}
	x := e.newExec(autoscale.Policy{Max: 2, Boot: time.Second}, run)
	defer x.Close()
	if l, _ := e.builders(run); len(l) != 0 {
		t.Errorf("after the restart the provider still lists %v", l)
	}
	for _, p := range oldPids {
		if alive(p) {
			t.Errorf("orphan pid %d still runs", p)
		}
	}
	if !strings.Contains(e.log.String(), "stopped 2 machines an earlier master of this run left") {
		t.Errorf("no word of the orphans:\n%s", e.log)
	}
	if l, _ := e.builders(run + "-other"); len(l) != 1 {
		t.Errorf("the other run's machine: %v", l)
	}
}

// crashed is a provider whose master dies before it stops anything.
type crashed struct{ provider.Provider }

func (crashed) Stop(context.Context, []string) error { return nil }

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec   string
		pol    autoscale.Policy
		labels map[string]string
		pull   string
		url    string
		rest   string // keys left for the provider
		err    string
	}{
		{spec: "max=4&min=1&boot=30s&idle=2m&budget=10h&spot=true&preempt=3&worth=4&label=big=1&label=os=linux&listen=0.0.0.0:8443&url=https://m:8443&ttl=1m&arg=--cores=2",
			pol:    autoscale.Policy{Max: 4, Min: 1, Boot: 30 * time.Second, Idle: 2 * time.Minute, Budget: 10 * time.Hour, Spot: true, PreemptLimit: 3, Worth: 4},
			labels: map[string]string{"big": "1", "os": "linux"}, pull: "pull://0.0.0.0:8443?ttl=1m", url: "https://m:8443", rest: "arg"},
		{spec: "", pol: autoscale.Policy{Max: 1, Boot: time.Minute}, labels: map[string]string{}, pull: "pull://127.0.0.1:0"},
		{spec: "max=2&spot=true&spot-fallback=wait&spot-retry=90s", pol: autoscale.Policy{Max: 2, Boot: time.Minute, Spot: true, SpotWait: true, SpotRetry: 90 * time.Second},
			labels: map[string]string{}, pull: "pull://127.0.0.1:0"},
		{spec: "spot=true&spot-fallback=on-demand", pol: autoscale.Policy{Max: 1, Boot: time.Minute, Spot: true},
			labels: map[string]string{}, pull: "pull://127.0.0.1:0"},
		{spec: "spot-fallback=never", err: "spot-fallback="},
		{spec: "spot-retry=-1s", err: "spot-retry="},
		{spec: "max=0", err: "max"},
		{spec: "max=2&min=3", err: "min"},
		{spec: "max=x", err: "max="},
		{spec: "boot=soon", err: "boot="},
		{spec: "spot=maybe", err: "spot="},
		{spec: "label=novalue", err: "label="},
		{spec: "worth=-1", err: "worth="},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.spec)
			pol, labels, err := parsePolicy("elastic:process?"+tt.spec, q)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pol != tt.pol || !maps.Equal(labels, tt.labels) {
				t.Errorf("policy %+v labels %v, want %+v %v", pol, labels, tt.pol, tt.labels)
			}
			ps, u := pullSpec(q)
			if ps != tt.pull || u != tt.url {
				t.Errorf("pull spec %q url %q, want %q %q", ps, u, tt.pull, tt.url)
			}
			var rest []string
			for k := range q {
				rest = append(rest, k)
			}
			if strings.Join(rest, ",") != tt.rest {
				t.Errorf("left for the provider: %v, want %q", rest, tt.rest)
			}
		})
	}
}

func TestOpenRefusesBadSpecs(t *testing.T) {
	dir := t.TempDir()
	for _, spec := range []string{"elastic:nosuchkind?max=2", "elastic:process?max=2&bogus=1", "elastic:process?max=0", "process?max=2"} {
		if e, err := Open(context.Background(), spec, job.Settings{Store: "file://" + dir}, filepath.Join(dir, "bulk.db"), "/bin/true", nil); err == nil {
			e.Close()
			t.Errorf("%s: opened", spec)
		}
	}
}

func TestWorkerOf(t *testing.T) {
	for in, want := range map[string]string{"pull:el-1": "el-1", "pull:el-1/2": "el-1", "el-3": "el-3"} {
		if got := workerOf(in); got != want {
			t.Errorf("workerOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBudget: once the builder time is spent, the machine without a job
// is stopped and Acquire returns ErrBudget, which ends the run with the
// rest of its packages open.
func TestBudget(t *testing.T) {
	e := newEnv(t)
	x := e.newExec(autoscale.Policy{Max: 2, Boot: time.Second, Idle: time.Hour, Budget: 3 * time.Second}, e.dbPath)
	defer x.Close()
	x.Demand(executor.Demand{Ready: 5})
	waitFor(t, "a worker registered", 60*time.Second, func() bool { return len(e.px.Workers()) > 0 }, e.show)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Slots come and go; once the budget is spent Acquire refuses.
	var err error
	for ctx.Err() == nil {
		var s executor.Slot
		s, err = x.Acquire(ctx)
		if err != nil {
			break
		}
		s.Release()
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("Acquire: %v, want ErrBudget", err)
	}
	waitFor(t, "the machines stopped", 30*time.Second, func() bool {
		l, _ := e.builders(e.dbPath)
		return len(l) == 0 && x.Driver().Stats().Live == 0
	}, e.show)
	if s := x.Driver().Stats(); s.Billed > 3*time.Second+5*time.Second {
		t.Errorf("billed %v on a budget of 3s", s.Billed)
	}
	if !strings.Contains(e.log.String(), "budget of 3s builder time spent") {
		t.Errorf("no word of the budget in the log:\n%s", e.log)
	}
}

// TestLostOnSpot counts, from a database's events, the jobs of open
// packages lost with spot machines: not those lost with on-demand ones,
// not other crashes, not packages already built.
func TestLostOnSpot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	if err := schedtest.WriteDB(context.Background(), path, []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0"}, {Name: "c-1.0"}}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO build_state (pkg_id, state) VALUES (1, 'open'), (2, 'done'), (3, 'in_processing')`,
		`INSERT INTO events (at, pkg_id, event, detail) VALUES
			(1, 1, 'crash', 'crash 1 of 3 in this run: pull:el-0a1b2c-spot1: worker lost: lease x (attempt 1) of a-1.0: expired'),
			(2, 1, 'requeue', 'crash 1 of 3 in this run: pull:el-0a1b2c-spot1: worker lost: lease x'),
			(3, 1, 'crash', 'crash 1 of 3 in this run: pull:el-99ffee-spot7/2: worker lost: lease y (attempt 2) of a-1.0: released'),
			(4, 1, 'crash', 'crash 2 of 3 in this run: pull:el-99ffee-od8: worker lost: lease z (attempt 3) of a-1.0: expired'),
			(5, 1, 'crash', 'crash 3 of 3 in this run: pull:el-99ffee-spot9: builder crashed: exit status 2'),
			(6, 2, 'crash', 'crash 1 of 3 in this run: pull:el-99ffee-spot9: worker lost: lease w (attempt 1) of b-1.0: expired'),
			(7, 3, 'crash', 'crash 1 of 3 in this run: pull:el-99ffee-spot9: worker lost: lease v (attempt 1) of c-1.0: expired'),
			(8, 3, 'lost', 'lost 2 of 10 in this run: pull:el-99ffee-spot10: worker lost: lease u (attempt 2) of c-1.0: expired')`,
	} {
		if _, err := d.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	got, err := LostOnSpot(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"a-1.0": 2, "c-1.0": 2}; !maps.Equal(got, want) {
		t.Errorf("LostOnSpot = %v, want %v", got, want)
	}
}
