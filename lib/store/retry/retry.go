// Package retry is a store.Store decorator that retries transient
// failures (a dropped connection, a 503) with bounded exponential backoff,
// so the backends themselves stay simple.
//
// It never retries a permanent error (store.IsPermanent: missing object,
// invalid name, failed authentication, missing bucket, rejected host key),
// never starts or continues on a cancelled ctx, and gives up after
// Options.Attempts tries, returning the last error.
//
// Put is retried only when the reader can be replayed: an io.Seeker is
// rewound to where it started; any other reader is retried only if the
// failed attempt consumed none of it. List is retried with the names
// already reported filtered out, so fn still sees each object once.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Options bound the retrying; zero fields take the defaults.
type Options struct {
	Attempts int           // total tries per call (default 4)
	Initial  time.Duration // first delay (default 200ms), doubled each time
	Max      time.Duration // cap on one delay (default 5s)
	// Notify, if set, is told about every failure that will be retried.
	Notify func(op, name string, err error, delay time.Duration)
}

func (o Options) withDefaults() Options {
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Initial <= 0 {
		o.Initial = 200 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = 5 * time.Second
	}
	return o
}

// Store wraps another store.Store with retries.
type Store struct {
	s    store.Store
	opts Options
}

var _ store.Store = (*Store)(nil)

// New wraps s.
func New(s store.Store, opts Options) *Store {
	return &Store{s: s, opts: opts.withDefaults()}
}

// Unwrap returns the decorated store.
func (r *Store) Unwrap() store.Store { return r.s }

// String is the decorated store's.
func (r *Store) String() string { return r.s.String() }

// Close closes the decorated store.
func (r *Store) Close() error { return r.s.Close() }

// errNoReplay marks a Put failure after the reader was partly consumed.
var errNoReplay = errors.New("cannot retry: the reader was partly consumed and cannot be rewound")

// do runs f until it succeeds, fails permanently, ctx ends or the
// attempts run out.
func (r *Store) do(ctx context.Context, op, name string, f func() error) error {
	delay := r.opts.Initial
	var err error
	for attempt := 1; ; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return fmt.Errorf("%w (after: %v)", cerr, err)
			}
			return cerr
		}
		err = f()
		if err == nil || !retriable(ctx, err) || attempt >= r.opts.Attempts {
			if err != nil && attempt > 1 && retriable(ctx, err) {
				return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		if r.opts.Notify != nil {
			r.opts.Notify(op, name, err, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %v)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, r.opts.Max)
	}
}

func retriable(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil,
		store.IsPermanent(err),
		errors.Is(err, errNoReplay),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}

// countingReader counts what it hands out.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Put retries when r can be replayed (see the package comment).
func (r *Store) Put(ctx context.Context, name string, rd io.Reader, size int64) error {
	seeker, _ := rd.(io.Seeker)
	var start int64
	if seeker != nil {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	first := true
	return r.do(ctx, "put", name, func() error {
		if !first && seeker != nil {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return fmt.Errorf("put %s: rewind for retry: %v: %w", name, err, errNoReplay)
			}
		}
		first = false
		cr := &countingReader{r: rd}
		err := r.s.Put(ctx, name, cr, size)
		if err != nil && seeker == nil && cr.n > 0 {
			return fmt.Errorf("%w (%w)", err, errNoReplay)
		}
		return err
	})
}

// Get retries opening the object; reading it is the caller's business.
func (r *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", name, func() error {
		var err error
		rc, err = r.s.Get(ctx, name)
		return err
	})
	return rc, err
}

// Stat retries.
func (r *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	var fi store.Info
	err := r.do(ctx, "stat", name, func() error {
		var err error
		fi, err = r.s.Stat(ctx, name)
		return err
	})
	return fi, err
}

// fnError carries an error from the caller's fn through the retry loop
// untouched and unretried.
type fnError struct{ err error }

func (f fnError) Error() string { return f.err.Error() }

// List retries, skipping names already passed to fn.
func (r *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	seen := make(map[string]bool)
	err := r.do(ctx, "list", prefix, func() error {
		return r.s.List(ctx, prefix, func(fi store.Info) error {
			if seen[fi.Name] {
				return nil
			}
			seen[fi.Name] = true
			if err := fn(fi); err != nil {
				return store.Permanent(fnError{err})
			}
			return nil
		})
	})
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

// Delete retries.
func (r *Store) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func() error { return r.s.Delete(ctx, name) })
}
