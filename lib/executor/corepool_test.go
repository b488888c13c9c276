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

// TestCoreHold: two slots of one 4-core builder each hold the core they
// were acquired with; Grow takes only what is free, Return gives back
// exactly what the slot holds, once.
func TestCoreHold(t *testing.T) {
	pool := NewCorePool(4, 1)
	if pool.TryTake(2) != 2 {
		t.Fatal("could not take two cores")
	}
	a, b := NewCoreHold(pool, 1), NewCoreHold(pool, 1)
	steps := []struct {
		what                 string
		do                   func() int
		want, wantFree       int
		wantHeldA, wantHeldB int
	}{
		{"a grows by 3", func() int { return a.Grow(3) }, 2, 0, 3, 1},
		{"b grows by 1", func() int { return b.Grow(1) }, 0, 0, 3, 1},
		{"a returns", func() int { a.Return(); return 0 }, 0, 3, 0, 1},
		{"a returns again", func() int { a.Return(); return 0 }, 0, 3, 0, 1},
		{"b grows by 5", func() int { return b.Grow(5) }, 3, 0, 0, 4},
		{"b returns", func() int { b.Return(); return 0 }, 0, 4, 0, 0},
		{"a holds 1 again", func() int { pool.TryTake(1); a.Hold(1); return 0 }, 0, 3, 1, 0},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Errorf("%s: got %d, want %d", s.what, got, s.want)
		}
		if f := a.FreeCores(); f != s.wantFree {
			t.Errorf("%s: %d free, want %d", s.what, f, s.wantFree)
		}
		if a.Held() != s.wantHeldA || b.Held() != s.wantHeldB {
			t.Errorf("%s: held %d and %d, want %d and %d", s.what, a.Held(), b.Held(), s.wantHeldA, s.wantHeldB)
		}
	}
	if a.Cores() != 4 {
		t.Errorf("Cores %d", a.Cores())
	}
}
