package distfile

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
)

type buf struct{ bytes.Buffer }

func (b *buf) Close() error { return nil }

func TestCacheGetPut(t *testing.T) {
	ctx := context.Background()
	st := memstore.New("t")
	data := []byte("distfile contents\n")
	e := entryFor("sub/a-1.0.tar.gz", data)
	c := &Cache{Store: st}
	var w buf
	open := func() (io.WriteCloser, error) { return &w, nil }
	discarded := false
	discard := func() { discarded = true; w.Reset() }
	if r, err := c.Get(ctx, e, open, discard); err != nil || r != Miss {
		t.Fatalf("empty store: %v %v", r, err)
	}
	// A file that does not match is never stored.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("distfile contentz\n"), 0o644)
	f, _ := os.Open(bad)
	if err := c.Put(ctx, e, f); err == nil {
		t.Fatal("put a mismatching file")
	}
	f.Close()
	if _, err := st.Stat(ctx, ObjectName(e.Name)); err == nil {
		t.Fatal("mismatching file is in the store")
	}
	good := filepath.Join(t.TempDir(), "good")
	os.WriteFile(good, data, 0o644)
	f, _ = os.Open(good)
	if err := c.Put(ctx, e, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if r, err := c.Get(ctx, e, open, discard); err != nil || r != Hit || w.String() != string(data) {
		t.Fatalf("hit: %v %v %q", r, err, w.String())
	}
	// Corrupt in the store, same size: detected, deleted, not used.
	w.Reset()
	st.Put(ctx, ObjectName(e.Name), strings.NewReader("distfile CONTENTS\n"), -1)
	if r, err := c.Get(ctx, e, open, discard); err != nil || r != Corrupt || !discarded {
		t.Fatalf("corrupt: %v %v discarded=%v", r, err, discarded)
	}
	if _, err := st.Stat(ctx, ObjectName(e.Name)); err == nil {
		t.Fatal("corrupt object not deleted")
	}
	// Wrong size: deleted without reading.
	st.Put(ctx, ObjectName(e.Name), strings.NewReader("short"), -1)
	if r, err := c.Get(ctx, e, open, discard); err != nil || r != Corrupt {
		t.Fatalf("wrong size: %v %v", r, err)
	}
	if _, err := st.Stat(ctx, ObjectName(e.Name)); err == nil {
		t.Fatal("wrong-size object not deleted")
	}
}

// TestLeaseOnce: builders missing one distfile at once fetch it once; the
// others get it from the store.
func TestLeaseOnce(t *testing.T) {
	ctx := context.Background()
	st := memstore.New("t")
	data := []byte("shared\n")
	e := entryFor("shared-1.0.tar.gz", data)
	var fetches atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Cache{Store: st, Owner: "b", Settle: 50 * time.Millisecond, Poll: 20 * time.Millisecond}
			l, err := c.Acquire(ctx, e)
			if err != nil {
				t.Error(err)
				return
			}
			if l == nil {
				return // in the store
			}
			fetches.Add(1)
			time.Sleep(100 * time.Millisecond)
			st.Put(ctx, ObjectName(e.Name), bytes.NewReader(data), int64(len(data)))
			if err := l.Release(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if _, err := st.Stat(ctx, LockPrefix+e.Name); err == nil {
		t.Error("lease left behind")
	}
}

// TestLeaseStale: a lease nobody renews is taken over after TTL; a failed
// fetch's released lease lets the next builder try.
func TestLeaseStale(t *testing.T) {
	ctx := context.Background()
	st := memstore.New("t")
	e := entryFor("x.tar.gz", []byte("x"))
	st.Put(ctx, LockPrefix+e.Name, strings.NewReader(`{"owner":"dead"}`), -1)
	c := &Cache{Store: st, TTL: 200 * time.Millisecond, Settle: 10 * time.Millisecond, Poll: 20 * time.Millisecond}
	start := time.Now()
	l, err := c.Acquire(ctx, e)
	if err != nil || l == nil {
		t.Fatalf("%v %v", l, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("took over a live lease after %v", d)
	}
	l.Release(ctx)
	l2, err := c.Acquire(ctx, e)
	if err != nil || l2 == nil {
		t.Fatalf("after release: %v %v", l2, err)
	}
	// Held and renewed: a waiter keeps waiting past TTL.
	c2 := &Cache{Store: st, TTL: 200 * time.Millisecond, Settle: 10 * time.Millisecond, Poll: 20 * time.Millisecond}
	cctx, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	if l3, err := c2.Acquire(cctx, e); err == nil {
		t.Fatalf("took a renewed lease: %v", l3)
	}
	l2.Release(ctx)
}
