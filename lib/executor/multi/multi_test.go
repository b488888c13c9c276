package multi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest/schedcheck"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/executor/multi"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

func TestMain(m *testing.M) { executortest.Main(m) }

// TestSuite runs the conformance suite on local executors joined: one
// slot in the first, the rest in the second.
func TestSuite(t *testing.T) {
	newExec := func(t *testing.T, s job.Settings, slots int) executor.Executor {
		var members []executor.Executor
		for k, n := range []int{1, slots - 1} {
			if n == 0 {
				continue
			}
			e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: n, Settings: s, Tag: t.Name(), Name: fmt.Sprintf("local%d", k)})
			if err != nil {
				t.Fatal(err)
			}
			members = append(members, e)
		}
		m, err := multi.New(members...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	executortest.Run(t, newExec)
	t.Run("CrashRequeuedOnce", func(t *testing.T) { schedcheck.Requeue(t, newExec) })
}

// recorder is an executor that records the demand signal.
type recorder struct {
	executor.Executor
	mu  sync.Mutex
	got []executor.Demand
}

func (r *recorder) Demand(d executor.Demand) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
}

// TestDemand runs the scheduler over a multi executor and checks that the
// demand signal reaches its members: work waiting at first (with the
// critical path), nothing at the end.
func TestDemand(t *testing.T) {
	dir := t.TempDir()
	l, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: 2, Settings: executortest.Settings(dir, 0), Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Executor: l}
	m, err := multi.New(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := filepath.Join(t.TempDir(), "bulk.db")
	pkgs := []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0", Deps: []string{"a-1.0"}}, {Name: "c-1.0", Deps: []string{"b-1.0"}}, {Name: "d-1.0"}}
	if err := schedtest.WriteDB(context.Background(), path, pkgs); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: m}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) < 2 {
		t.Fatalf("demand signals: %v", rec.got)
	}
	first, last := rec.got[0], rec.got[len(rec.got)-1]
	if first.Ready != 2 || first.CriticalPath <= 0 {
		t.Errorf("first demand %+v, want 2 ready and a critical path", first)
	}
	if last.Ready != 0 {
		t.Errorf("last demand %+v, want nothing ready", last)
	}
}

// loser is an executor whose first n jobs are lost (their worker goes
// away) before they run.
type loser struct {
	executor.Executor
	mu sync.Mutex
	n  int
}

func (l *loser) Acquire(ctx context.Context) (executor.Slot, error) {
	s, err := l.Executor.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &losingSlot{Slot: s, l: l}, nil
}

type losingSlot struct {
	executor.Slot
	l *loser
}

func (s *losingSlot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	s.l.mu.Lock()
	lose := s.l.n > 0
	s.l.n--
	s.l.mu.Unlock()
	if lose {
		s.Release()
		return nil, &executor.CrashError{Worker: s.Name(), Reason: "connection lost", Lost: true}
	}
	return s.Slot.Run(ctx, j)
}

// TestLostHostDoesNotStopRun: many jobs lost at once (a host with many
// slots going down) are queued again and built elsewhere; they are not a
// streak of crashes that stops the run.
func TestLostHostDoesNotStopRun(t *testing.T) {
	dir := t.TempDir()
	l, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: 4, Settings: executortest.Settings(dir, 0), Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := multi.New(&loser{Executor: l, n: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := filepath.Join(t.TempDir(), "bulk.db")
	var pkgs []schedtest.Pkg
	for i := 0; i < 12; i++ {
		pkgs = append(pkgs, schedtest.Pkg{Name: fmt.Sprintf("p%02d-1.0", i)})
	}
	if err := schedtest.WriteDB(context.Background(), path, pkgs); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: m, CrashStreak: 10, MaxCrashes: 5})
	if err != nil {
		t.Fatalf("run stopped: %v", err)
	}
	if sum.Counts[sched.Done] != len(pkgs) || sum.Lost != 12 || sum.Crashes != 0 {
		t.Fatalf("summary %+v, want %d done after 12 lost jobs", sum, len(pkgs))
	}
}

// noWay is a member whose slots refuse one pkgpath (executor.Accepter).
type noWay struct {
	executor.Executor
	path string
}

type noWaySlot struct {
	executor.Slot
	path string
}

func (s noWaySlot) Accepts(pkgpath, _ string) bool { return pkgpath != s.path }

func (e noWay) Acquire(ctx context.Context) (executor.Slot, error) {
	s, err := e.Executor.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return noWaySlot{s, e.path}, nil
}

// TestSlotInterfacesPassThrough: the multi executor hands out its
// members' slots themselves, so the scheduler still sees a member's
// executor.CoreSlot (the local executor's cores) and executor.Accepter.
func TestSlotInterfacesPassThrough(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, slots, cores int) *local.Executor {
		l, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: slots, Cores: cores, Name: name,
			Settings: executortest.Settings(dir, 0), Tag: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	m, err := multi.New(mk("cores", 1, 3), noWay{mk("picky", 1, 1), "x/no"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	var got []executor.Slot
	for range 2 {
		s, err := m.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	sawCores, sawAccepter := false, false
	for _, s := range got {
		if cs, ok := s.(executor.CoreSlot); ok && cs.Cores() == 3 {
			sawCores = true
			if cs.FreeCores() != 2 || cs.Grow(5) != 2 || cs.FreeCores() != 0 {
				t.Errorf("%s: core accounting through multi is off", s.Name())
			}
		}
		if a, ok := s.(executor.Accepter); ok {
			sawAccepter = true
			if a.Accepts("x/no", "no-1.0") || !a.Accepts("x/yes", "yes-1.0") {
				t.Errorf("%s: no-way list lost through multi", s.Name())
			}
		}
		s.Release()
	}
	if !sawCores || !sawAccepter {
		t.Errorf("through multi: CoreSlot seen %v, Accepter seen %v; want both", sawCores, sawAccepter)
	}
}
