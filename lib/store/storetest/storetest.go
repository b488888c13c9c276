// Package storetest is the conformance suite every store.Store backend
// passes (restic's backend test suite is the model): the same tests run
// against the file, mem, sftp and s3 backends, the latter two against real
// servers on loopback (see servers.go). A backend's test file is short:
//
//	func TestSuite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newStoreFor(t) })
//	}
//
// newStore must return an empty store each time it is called; the suite
// closes it.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"List", testList},
		{"ListStop", testListStop},
		{"Delete", testDelete},
		{"InvalidNames", testInvalidNames},
		{"Cancelled", testCancelled},
		{"SizeMismatch", testSizeMismatch},
		{"FailedPutKeepsOld", testFailedPutKeepsOld},
		{"NoPartialReads", testNoPartialReads},
		{"String", testString},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// Random returns n random bytes.
func Random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, s store.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func get(t *testing.T, s store.Store, name string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", name, err)
	}
	return b
}

// onlyReader hides any Seek/WriterTo/Len methods, so a backend sees a
// stream of unknown length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	cases := []struct {
		name    string
		data    []byte
		unknown bool // pass size -1 and a plain reader
	}{
		{"All/empty-1.0.tgz", []byte{}, false},
		{"All/small-1.0.tgz", []byte("hello, store\n"), false},
		{"distfiles/big-1.0.tar.gz", Random(t, 5<<20+123), false},
		{"bulklog/unknown-1.0/build.log", Random(t, 3<<20+7), true},
		{"bulklog/unknown-1.0/empty.log", []byte{}, true},
		{"top-level", []byte("x"), false},
	}
	for _, c := range cases {
		var r io.Reader = bytes.NewReader(c.data)
		size := int64(len(c.data))
		if c.unknown {
			r, size = onlyReader{r}, -1
		}
		if err := s.Put(ctx, c.name, r, size); err != nil {
			t.Fatalf("Put(%q, %d bytes, size %d): %v", c.name, len(c.data), size, err)
		}
	}
	for _, c := range cases {
		if got := get(t, s, c.name); !bytes.Equal(got, c.data) {
			t.Errorf("Get(%q) = %d bytes, want the %d bytes put", c.name, len(got), len(c.data))
		}
		fi, err := s.Stat(ctx, c.name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", c.name, err)
		}
		if fi.Name != c.name || fi.Size != int64(len(c.data)) {
			t.Errorf("Stat(%q) = {%q, %d}, want {%q, %d}", c.name, fi.Name, fi.Size, c.name, len(c.data))
		}
		if fi.ModTime.IsZero() || time.Since(fi.ModTime) > 24*time.Hour || time.Until(fi.ModTime) > time.Hour {
			t.Errorf("Stat(%q).ModTime = %v, not about now", c.name, fi.ModTime)
		}
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	put(t, s, "All/pkg-1.0.tgz", []byte("first version, longer than the second"))
	put(t, s, "All/pkg-1.0.tgz", []byte("second"))
	if got := string(get(t, s, "All/pkg-1.0.tgz")); got != "second" {
		t.Errorf("after overwrite Get = %q, want %q", got, "second")
	}
	fi, err := s.Stat(context.Background(), "All/pkg-1.0.tgz")
	if err != nil || fi.Size != 6 {
		t.Errorf("after overwrite Stat = %+v, %v; want size 6", fi, err)
	}
}

func testMissing(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "All/present-1.0.tgz", []byte("x"))
	for _, name := range []string{"All/missing-1.0.tgz", "nodir/missing", "missing", "All"} {
		if _, err := s.Stat(ctx, name); !store.IsNotExist(err) {
			t.Errorf("Stat(%q) error = %v, want IsNotExist", name, err)
		}
		rc, err := s.Get(ctx, name)
		if !store.IsNotExist(err) {
			t.Errorf("Get(%q) error = %v, want IsNotExist", name, err)
		}
		if err == nil {
			rc.Close()
		}
	}
}

