package sched_test

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// fakeBuilder is one machine of fakeExec: slots that share its cores
// (when pool is set, the slots are executor.CoreSlots) and a no-way list
// (when refuse is set, the slots are executor.Accepters).
type fakeBuilder struct {
	name   string
	slots  int
	pool   *executor.CorePool
	refuse func(pkgpath string) bool

	mu    sync.Mutex
	inUse int // MAKE_JOBS (at least 1) of the jobs running here, counted by the fake itself
	peak  int
}

type fakeRun struct {
	builder, pkg     string
	makeJobs, record int // Job.MakeJobs, and the record's MAKE_JOBS= line (0: none)
	held             int // cores the slot had reserved when Run started
}

// fakeExec is an in-memory executor: jobs sleep dur and are done, except
// those whose pkgpath loses says to lose (executor.ErrLost) while it says
// so. It checks the scheduler: no refused job runs, the MAKE_JOBS of the
// jobs on a builder never add up to more than its cores, and a job's
// MAKE_JOBS is what its slot reserved and what its record says.
type fakeExec struct {
	free     chan slotID
	builders []*fakeBuilder
	acquires atomic.Int64
	dur      time.Duration
	lose     func(pkgpath string, attempt int) bool

	mu   sync.Mutex
	runs []fakeRun
	errs []string
}

type slotID struct {
	b *fakeBuilder
	n int
}

func newFakeExec(dur time.Duration, builders ...*fakeBuilder) *fakeExec {
	n := 0
	for _, b := range builders {
		n += b.slots
	}
	e := &fakeExec{free: make(chan slotID, n), builders: builders, dur: dur}
	for _, b := range builders {
		for k := range b.slots {
			e.free <- slotID{b, k}
		}
	}
	return e
}

func (e *fakeExec) Capacity() int {
	n := 0
	for _, b := range e.builders {
		n += b.slots
	}
	return n
}

func (e *fakeExec) Close() error { return nil }

