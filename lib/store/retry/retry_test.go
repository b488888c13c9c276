package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
	"github.com/pkgbulk/pkgbulk/lib/store/retry"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

var fast = retry.Options{Attempts: 4, Initial: time.Millisecond, Max: 4 * time.Millisecond}

// The decorator must itself keep the contract.
func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return retry.New(memstore.New(t.Name()), fast)
	})
}

// flaky is a real memstore whose calls fail with failErr while failures
// remain; a failing Put first consumes consume bytes of the reader, and a
// failing List first reports listFirst objects.
type flaky struct {
	store.Store
	mu        sync.Mutex
	failures  int
	failErr   error
	consume   int
	listFirst int
	calls     int
}

func (f *flaky) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return f.failErr
	}
	return nil
}

func (f *flaky) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := f.fail(); err != nil {
		io.CopyN(io.Discard, r, int64(f.consume))
		return err
	}
	return f.Store.Put(ctx, name, r, size)
}

func (f *flaky) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, name)
}

func (f *flaky) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := f.fail(); err != nil {
		return store.Info{}, err
	}
	return f.Store.Stat(ctx, name)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := f.fail(); err != nil {
		n := 0
		lerr := f.Store.List(ctx, prefix, func(fi store.Info) error {
			if n >= f.listFirst {
				return err
			}
			n++
			return fn(fi)
		})
		if lerr == nil {
			return err
		}
		return lerr
	}
	return f.Store.List(ctx, prefix, fn)
}

var errTransient = errors.New("connection reset by peer")

func TestTransientRetried(t *testing.T) {
	ctx := context.Background()
	f := &flaky{Store: memstore.New("t"), failures: 2, failErr: errTransient, consume: 3}
	s := retry.New(f, fast)
	// A seekable reader is rewound, so the stored object is whole.
	if err := s.Put(ctx, "All/a-1.tgz", strings.NewReader("abcdef"), 6); err != nil {
		t.Fatalf("Put after 2 transient failures: %v", err)
	}
	if f.calls != 3 {
		t.Errorf("Put: %d calls, want 3", f.calls)
	}
	rc, err := f.Store.Get(ctx, "All/a-1.tgz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	if string(b) != "abcdef" {
		t.Errorf("stored %q after retries, want abcdef", b)
	}
	f.failures, f.calls = 2, 0
	if _, err := s.Stat(ctx, "All/a-1.tgz"); err != nil || f.calls != 3 {
		t.Errorf("Stat: err %v after %d calls", err, f.calls)
	}
	f.failures, f.calls = 2, 0
	if rc, err := s.Get(ctx, "All/a-1.tgz"); err != nil || f.calls != 3 {
		t.Errorf("Get: err %v after %d calls", err, f.calls)
	} else {
		rc.Close()
	}
}

func TestGivesUp(t *testing.T) {
	f := &flaky{Store: memstore.New("t"), failures: 100, failErr: errTransient}
	var notified int
	opts := fast
	opts.Notify = func(op, name string, err error, d time.Duration) { notified++ }
	_, err := retry.New(f, opts).Stat(context.Background(), "x")
	if !errors.Is(err, errTransient) || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Errorf("error = %v", err)
	}
	if f.calls != 4 || notified != 3 {
		t.Errorf("%d calls, %d notifications; want 4 and 3", f.calls, notified)
	}
}

func TestPermanentNotRetried(t *testing.T) {
	for _, perm := range []error{
		store.Permanent(errors.New("auth failed")),
		fmt.Errorf("x: %w", store.ErrNotExist),
		fmt.Errorf("x: %w", store.ErrInvalidName),
		context.DeadlineExceeded,
	} {
		f := &flaky{Store: memstore.New("t"), failures: 100, failErr: perm}
		_, err := retry.New(f, fast).Stat(context.Background(), "x")
		if !errors.Is(err, perm) || f.calls != 1 {
			t.Errorf("%v: error %v after %d calls, want 1 call", perm, err, f.calls)
		}
	}
}

func TestUnseekableReader(t *testing.T) {
	ctx := context.Background()
	// Partly consumed: cannot be replayed, so no retry.
	f := &flaky{Store: memstore.New("t"), failures: 1, failErr: errTransient, consume: 2}
	err := retry.New(f, fast).Put(ctx, "a", io.MultiReader(strings.NewReader("abc")), 3)
	if !errors.Is(err, errTransient) || f.calls != 1 {
		t.Errorf("partly consumed stream: error %v after %d calls, want 1 call", err, f.calls)
	}
	// Untouched: retried.
	f = &flaky{Store: memstore.New("t"), failures: 1, failErr: errTransient}
	if err := retry.New(f, fast).Put(ctx, "a", io.MultiReader(strings.NewReader("abc")), 3); err != nil || f.calls != 2 {
		t.Errorf("untouched stream: error %v after %d calls, want 2 calls", err, f.calls)
	}
}

func TestListOnce(t *testing.T) {
	ctx := context.Background()
	m := memstore.New("t")
	for i := range 5 {
		m.Put(ctx, fmt.Sprintf("All/p%d.tgz", i), bytes.NewReader(nil), 0)
	}
	f := &flaky{Store: m, failures: 2, failErr: errTransient, listFirst: 2}
	seen := map[string]int{}
	err := retry.New(f, fast).List(ctx, "All/", func(fi store.Info) error { seen[fi.Name]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 5 {
		t.Errorf("saw %d objects, want 5", len(seen))
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("%s reported %d times", n, c)
		}
	}
	// fn's own error is returned as is and not retried.
	stop := errors.New("stop")
	f.calls = 0
	err = retry.New(f, fast).List(ctx, "All/", func(store.Info) error { return stop })
	if err != stop || f.calls != 1 {
		t.Errorf("fn error: got %v after %d calls", err, f.calls)
	}
}

func TestCancelledCtx(t *testing.T) {
	f := &flaky{Store: memstore.New("t"), failures: 100, failErr: errTransient}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := retry.New(f, fast).Stat(ctx, "x"); !errors.Is(err, context.Canceled) || f.calls != 0 {
		t.Errorf("cancelled ctx: error %v after %d calls, want no call", err, f.calls)
	}
	// Cancelled during the backoff: returns promptly.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	slow := retry.Options{Attempts: 10, Initial: time.Hour}
	start := time.Now()
	_, err := retry.New(f, slow).Stat(ctx, "x")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("cancel during backoff: %v after %v", err, time.Since(start))
	}
}