func listNames(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var names []string
	var mu sync.Mutex // fn may be called from any goroutine, one at a time or not
	err := s.List(context.Background(), prefix, func(fi store.Info) error {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

func testList(t *testing.T, s store.Store) {
	all := []string{
		"All/a-1.0.tgz",
		"All/b-2.0.tgz",
		"Allx/not-in-All",
		"bulklog/foo-1.0/build.log",
		"bulklog/foo-1.0/configure.log",
		"bulklog/foo/pre-clean.log",
		"bulklog/foobar/build.log",
		"index/a-1.0.pkginfo",
		"distfiles/sub/dir/deep/x.tar.gz",
		"top",
	}
	for i, n := range all {
		put(t, s, n, []byte(fmt.Sprint(i)))
	}
	sorted := slices.Clone(all)
	sort.Strings(sorted)
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"All/", []string{"All/a-1.0.tgz", "All/b-2.0.tgz"}},
		{"All/a", []string{"All/a-1.0.tgz"}},
		{"bulklog/foo/", []string{"bulklog/foo/pre-clean.log"}},
		{"bulklog/foo", []string{"bulklog/foo-1.0/build.log", "bulklog/foo-1.0/configure.log", "bulklog/foo/pre-clean.log", "bulklog/foobar/build.log"}},
		{"distfiles/", []string{"distfiles/sub/dir/deep/x.tar.gz"}},
		{"distfiles/sub/dir/", []string{"distfiles/sub/dir/deep/x.tar.gz"}},
		{"nothing/", nil},
		{"nothing", nil},
	}
	for _, c := range cases {
		if got := listNames(t, s, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	// Sizes reported by List match the objects.
	err := s.List(context.Background(), "index/", func(fi store.Info) error {
		if fi.Size != int64(len("7")) || fi.ModTime.IsZero() {
			return fmt.Errorf("List info %+v: want size 1 and a ModTime", fi)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testListStop(t *testing.T, s store.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("All/p%d-1.0.tgz", i), []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(context.Background(), "All/", func(store.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List with fn failing: error = %v, want the fn's error", err)
	}
	if calls != 1 {
		t.Errorf("List went on after fn failed: %d calls", calls)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "All/gone-1.0.tgz", []byte("x"))
	put(t, s, "All/stays-1.0.tgz", []byte("y"))
	for i := range 2 { // the second Delete finds nothing: still no error
		if err := s.Delete(ctx, "All/gone-1.0.tgz"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if err := s.Delete(ctx, "never/was/there"); err != nil {
		t.Errorf("Delete of a never-stored name: %v", err)
	}
	if _, err := s.Stat(ctx, "All/gone-1.0.tgz"); !store.IsNotExist(err) {
		t.Errorf("Stat after Delete: %v, want IsNotExist", err)
	}
	if got := listNames(t, s, ""); !slices.Equal(got, []string{"All/stays-1.0.tgz"}) {
		t.Errorf("List after Delete = %q", got)
	}
}

func testInvalidNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := []string{"", "/abs", "../up", "a/../b", "a/./b", "./a", "a//b", "a/", "..", "a/..", "a\x00b", `a\b`, "All/" + store.TempPrefix + "x"}
	for _, name := range bad {
		check := func(op string, err error) {
			if !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("%s(%q) error = %v, want ErrInvalidName", op, name, err)
			}
		}
		check("Put", s.Put(ctx, name, bytes.NewReader(nil), 0))
		rc, err := s.Get(ctx, name)
		check("Get", err)
		if err == nil {
			rc.Close()
		}
		_, err = s.Stat(ctx, name)
		check("Stat", err)
		check("Delete", s.Delete(ctx, name))
	}
	for _, prefix := range []string{"/", "/abs", "../", "a/../", "a//"} {
		err := s.List(ctx, prefix, func(store.Info) error { return nil })
		if !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("List(%q) error = %v, want ErrInvalidName", prefix, err)
		}
	}
	if got := listNames(t, s, ""); len(got) != 0 {
		t.Errorf("invalid Puts left objects: %q", got)
	}
}

func testCancelled(t *testing.T, s store.Store) {
	put(t, s, "All/x-1.0.tgz", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled ctx: error = %v, want context.Canceled", op, err)
		}
	}
	check("Put", s.Put(ctx, "All/y-1.0.tgz", bytes.NewReader([]byte("y")), 1))
	rc, err := s.Get(ctx, "All/x-1.0.tgz")
	check("Get", err)
	if err == nil {
		rc.Close()
	}
	_, err = s.Stat(ctx, "All/x-1.0.tgz")
	check("Stat", err)
	check("List", s.List(ctx, "", func(store.Info) error { return nil }))
	check("Delete", s.Delete(ctx, "All/x-1.0.tgz"))
	if got := listNames(t, s, ""); !slices.Equal(got, []string{"All/x-1.0.tgz"}) {
		t.Errorf("cancelled calls changed the store: %q", got)
	}

	// Cancelling during a Put of an endless stream stops it and stores nothing.
	ctx, cancel = context.WithCancel(context.Background())
	r := &cancellingReader{after: 1 << 20, cancel: cancel}
	err = s.Put(ctx, "All/endless-1.0.tgz", r, -1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled mid-stream: error = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(context.Background(), "All/endless-1.0.tgz"); !store.IsNotExist(err) {
		t.Errorf("Stat after a cancelled Put: %v, want IsNotExist", err)
	}
}

// cancellingReader yields zeros forever and cancels once it has yielded
// after bytes.
type cancellingReader struct {
	n, after int
	cancel   func()
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	clear(p)
	c.n += len(p)
	return len(p), nil
}

func testSizeMismatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "All/sized-1.0.tgz", []byte("old"))
	// A reader shorter than the announced size must not store a truncated object.
	err := s.Put(ctx, "All/sized-1.0.tgz", onlyReader{bytes.NewReader([]byte("new"))}, 10)
	if err == nil {
		t.Errorf("Put with size 10 of a 3-byte reader: no error")
	}
	if got := string(get(t, s, "All/sized-1.0.tgz")); got != "old" {
		t.Errorf("after a short Put, Get = %q, want the old %q", got, "old")
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	r   io.Reader
	err error
}

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func testFailedPutKeepsOld(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := Random(t, 100<<10)
	put(t, s, "All/keep-1.0.tgz", old)
	boom := errors.New("reader broke")
	for _, size := range []int64{-1, 2 << 20} {
		r := failingReader{bytes.NewReader(Random(t, 1<<20)), boom}
		err := s.Put(ctx, "All/keep-1.0.tgz", r, size)
		if err == nil {
			t.Fatalf("Put with a failing reader (size %d): no error", size)
		}
		if got := get(t, s, "All/keep-1.0.tgz"); !bytes.Equal(got, old) {
			t.Errorf("after a failed Put (size %d), Get = %d bytes, want the old %d", size, len(got), len(old))
		}
		// A failed Put of a new name leaves nothing behind either.
		r = failingReader{bytes.NewReader(Random(t, 1<<20)), boom}
		if err := s.Put(ctx, "All/new-1.0.tgz", r, size); err == nil {
			t.Fatalf("Put of a new name with a failing reader: no error")
		}
		if got := listNames(t, s, ""); !slices.Equal(got, []string{"All/keep-1.0.tgz"}) {
			t.Errorf("after failed Puts, List = %q", got)
		}
	}
}

func testNoPartialReads(t *testing.T, s store.Store) {
	const name = "All/contended-1.0.tgz"
	// Two contents of different sizes, big enough that a non-atomic
	// write would be observable mid-way.
	a := bytes.Repeat([]byte("A"), 1<<20)
	b := bytes.Repeat([]byte("B"), 1<<20+4096)
	put(t, s, name, a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	const writes = 8
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		for i := range writes {
			data := b
			if i%2 == 1 {
				data = a
			}
			if err := s.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- fmt.Errorf("writer: Put #%d: %w", i, err)
				return
			}
		}
	}()
	reads := make([]int, 3)
	for r := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 200; i++ {
				rc, err := s.Get(context.Background(), name)
				if err != nil {
					errs <- fmt.Errorf("reader %d: Get: %w", r, err)
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errs <- fmt.Errorf("reader %d: read: %w", r, err)
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					errs <- fmt.Errorf("reader %d saw a partial object: %d bytes", r, len(got))
					return
				}
				reads[r]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := get(t, s, name); !bytes.Equal(got, a) && !bytes.Equal(got, b) {
		t.Errorf("final content is neither version: %d bytes", len(got))
	}
	t.Logf("%d writes, reads per reader %v", writes, reads)
}

func testString(t *testing.T, s store.Store) {
	u := s.String()
	if u == "" {
		t.Fatal("String() is empty")
	}
	for _, secret := range []string{"secret", "password"} {
		if bytes.Contains([]byte(u), []byte(secret)) {
			t.Errorf("String() = %q looks like it carries credentials", u)
		}
	}
}
