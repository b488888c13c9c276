package distfile

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Store layout: a distfile is the object distfiles/<name> (name relative
// to DISTDIR, DIST_SUBDIR included); the lease of a distfile being
// fetched is locks/distfiles/<name>.
const (
	Prefix     = "distfiles/"
	LockPrefix = "locks/distfiles/"
)

// ObjectName is the store object of a distfile.
func ObjectName(name string) string { return Prefix + name }

// Cache is the distfiles/ of a store, seen by one builder.
//
// Only verified files go in (Put verifies before it uploads) and come
// out (Get verifies while it copies, and deletes an object that does not
// match distinfo: it is never used).
//
// Leases make builders that miss the same distfile at once fetch it
// once: the first takes a lease (an object under locks/distfiles/ with
// its owner and package, renewed while it fetches), the others wait for
// the distfile to appear in the store or the lease to go. The store has
// no create-if-absent, so a lease is taken by writing it, waiting Settle
// and reading it back: of builders that wrote at nearly the same moment,
// the last write wins and the others see it and wait. Two builders can
// only both win when one writes more than Settle after the other read
// "no lease", which costs one extra download, never a wrong file. A
// lease that is not renewed for TTL (its builder died) is taken over;
// staleness is measured on the waiter's own clock (the lease's content
// stops changing), so builders' clocks need not agree.
type Cache struct {
	Store store.Store
	// Owner says who holds leases (host, pid, package) in messages.
	Owner string
	// Log receives a line per event (hit, corrupt, waiting); may be nil.
	Log io.Writer

	TTL time.Duration // a lease not renewed for this long is stale; default 2m
	// Settle is the wait between writing a lease and reading it back.
	// Default: four times what reading and writing the lease took this
	// builder, at least 300 ms and at most 2 s (another builder's
	// "no lease" read and its write take about as long).
	Settle time.Duration
	Poll   time.Duration // how often a waiter looks; default 1s
}

func (c *Cache) ttl() time.Duration { return def(c.TTL, 2*time.Minute) }
func (c *Cache) settle(took time.Duration) time.Duration {
	if c.Settle > 0 {
		return c.Settle
	}
	return min(max(4*took, 300*time.Millisecond), 2*time.Second)
}
func (c *Cache) poll() time.Duration { return def(c.Poll, time.Second) }

func def(d, v time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return v
}

func (c *Cache) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "pkgrun: "+format+"\n", args...)
	}
}

// Result of Get.
type Result int

const (
	Miss    Result = iota // not in the store
	Hit                   // copied and verified
	Corrupt               // in the store but wrong: deleted, nothing usable written
)

// Get copies the verified distfile e from the store to w, which is made
// by open only once the object exists. On a mismatch the object is
// deleted from the store (unless it was replaced meanwhile) and discard
// is called so that the caller removes what w holds.
func (c *Cache) Get(ctx context.Context, e Entry, open func() (io.WriteCloser, error), discard func()) (Result, error) {
	if err := e.Verifiable(); err != nil {
		return Miss, err
	}
	obj := ObjectName(e.Name)
	info, err := c.Store.Stat(ctx, obj)
	if store.IsNotExist(err) {
		return Miss, nil
	}
	if err != nil {
		return Miss, fmt.Errorf("stat %s in %s: %w", obj, c.Store, err)
	}
	if e.Size >= 0 && info.Size != e.Size {
		c.logf("%s in %s is %d bytes, distinfo says %d: corrupt, deleting it", obj, c.Store, info.Size, e.Size)
		return Corrupt, c.deleteIfSame(ctx, obj, info)
	}
	rc, err := c.Store.Get(ctx, obj)
	if store.IsNotExist(err) {
		return Miss, nil
	}
	if err != nil {
		return Miss, fmt.Errorf("get %s from %s: %w", obj, c.Store, err)
	}
	defer rc.Close()
	w, err := open()
	if err != nil {
		return Miss, err
	}
	v := e.NewVerifier()
	_, cerr := io.Copy(io.MultiWriter(w, v), rc)
	werr := w.Close()
	if cerr == nil {
		cerr = v.Check()
	}
	if errors.Is(cerr, ErrMismatch) {
		discard()
		c.logf("%s in %s does not match distinfo (%v): corrupt, deleting it", obj, c.Store, cerr)
		return Corrupt, c.deleteIfSame(ctx, obj, info)
	}
	if cerr != nil {
		discard()
		return Miss, fmt.Errorf("get %s from %s: %w", obj, c.Store, cerr)
	}
	if werr != nil {
		discard()
		return Miss, werr
	}
	return Hit, nil
}

// deleteIfSame deletes obj unless another builder replaced it since
// info was taken (then the new one is checked by whoever reads it next).
func (c *Cache) deleteIfSame(ctx context.Context, obj string, info store.Info) error {
	now, err := c.Store.Stat(ctx, obj)
	if store.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s in %s: %w", obj, c.Store, err)
	}
	if now.Size != info.Size || !now.ModTime.Equal(info.ModTime) {
		return nil
	}
	if err := c.Store.Delete(ctx, obj); err != nil {
		return fmt.Errorf("delete corrupt %s from %s: %w", obj, c.Store, err)
	}
	return nil
}