func (e *fakeExec) Acquire(ctx context.Context) (executor.Slot, error) {
	e.acquires.Add(1)
	select {
	case id := <-e.free:
		s := &fakeSlot{e: e, id: id}
		if id.b.pool != nil {
			if err := id.b.pool.Take(ctx, 1); err != nil {
				e.free <- id
				return nil, err
			}
			s.held = 1
		}
		switch {
		case id.b.pool != nil && id.b.refuse != nil:
			return acceptCoreSlot{s}, nil
		case id.b.pool != nil:
			return coreSlot{s}, nil
		case id.b.refuse != nil:
			return acceptSlot{s}, nil
		}
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *fakeExec) fail(format string, args ...any) {
	e.mu.Lock()
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

type fakeSlot struct {
	e    *fakeExec
	id   slotID
	once sync.Once
	mu   sync.Mutex
	held int
}

func (s *fakeSlot) Name() string { return fmt.Sprintf("%s/%d", s.id.b.name, s.id.n) }

func (s *fakeSlot) Release() {
	s.once.Do(func() {
		s.mu.Lock()
		if s.id.b.pool != nil {
			s.id.b.pool.Put(s.held)
		}
		s.held = 0
		s.mu.Unlock()
		s.e.free <- s.id
	})
}

func (s *fakeSlot) accepts(pkgpath string) bool { return !s.id.b.refuse(pkgpath) }
func (s *fakeSlot) cores() int                  { return s.id.b.pool.Cores() }
func (s *fakeSlot) freeCores() int              { return s.id.b.pool.Free() }
func (s *fakeSlot) grow(n int) int {
	got := s.id.b.pool.TryTake(n)
	s.mu.Lock()
	s.held += got
	s.mu.Unlock()
	return got
}

func (s *fakeSlot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	defer s.Release()
	b := s.id.b
	if b.refuse != nil && b.refuse(j.PkgPath) {
		s.e.fail("%s ran %s, which it refuses", s.Name(), j.PkgName)
	}
	rec := recordMakeJobs(j.Record)
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if j.MakeJobs != rec {
		s.e.fail("%s: Job.MakeJobs %d, record says %d", j.PkgName, j.MakeJobs, rec)
	}
	if b.pool != nil && j.MakeJobs > 0 && j.MakeJobs != held {
		s.e.fail("%s: MAKE_JOBS %d but %d cores reserved", j.PkgName, j.MakeJobs, held)
	}
	n := max(j.MakeJobs, 1)
	b.mu.Lock()
	b.inUse += n
	b.peak = max(b.peak, b.inUse)
	if b.pool != nil && b.inUse > b.pool.Total() {
		s.e.fail("%s: %d cores granted at once, has %d", b.name, b.inUse, b.pool.Total())
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inUse -= n
		b.mu.Unlock()
	}()
	s.e.mu.Lock()
	s.e.runs = append(s.e.runs, fakeRun{builder: b.name, pkg: j.PkgName, makeJobs: j.MakeJobs, record: rec, held: held})
	s.e.mu.Unlock()
	select {
	case <-time.After(s.e.dur):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.e.lose != nil && s.e.lose(j.PkgPath, j.Attempt) {
		return nil, &executor.CrashError{Worker: s.Name(), Reason: "connection lost", Lost: true}
	}
	return &executor.Outcome{Result: &job.Result{Version: job.ResultVersion, PkgName: j.PkgName, PkgPath: j.PkgPath,
		Status: job.StatusDone, MakeJobs: j.MakeJobs, WallMS: s.e.dur.Milliseconds()}}, nil
}

type acceptSlot struct{ *fakeSlot }

func (s acceptSlot) Accepts(pkgpath, _ string) bool { return s.accepts(pkgpath) }

type coreSlot struct{ *fakeSlot }

func (s coreSlot) Cores() int     { return s.cores() }
func (s coreSlot) FreeCores() int { return s.freeCores() }
func (s coreSlot) Grow(n int) int { return s.grow(n) }

type acceptCoreSlot struct{ *fakeSlot }

func (s acceptCoreSlot) Accepts(pkgpath, _ string) bool { return s.accepts(pkgpath) }
func (s acceptCoreSlot) Cores() int                     { return s.cores() }
func (s acceptCoreSlot) FreeCores() int                 { return s.freeCores() }
func (s acceptCoreSlot) Grow(n int) int                 { return s.grow(n) }

// recordMakeJobs is the value of the record's last MAKE_JOBS= line (0: none).
func recordMakeJobs(rec []byte) int {
	n := 0
	for _, l := range bytes.Split(rec, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("MAKE_JOBS=")); ok {
			n, _ = strconv.Atoi(string(v))
		}
	}
	return n
}

func refusing(paths ...string) func(string) bool {
	return func(p string) bool {
		for _, x := range paths {
			if p == x {
				return true
			}
		}
		return false
	}
}

func runFake(t *testing.T, pkgs []schedtest.Pkg, e *fakeExec, opts sched.RunOptions) (*sched.Summary, error, *sql.DB) {
	t.Helper()
	d, _ := newDB(t, pkgs)
	opts.Exec = e
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := sched.Run(ctx, d, opts)
	for _, msg := range e.errs {
		t.Errorf("fake executor: %s", msg)
	}
	return sum, err, d
}

// TestAcceptingSlots: a slot never gets a job it refuses; the job goes to
// a slot that takes it; a slot that refuses every ready job waits (is not
// handed back and acquired again in a loop) until one it takes is ready;
// when no slot takes the ready jobs and nothing runs, the run stops with
// an error naming them, and they stay open.
func TestAcceptingSlots(t *testing.T) {
	chain := func(names ...string) []schedtest.Pkg {
		var out []schedtest.Pkg
		for k, n := range names {
			p := schedtest.Pkg{Name: n + "-1.0"}
			if k > 0 {
				p.Deps = []string{names[k-1] + "-1.0"}
			}
			out = append(out, p)
		}
		return out
	}
	free := []schedtest.Pkg{{Name: "f1-1.0"}, {Name: "f2-1.0"}, {Name: "f3-1.0"}, {Name: "f4-1.0"}}
	for _, c := range []struct {
		name     string
		pkgs     []schedtest.Pkg
		builders []*fakeBuilder
		on       map[string]string // package -> the builder it must run on
		refused  []string          // packages the run must stop on, open
	}{{
		name: "refused job goes to the other slot",
		pkgs: append(chain("a", "b", "c"), free...),
		builders: []*fakeBuilder{
			{name: "picky", slots: 1, refuse: refusing("test/a", "test/c", "test/f2")},
			{name: "any", slots: 1},
		},
		on: map[string]string{"a-1.0": "any", "c-1.0": "any", "f2-1.0": "any"},
	}, {
		name: "a slot that refuses all ready jobs waits for one it takes",
		pkgs: append(chain("x", "y", "z", "late"), free...),
		builders: []*fakeBuilder{
			{name: "only-late", slots: 1, refuse: func(p string) bool { return p != "test/late" }},
			{name: "not-late", slots: 2, refuse: refusing("test/late")},
		},
		on: map[string]string{"late-1.0": "only-late", "x-1.0": "not-late", "f4-1.0": "not-late"},
	}, {
		name: "accepting slots with cores",
		pkgs: append(chain("a", "b"), free...),
		builders: []*fakeBuilder{
			{name: "picky", slots: 2, pool: executor.NewCorePool(2, 1), refuse: refusing("test/b")},
			{name: "any", slots: 1, pool: executor.NewCorePool(1, 1)},
		},
		on: map[string]string{"b-1.0": "any"},
	}, {
		name: "nobody takes them",
		pkgs: append(append(chain("ok", "orphan", "after"), schedtest.Pkg{Name: "orphan2-1.0"}), free...),
		builders: []*fakeBuilder{
			{name: "h1", slots: 1, refuse: refusing("test/orphan", "test/orphan2")},
			{name: "h2", slots: 2, refuse: refusing("test/orphan", "test/orphan2", "test/f1")},
		},
		on:      map[string]string{"f1-1.0": "h1"},
		refused: []string{"orphan-1.0", "orphan2-1.0"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			e := newFakeExec(20*time.Millisecond, c.builders...)
			sum, err, d := runFake(t, c.pkgs, e, sched.RunOptions{Cores: &sched.CorePolicy{}})
			got := states(t, d)
			if c.refused != nil {
				var re *sched.RefusedError
				if !errors.As(err, &re) {
					t.Fatalf("run ended with %v, want a RefusedError", err)
				}
				for _, p := range c.refused {
					if !strings.Contains(err.Error(), p) || got[p] != "open" {
						t.Errorf("%s: state %s; error %q should name it", p, got[p], err)
					}
				}
				if got["after-1.0"] != "open" || got["ok-1.0"] != "done" {
					t.Errorf("states %v", got)
				}
			} else if err != nil || sum.Counts[sched.Done] != len(c.pkgs) {
				t.Fatalf("run: %v, %+v", err, sum)
			}
			ran := map[string]string{}
			for _, r := range e.runs {
				ran[r.pkg] = r.builder
			}
			for p, b := range c.on {
				if ran[p] != b {
					t.Errorf("%s ran on %q, want %s", p, ran[p], b)
				}
			}
			// One Acquire per job, plus one per time a slot was parked
			// (at most once per job handed out, and once each at the
			// end): a slot that is handed back and acquired again in a
			// loop would count thousands.
			if n, limit := e.acquires.Load(), int64(2*len(e.runs)+e.Capacity()+1); n > limit {
				t.Errorf("%d Acquire calls for %d jobs on %d slots (at most %d): a busy loop", n, len(e.runs), e.Capacity(), limit)
			}
			if len(e.free) != e.Capacity() {
				t.Errorf("%d of %d slots given back", len(e.free), e.Capacity())
			}
		})
	}
}

// TestCorePackingProperty runs random builds on random builders with
// cores and checks, with the fake's own count, that the MAKE_JOBS granted
// on a builder never add up to more than its cores (times the
// oversubscription), and that every grant is what the slot reserved and
// what the record says; some jobs must have been given more than one.
func TestCorePackingProperty(t *testing.T) {
	multi := 0
	for seed := uint64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var bs []*fakeBuilder
		for k := range 1 + rng.IntN(3) {
			over := []float64{1, 1, 1.5, 2}[rng.IntN(4)]
			bs = append(bs, &fakeBuilder{name: fmt.Sprintf("b%d", k), slots: 1 + rng.IntN(6), pool: executor.NewCorePool(1+rng.IntN(6), over)})
		}
		pkgs := schedtest.RandomDAG(seed, 40+rng.IntN(40))
		e := newFakeExec(time.Duration(1+rng.IntN(3))*time.Millisecond, bs...)
		sum, err, _ := runFake(t, pkgs, e, sched.RunOptions{Cores: &sched.CorePolicy{}})
		if err != nil || sum.Counts[sched.Done] != len(pkgs) {
			t.Fatalf("seed %d: %v, %+v", seed, err, sum)
		}
		for _, b := range bs {
			if b.peak > b.pool.Total() {
				t.Errorf("seed %d: %s peaked at %d cores, has %d", seed, b.name, b.peak, b.pool.Total())
			}
			if b.pool.Free() != b.pool.Total() {
				t.Errorf("seed %d: %s: %d of %d cores given back", seed, b.name, b.pool.Free(), b.pool.Total())
			}
		}
		for _, r := range e.runs {
			if r.makeJobs < 1 {
				t.Errorf("seed %d: %s got MAKE_JOBS %d with the policy on", seed, r.pkg, r.makeJobs)
			}
			if r.makeJobs > 1 {
				multi++
			}
		}
		if sum.MultiCore != countMulti(e.runs) {
			t.Errorf("seed %d: summary says %d jobs had more than one core, the executor saw %d", seed, sum.MultiCore, countMulti(e.runs))
		}
	}
	if multi == 0 {
		t.Error("no job was ever given more than one core")
	}
}

func countMulti(runs []fakeRun) int {
	n := 0
	for _, r := range runs {
		if r.makeJobs > 1 {
			n++
		}
	}
	return n
}

// TestMakeJobsGrant: the head of a long chain gets more than one core on
// a builder with free cores; a MAKE_JOBS_SAFE=no package (scan record or
// history) gets one; with the policy off nothing is granted (no
// MAKE_JOBS line, no core beyond the slot's own).
func TestMakeJobsGrant(t *testing.T) {
	for _, c := range []struct {
		name    string
		extra   string // the head's scan record lines
		history string // make_jobs_safe of a history row of the head
		cpu     int64  // its build stage's CPU ms (wall 30000 ms with 4 jobs); default 100000
		off     bool
		want    int // the head's MAKE_JOBS
	}{
		{name: "critical head", want: 2},
		{name: "MAKE_JOBS_SAFE=no in the scan", extra: "MAKE_JOBS_SAFE=no\n", want: 1},
		{name: "MAKE_JOBS_SAFE=no in the history", history: "no", want: 1},
		{name: "MAKE_JOBS_SAFE=yes in the scan", extra: "MAKE_JOBS_SAFE=yes\n", want: 2},
		{name: "history shows no speed-up", history: "yes", cpu: 30000, want: 1},
		{name: "history shows a speed-up", history: "yes", cpu: 100000, want: 4}, // parallel fraction 0.72: 4 cores at 54% efficiency
		{name: "policy off", off: true, want: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			pkgs := []schedtest.Pkg{{Name: "head-1.0", Extra: c.extra}}
			for k := 1; k <= 5; k++ {
				pkgs = append(pkgs, schedtest.Pkg{Name: fmt.Sprintf("n%d-1.0", k), Deps: []string{pkgs[k-1].Name}})
			}
			d, _ := newDB(t, pkgs)
			if c.history != "" {
				if _, err := d.Exec(`INSERT INTO history (pkgpath, pkgname, finished_at, state, wall_ms, make_jobs, make_jobs_safe, build_wall_ms, build_cpu_ms)
					VALUES ('test/head', 'head-0.9', 1, 'done', 60000, 4, ?, 30000, ?)`, c.history, cmp.Or(c.cpu, 100000)); err != nil {
					t.Fatal(err)
				}
			}
			b := &fakeBuilder{name: "b", slots: 4, pool: executor.NewCorePool(4, 1)}
			e := newFakeExec(5*time.Millisecond, b)
			opts := sched.RunOptions{Exec: e}
			if !c.off {
				opts.Cores = &sched.CorePolicy{}
			}
			sum, err := sched.Run(context.Background(), d, opts)
			if err != nil || sum.Counts[sched.Done] != len(pkgs) {
				t.Fatalf("run: %v %+v", err, sum)
			}
			for _, msg := range e.errs {
				t.Errorf("fake executor: %s", msg)
			}
			for _, r := range e.runs {
				if r.pkg == "head-1.0" && r.makeJobs != c.want {
					t.Errorf("head got MAKE_JOBS %d (record %d), want %d", r.makeJobs, r.record, c.want)
				}
				if c.off && (r.makeJobs != 0 || r.record != 0 || r.held != 1) {
					t.Errorf("policy off: %s got MAKE_JOBS %d, record %d, %d cores", r.pkg, r.makeJobs, r.record, r.held)
				}
			}
			var mj int
			var safe string
			if err := d.QueryRow(`SELECT make_jobs, make_jobs_safe FROM history WHERE pkgname = 'head-1.0'`).Scan(&mj, &safe); err != nil || mj != c.want {
				t.Errorf("history of head: make_jobs %d (%v), want %d", mj, err, c.want)
			}
		})
	}
}

