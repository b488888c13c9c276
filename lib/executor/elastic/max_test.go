package elastic

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/provider"
)

// billing is a provider that counts the machines billed at once: from
// the moment Start is called for them until Stop returned for them (a
// machine whose start failed counts until Start returned).
type billing struct {
	provider.Provider
	mu         sync.Mutex
	ids        map[string]bool
	now, peak  int
	started    []provider.Instance
	spotStarts int
}

func (b *billing) Start(ctx context.Context, req provider.StartRequest) ([]provider.Instance, error) {
	b.mu.Lock()
	b.now += len(req.Workers)
	b.peak = max(b.peak, b.now)
	if req.Spot {
		b.spotStarts++
	}
	b.mu.Unlock()
	got, err := b.Provider.Start(ctx, req)
	b.mu.Lock()
	b.now -= len(req.Workers) - len(got)
	for _, in := range got {
		b.ids[in.ID] = true
		b.started = append(b.started, in)
	}
	b.mu.Unlock()
	return got, err
}

func (b *billing) Stop(ctx context.Context, ids []string) error {
	err := b.Provider.Stop(ctx, ids)
	if err == nil {
		b.mu.Lock()
		for _, id := range ids {
			if b.ids[id] {
				delete(b.ids, id)
				b.now--
			}
		}
		b.mu.Unlock()
	}
	return err
}

func (b *billing) counts() (now, peak int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.now, b.peak
}

// TestMaxWithParkedSpot: two spot builders at max=2, both idle with their
// slots held by the scheduler (parked: they refuse the ready job), and a
// job lost on spot builders (preempt=1) that only an on-demand builder
// may take. The on-demand builder must start only once an idle spot
// builder was retired (its parked slot withdrawn: it takes no job any
// more) and its machine is gone: real `pkgrun worker` processes, never
// more than 2 machines billed at once.
func TestMaxWithParkedSpot(t *testing.T) {
	e := newEnv(t)
	b := &billing{Provider: e.prov, ids: map[string]bool{}}
	x := e.newExecOn(b, autoscale.Policy{Max: 2, Spot: true, PreemptLimit: 1, Boot: time.Second, Idle: time.Hour}, e.dbPath)
	defer x.Close()
	x.Demand(executor.Demand{Ready: 2})
	waitFor(t, "two spot workers registered", 60*time.Second, func() bool { return len(e.px.Workers()) == 2 }, e.show)

	// The scheduler holds a slot of each: both refuse the job that waits.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var held []executor.Slot
	for range 2 {
		s, err := x.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire: %v\n%s", err, e.show())
		}
		held = append(held, s)
	}
	defer func() {
		for _, s := range held {
			s.Release()
		}
	}()
	if w0, w1 := workerOf(held[0].Name()), workerOf(held[1].Name()); w0 == w1 || !strings.Contains(w0, "-spot") || !strings.Contains(w1, "-spot") {
		t.Fatalf("held slots of %s and %s: want one of each spot worker", w0, w1)
	}
	x.lost("lost-1.0") // preempt=1: it now needs an on-demand builder
	for _, s := range held {
		if s.(executor.Accepter).Accepts("misc/lost", "lost-1.0") {
			t.Fatalf("spot slot %s takes the job lost on spot", s.Name())
		}
	}
	x.Demand(executor.Demand{Ready: 1})

	var od string
	waitFor(t, "an on-demand worker registered", 60*time.Second, func() bool {
		for _, w := range e.px.Workers() {
			if strings.Contains(w.Name, "-od") {
				od = w.Name
				return true
			}
		}
		return false
	}, e.show)
	if _, peak := b.counts(); peak > 2 {
		t.Fatalf("%d machines billed at once; max 2\n%s", peak, e.show())
	}
	// One spot builder made room: its machine is gone and its parked slot
	// takes nothing now; the other one still takes other jobs.
	var withdrawn, kept int
	for _, s := range held {
		if s.(executor.Accepter).Accepts("misc/other", "other-1.0") {
			kept++
		} else {
			withdrawn++
		}
	}
	if withdrawn != 1 || kept != 1 {
		t.Errorf("%d held slots withdrawn, %d kept; want 1 and 1", withdrawn, kept)
	}
	list, _ := e.builders(e.dbPath)
	if len(list) != 2 {
		t.Errorf("the provider lists %v; want the busy-less spot builder kept and the on-demand one", list)
	}
	if !strings.Contains(e.log.String(), "to make room for on-demand ones") {
		t.Errorf("no word of the room made:\n%s", e.log)
	}
	t.Logf("on-demand worker %s joined; machines billed at most %d", od, 2)
	// The slot of the retired worker does not run a job if dispatched
	// anyway (the scheduler raced the retirement): the job is lost to it
	// (requeued), not counted as a preemption.
	for i, s := range held {
		if !s.(executor.Accepter).Accepts("misc/other", "other-1.0") {
			_, err := s.Run(ctx, executor.Job{PkgName: "other-1.0", PkgPath: "misc/other"})
			if err == nil || !strings.Contains(err.Error(), "retired") {
				t.Errorf("Run on a withdrawn slot: %v", err)
			}
			held = append(held[:i], held[i+1:]...)
			break
		}
	}
	if x.needOnDemand() != 1 {
		t.Errorf("jobs needing on-demand: %d, want 1 (other-1.0 must not count)", x.needOnDemand())
	}
}
