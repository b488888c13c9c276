package executor

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestCorePoolTotals(t *testing.T) {
	for _, tc := range []struct {
		cores     int
		over      float64
		wantCores int
		wantTotal int
	}{
		{8, 1, 8, 8},
		{8, 1.5, 8, 12},
		{4, 0.5, 4, 4}, // below 1 counts as 1
		{0, 1, 1, 1},   // at least one core
		{3, 1.4, 3, 4}, // floor(4.2)
	} {
		p := NewCorePool(tc.cores, tc.over)
		if p.Cores() != tc.wantCores || p.Total() != tc.wantTotal || p.Free() != tc.wantTotal {
			t.Errorf("NewCorePool(%d, %v): cores %d total %d free %d, want %d %d %d",
				tc.cores, tc.over, p.Cores(), p.Total(), p.Free(), tc.wantCores, tc.wantTotal, tc.wantTotal)
		}
	}
}

func TestCorePoolTakeNeverExceeds(t *testing.T) {
	p := NewCorePool(4, 1)
	if got := p.TryTake(3); got != 3 {
		t.Fatalf("TryTake(3) = %d, want 3", got)
	}
	if got := p.TryTake(3); got != 1 {
		t.Fatalf("TryTake(3) with 1 free = %d, want 1", got)
	}
	if got := p.TryTake(1); got != 0 {
		t.Fatalf("TryTake on a full pool = %d, want 0", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Take(ctx, 1); err == nil {
		t.Fatal("Take on a full pool returned without cores")
	}
	done := make(chan error)
	go func() { done <- p.Take(context.Background(), 2) }()
	p.Put(1)
	select {
	case err := <-done:
		t.Fatalf("Take(2) returned %v with only one core free", err)
	case <-time.After(20 * time.Millisecond):
	}
	p.Put(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Free() != 0 {
		t.Fatalf("Free = %d, want 0", p.Free())
	}
}

func TestCorePoolConcurrent(t *testing.T) {
	p := NewCorePool(6, 1)
	var mu sync.Mutex
	inUse, most := 0, 0
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := p.Take(context.Background(), 1); err != nil {
					t.Error(err)
					return
				}
				n := 1 + p.TryTake(g%4)
				mu.Lock()
				inUse += n
				most = max(most, inUse)
				mu.Unlock()
				mu.Lock()
				inUse -= n
				mu.Unlock()
				p.Put(n)
			}
		}()
	}
	wg.Wait()
	if most > 6 {
		t.Fatalf("%d cores in use at once, pool has 6", most)
	}
	if p.Free() != 6 {
		t.Fatalf("Free = %d after every core came back, want 6", p.Free())
	}
}