// TestLostCountedApart: jobs lost with their worker do not count toward
// MaxCrashes (a package lost five times still builds), and have their own
// bound, which stops the run with the package open.
func TestLostCountedApart(t *testing.T) {
	pkgs := []schedtest.Pkg{{Name: "flaky-1.0"}, {Name: "fine-1.0"}, {Name: "doomed-1.0"}}
	e := newFakeExec(time.Millisecond, &fakeBuilder{name: "h", slots: 2})
	e.lose = func(p string, attempt int) bool {
		return (p == "test/flaky" && attempt <= 5) || p == "test/doomed"
	}
	sum, err, d := runFake(t, pkgs, e, sched.RunOptions{MaxLost: 8})
	var le *sched.LostLimitError
	if !errors.As(err, &le) || le.PkgName != "doomed-1.0" || le.Lost != 8 || !errors.Is(err, executor.ErrLost) {
		t.Fatalf("run ended with %v, want doomed-1.0 lost 8 times", err)
	}
	got := states(t, d)
	if got["flaky-1.0"] != "done" || got["fine-1.0"] != "done" || got["doomed-1.0"] != "open" {
		t.Errorf("states %v", got)
	}
	if sum.Crashes != 0 || sum.Lost != 13 {
		t.Errorf("summary: %d crashes, %d lost; want 0 and 13", sum.Crashes, sum.Lost)
	}
	if c := column(t, d, "crashes"); c["flaky-1.0"] != 0 || c["doomed-1.0"] != 0 {
		t.Errorf("build_state.crashes counts losses: %v", c)
	}
}

