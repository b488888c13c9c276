package local_test

import (
	"context"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest/schedcheck"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

func TestMain(m *testing.M) { executortest.Main(m) }

func TestSuite(t *testing.T) {
	newExec := func(t *testing.T, s job.Settings, slots int) executor.Executor {
		e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: slots, Settings: s, Tag: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	executortest.Run(t, newExec)
	t.Run("CrashRequeuedOnce", func(t *testing.T) { schedcheck.Requeue(t, newExec) })
}

// TestCores: the local executor's slots share the declared cores: a slot
// holds one, Grow takes free ones, Acquire waits while none is free, and
// every core comes back with the slot.
func TestCores(t *testing.T) {
	e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: 3, Cores: 2,
		Settings: executortest.Settings(t.TempDir(), 0), Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	s1, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, ok := s1.(executor.CoreSlot)
	if !ok || cs.Cores() != 2 || cs.FreeCores() != 1 {
		t.Fatalf("slot %T: want a CoreSlot of 2 cores with 1 free", s1)
	}
	if got := cs.Grow(4); got != 1 || cs.FreeCores() != 0 {
		t.Fatalf("Grow(4) = %d, free %d; want 1, 0", got, cs.FreeCores())
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if s, err := e.Acquire(short); err == nil {
		t.Fatalf("Acquire gave %s with every core taken", s.Name())
	}
	s1.Release()
	s2, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := e.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := s3.(executor.CoreSlot).Grow(1); got != 0 {
		t.Errorf("Grow with both cores held by two slots gave %d", got)
	}
	s2.Release()
	s3.Release()
	if f := cs.FreeCores(); f != 2 {
		t.Errorf("%d of 2 cores free after every slot came back", f)
	}
	if _, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: 1, Cores: -1}); err == nil {
		t.Error("negative cores accepted")
	}
}