// Put verifies the local file and uploads it as the distfile e. A file
// that does not match e is an error wrapping ErrMismatch and is not
// uploaded.
func (c *Cache) Put(ctx context.Context, e Entry, f *os.File) error {
	if err := e.Verifiable(); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := e.Verify(f); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// The file is the job's own (nothing else writes it now), so what
	// was verified is what goes up; the size guards against a change.
	obj := ObjectName(e.Name)
	if err := c.Store.Put(ctx, obj, f, fi.Size()); err != nil {
		return fmt.Errorf("put %s to %s: %w", obj, c.Store, err)
	}
	return nil
}

// lease is the content of a lease object.
type lease struct {
	Owner   string    `json:"owner"`
	Token   string    `json:"token"`
	Renewed time.Time `json:"renewed"`
	Seq     int       `json:"seq"`
}

// Lease is a held lease on one distfile name.
type Lease struct {
	c     *Cache
	name  string
	token string
	mu    sync.Mutex
	seq   int
	stop  chan struct{}
	done  chan struct{}
}

func (c *Cache) writeLease(ctx context.Context, obj, token string, seq int) error {
	b, _ := json.Marshal(lease{Owner: c.Owner, Token: token, Renewed: time.Now().UTC(), Seq: seq})
	if err := c.Store.Put(ctx, obj, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("put %s to %s: %w", obj, c.Store, err)
	}
	return nil
}

// readLease returns the lease object's bytes and decoded content; ok is
// false when there is none.
func (c *Cache) readLease(ctx context.Context, obj string) (raw []byte, l lease, ok bool, err error) {
	rc, err := c.Store.Get(ctx, obj)
	if store.IsNotExist(err) {
		return nil, l, false, nil
	}
	if err != nil {
		return nil, l, false, fmt.Errorf("get %s from %s: %w", obj, c.Store, err)
	}
	defer rc.Close()
	raw, err = io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, l, false, fmt.Errorf("get %s from %s: %w", obj, c.Store, err)
	}
	_ = json.Unmarshal(raw, &l) // an unreadable lease is someone's: it goes stale
	return raw, l, true, nil
}

// Acquire returns a lease on the distfile e for the caller to fetch it,
// or nil once the distfile is in the store (the caller Gets it). It waits
// while another builder holds a live lease. The lease is renewed until
// Release.
func (c *Cache) Acquire(ctx context.Context, e Entry) (*Lease, error) {
	obj := LockPrefix + e.Name
	var lastRaw []byte
	var lastChange time.Time
	said := false
	for {
		switch _, err := c.Store.Stat(ctx, ObjectName(e.Name)); {
		case err == nil:
			return nil, nil
		case !store.IsNotExist(err):
			return nil, fmt.Errorf("stat %s in %s: %w", ObjectName(e.Name), c.Store, err)
		}
		began := time.Now()
		raw, l, held, err := c.readLease(ctx, obj)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		if held && !bytes.Equal(raw, lastRaw) {
			lastRaw, lastChange = raw, now
		}
		if !held || now.Sub(lastChange) >= c.ttl() {
			if held {
				c.logf("the lease on %s of %s was not renewed for %v: taking it over", e.Name, l.Owner, c.ttl())
			}
			token := newToken()
			if err := c.writeLease(ctx, obj, token, 0); err != nil {
				return nil, err
			}
			if err := sleep(ctx, c.settle(time.Since(began))); err != nil {
				return nil, err
			}
			raw, l, held, err = c.readLease(ctx, obj)
			if err != nil {
				return nil, err
			}
			if held && l.Token == token {
				ls := &Lease{c: c, name: e.Name, token: token, stop: make(chan struct{}), done: make(chan struct{})}
				go ls.renew()
				return ls, nil
			}
			if held {
				lastRaw, lastChange = raw, time.Now()
			}
		}
		if !said && held {
			c.logf("%s is being fetched by %s: waiting for it to reach %s", e.Name, l.Owner, c.Store)
			said = true
		}
		if err := sleep(ctx, c.poll()); err != nil {
			return nil, err
		}
	}
}

func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.c.ttl() / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.seq++
			seq := l.seq
			l.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), l.c.ttl()/4)
			if err := l.c.writeLease(ctx, LockPrefix+l.name, l.token, seq); err != nil {
				l.c.logf("renew the lease on %s: %v", l.name, err)
			}
			cancel()
		}
	}
}

// Release ends the lease and deletes its object if it is still this
// lease's.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	obj := LockPrefix + l.name
	_, cur, held, err := l.c.readLease(ctx, obj)
	if err != nil || !held || cur.Token != l.token {
		return err
	}
	if err := l.c.Store.Delete(ctx, obj); err != nil {
		return fmt.Errorf("delete %s from %s: %w", obj, l.c.Store, err)
	}
	return nil
}

func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