// growingExec is a fakeExec whose last builder joins only after a while,
// as a machine an autoscaler starts or a volunteer does (executor.Grower).
type growingExec struct {
	*fakeExec
	joined atomic.Bool
}

func (g *growingExec) MayGrow() bool { return true }

func (g *growingExec) Capacity() int {
	if g.joined.Load() {
		return g.fakeExec.Capacity()
	}
	return g.fakeExec.Capacity() - g.builders[len(g.builders)-1].slots
}

// TestRefusedWaitsForGrowth: when every slot refuses the ready jobs and
// nothing runs, an executor that may still get builders (an elastic or
// pull executor) does not end the run: the job waits for a builder that
// takes it and is built there.
func TestRefusedWaitsForGrowth(t *testing.T) {
	picky := &fakeBuilder{name: "spot", slots: 2, refuse: refusing("test/special")}
	late := &fakeBuilder{name: "on-demand", slots: 1}
	g := &growingExec{fakeExec: newFakeExec(20*time.Millisecond, picky, late)}
	// Hold the late builder's slot back until it joins.
	var held []slotID
	for range g.fakeExec.Capacity() {
		id := <-g.free
		if id.b == late {
			held = append(held, id)
		} else {
			g.free <- id
		}
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		g.joined.Store(true)
		for _, id := range held {
			g.free <- id
		}
	}()
	pkgs := []schedtest.Pkg{{Name: "special-1.0"}, {Name: "f1-1.0"}, {Name: "after-1.0", Deps: []string{"special-1.0"}}}
	d, _ := newDB(t, pkgs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := sched.Run(ctx, d, sched.RunOptions{Exec: g})
	for _, msg := range g.errs {
		t.Errorf("fake executor: %s", msg)
	}
	if err != nil || sum.Counts[sched.Done] != len(pkgs) {
		t.Fatalf("run: %v, %+v (a refusal must not end a run whose executor may grow)", err, sum)
	}
	for _, r := range g.runs {
		if r.pkg == "special-1.0" && r.builder != "on-demand" {
			t.Errorf("special-1.0 ran on %s, want on-demand", r.builder)
		}
	}
}

// closingSlot is a slot of a builder that went away while the scheduler
// held it (executor.Closer): it refuses every job, and once released it
// is gone (not handed out again).
type closingSlot struct {
	acceptSlot
	accepts, released *atomic.Int64
}

func (s closingSlot) Closed() bool { return true }
func (s closingSlot) Accepts(pkgpath, pkgname string) bool {
	s.accepts.Add(1)
	return false
}
func (s closingSlot) Release() { s.released.Add(1) }

type closingExec struct {
	*fakeExec
	accepts, released atomic.Int64
}

func (e *closingExec) Acquire(ctx context.Context) (executor.Slot, error) {
	s, err := e.fakeExec.Acquire(ctx)
	if a, ok := s.(acceptSlot); ok && err == nil {
		return closingSlot{acceptSlot: a, accepts: &e.accepts, released: &e.released}, nil
	}
	return s, err
}

// TestClosedParkedSlotReleased: a parked slot whose builder is gone
// (executor.Closer) is given back when jobs become ready again, not kept
// and offered every new job until the run ends.
func TestClosedParkedSlotReleased(t *testing.T) {
	gone := &fakeBuilder{name: "gone", slots: 1, refuse: func(string) bool { return true }}
	ok := &fakeBuilder{name: "ok", slots: 1}
	e := &closingExec{fakeExec: newFakeExec(20*time.Millisecond, gone, ok)}
	var pkgs []schedtest.Pkg
	for i := range 6 {
		p := schedtest.Pkg{Name: fmt.Sprintf("c%d-1.0", i)}
		if i > 0 {
			p.Deps = []string{fmt.Sprintf("c%d-1.0", i-1)}
		}
		pkgs = append(pkgs, p)
	}
	d, _ := newDB(t, pkgs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := sched.Run(ctx, d, sched.RunOptions{Exec: e})
	for _, msg := range e.errs {
		t.Errorf("fake executor: %s", msg)
	}
	if err != nil || sum.Counts[sched.Done] != len(pkgs) {
		t.Fatalf("run: %v, %+v", err, sum)
	}
	if n := e.accepts.Load(); n != 1 {
		t.Errorf("the gone builder's slot was asked %d times whether it takes a job, want once (then it is given back)", n)
	}
	if n := e.released.Load(); n != 1 {
		t.Errorf("the gone builder's slot was released %d times, want 1", n)
	}
}
