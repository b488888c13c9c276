package merge

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// listed is a store that Merge must list, as it lists a remote one (it
// hides the file store's ReadFileInfo); with seconds, it reports
// modification times to the second, as S3 and SFTP do.
type listed struct {
	store.Store
	seconds bool
}

func (l listed) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	return l.Store.List(ctx, prefix, func(i store.Info) error {
		if l.seconds {
			i.ModTime = i.ModTime.Truncate(time.Second)
		}
		return fn(i)
	})
}

func (l listed) Stat(ctx context.Context, name string) (store.Info, error) {
	i, err := l.Store.Stat(ctx, name)
	if l.seconds {
		i.ModTime = i.ModTime.Truncate(time.Second)
	}
	return i, err
}

// setTimes sets the modification time of files under dir/sub matching
// pattern.
func setTimes(t *testing.T, dir, pattern string, mt time.Time) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s in %s (%v)", pattern, dir, err)
	}
	for _, f := range files {
		if err := os.Chtimes(f, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// rebuild writes a new package file for name: the same metadata, another
// size.
func (f *fixture) rebuild(t *testing.T, name string) {
	t.Helper()
	md, _ := loadFluxer(t)
	data, err := pkgtest.Package(md[name], pkgfile.Gzip, 9999, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "All", name+".tgz"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMerge(t *testing.T, s store.Store, o Options) *Result {
	t.Helper()
	res, err := Merge(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func checkPublished(t *testing.T, f *fixture, what string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(f.dir, "All", "pkg_summary"))
	if err != nil {
		t.Fatal(err)
	}
	if want := f.expected(t); !bytes.Equal(got, want) {
		t.Errorf("%s: published summary differs from pkg_info -X over the packages (%d bytes, want %d)", what, len(got), len(want))
	}
	if xz := decompress(t, "xz", filepath.Join(f.dir, "All", "pkg_summary.xz")); !bytes.Equal(xz, got) {
		t.Errorf("%s: pkg_summary.xz differs from pkg_summary", what)
	}
}

// TestMergeReuse: on a listed store, a merge takes the entries of
// unchanged packages from the previous summary and reads only what
// changed since the previous listing; every summary equals pkg_info -X
// over the packages.
func TestMergeReuse(t *testing.T) {
	f := newFixture(t, 8)
	s := listed{Store: openStore(t, f.dir, storeopen.Options{})}
	ago := func(d time.Duration) time.Time { return time.Now().Add(-d) }
	setTimes(t, f.dir, "All/*.tgz", ago(3*time.Hour))

	// No state yet: every entry is computed (and its fragment saved).
	res := mustMerge(t, s, Options{})
	if res.Reused != 0 || res.Computed != 8 {
		t.Errorf("first merge: %+v", res)
	}
	checkPublished(t, f, "first merge")
	// The fragments were saved after that listing: they are read.
	setTimes(t, f.dir, "index/*.pkginfo", ago(2*time.Hour))
	res = mustMerge(t, s, Options{})
	if res.Reused != 0 || res.FromFragments != 8 || !res.Unchanged {
		t.Errorf("second merge: %+v", res)
	}
	// Nothing changed since the second listing: nothing is read.
	res = mustMerge(t, s, Options{})
	if res.Reused != 8 || res.FromFragments != 0 || !res.Unchanged {
		t.Errorf("third merge: %+v", res)
	}
	mustMerge(t, s, Options{}) // the state now lists everything as old

	// A rebuilt package (new size, new time; its fragment is older) and a
	// deleted fragment are read; the rest is reused.
	f.rebuild(t, f.names[2])
	if err := os.Remove(filepath.Join(f.dir, "index", f.names[5]+".pkginfo")); err != nil {
		t.Fatal(err)
	}
	res = mustMerge(t, s, Options{})
	if res.Reused != 6 || res.Computed != 2 || res.Stale != 1 || res.Unchanged {
		t.Errorf("after a rebuild and a lost fragment: %+v", res)
	}
	checkPublished(t, f, "after a rebuild")

	// --no-reuse reads everything.
	res = mustMerge(t, s, Options{NoReuse: true, Force: true})
	if res.Reused != 0 || res.FromFragments != 8 {
		t.Errorf("with NoReuse: %+v", res)
	}

	// A summary published by someone else is not trusted.
	mustMerge(t, s, Options{})
	sum := filepath.Join(f.dir, "All", "pkg_summary")
	old, _ := os.ReadFile(sum)
	os.WriteFile(sum, old[:len(old)/2], 0o644)
	res = mustMerge(t, s, Options{})
	if res.Reused != 0 || res.Unchanged {
		t.Errorf("after the summary was replaced: %+v", res)
	}
	checkPublished(t, f, "after the summary was replaced")

	// Options that change entries do not reuse entries made without them.
	res = mustMerge(t, s, Options{Cksum: true, Force: true})
	if res.Reused != 0 || res.Computed != 8 {
		t.Errorf("with Cksum: %+v", res)
	}
}

// TestMergeReuseRacy: a fragment rewritten, with the same size, in the
// same second that the previous merge listed (so that a store with
// one-second times shows no change) is read again, not reused.
func TestMergeReuseRacy(t *testing.T) {
	f := newFixture(t, 4)
	s := listed{Store: openStore(t, f.dir, storeopen.Options{}), seconds: true}
	mustMerge(t, s, Options{}) // computes and saves the fragments

	// Everything as of one second an hour ago, but one package and its
	// fragment, much older, and the package of the fragment rewritten
	// below.
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).Add(300 * time.Millisecond)
	setTimes(t, f.dir, "All/*", t0)
	setTimes(t, f.dir, "index/*", t0)
	old, q := f.names[0], f.names[1]
	setTimes(t, f.dir, "All/"+old+".tgz", t0.Add(-time.Hour))
	setTimes(t, f.dir, "index/"+old+".pkginfo", t0.Add(-time.Hour))
	setTimes(t, f.dir, "All/"+q+".tgz", t0.Add(-time.Hour))
	// Times went back: that merge's state must not be used. This one
	// lists everything at t0.
	if err := os.Remove(filepath.Join(f.dir, stateObject)); err != nil {
		t.Fatal(err)
	}
	mustMerge(t, s, Options{})

	// Rewrite a fragment in that same second with the same size.
	frag := filepath.Join(f.dir, "index", q+".pkginfo")
	b, err := os.ReadFile(frag)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("COMMENT="))
	if i < 0 {
		t.Fatalf("no COMMENT in %s", frag)
	}
	b[i+len("COMMENT=")] ^= 0x20 // swap the case of its first letter
	if err := os.WriteFile(frag, b, 0o644); err != nil {
		t.Fatal(err)
	}
	setTimes(t, f.dir, "index/"+q+".pkginfo", t0.Add(500*time.Millisecond))

	res := mustMerge(t, s, Options{})
	if res.Reused != 1 || res.FromFragments != 3 {
		t.Errorf("third merge: %+v", res)
	}
	got, err := os.ReadFile(filepath.Join(f.dir, "All", "pkg_summary"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, b[i:i+20]) {
		t.Errorf("the rewritten fragment's %q is not in the summary", b[i:i+20])
	}
}

// TestMergeReuseS3: the same against a real S3 server (versitygw), whose
// times are to the second: the third merge reads nothing but the listing
// and the previous summary.
func TestMergeReuseS3(t *testing.T) {
	f, s := s3Fixture(t, 6)
	ctx := context.Background()
	if res := mustMerge(t, s, Options{}); res.Computed != 6 {
		t.Errorf("first merge: %+v", res)
	}
	// The fragments that merge saved are newer than its listing: the
	// next merge reads them. A package that arrives later is newer than
	// them by more than the margin, so the merge after trusts them.
	time.Sleep(racyMargin + 1100*time.Millisecond)
	md, _ := loadFluxer(t)
	var late string
	for name := range md {
		if !slices.Contains(f.names, name) {
			late = name
			break
		}
	}
	data, err := pkgtest.Package(md[late], pkgfile.Gzip, 7000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "All/"+late+".tgz", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if res := mustMerge(t, s, Options{}); res.Reused != 0 || res.FromFragments != 6 || res.Computed != 1 {
		t.Errorf("second merge: %+v", res)
	}
	res := mustMerge(t, s, Options{})
	if res.Reused != 6 || res.FromFragments != 1 || !res.Unchanged {
		t.Errorf("third merge: %+v", res)
	}
	os.WriteFile(filepath.Join(f.dir, "All", late+".tgz"), data, 0o644)
	f.names = append(f.names, late)
	rc, err := s.Get(ctx, "All/pkg_summary")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, f.expected(t)) {
		t.Error("pkg_summary over S3 differs")
	}
}

// TestMergeReuseSHA512: with SHA512, the digests of unchanged packages
// come from the published SHA512.bz2 (the cached index/*.sha512 are not
// needed); a rebuilt package's digest is computed.
func TestMergeReuseSHA512(t *testing.T) {
	f := newFixture(t, 5)
	s := listed{Store: openStore(t, f.dir, storeopen.Options{})}
	setTimes(t, f.dir, "All/*.tgz", time.Now().Add(-3*time.Hour))
	o := Options{SHA512: true}
	mustMerge(t, s, o)
	setTimes(t, f.dir, "index/*.pkginfo", time.Now().Add(-2*time.Hour))
	mustMerge(t, s, o)
	digests, err := filepath.Glob(filepath.Join(f.dir, "index", "*.sha512"))
	if err != nil || len(digests) != 5 {
		t.Fatalf("digests %v (%v)", digests, err)
	}
	for _, d := range digests {
		os.Remove(d)
	}
	res := mustMerge(t, s, o)
	if res.Reused != 5 || !res.Unchanged {
		t.Errorf("third merge: %+v", res)
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, "index", "*.sha512")); len(left) != 0 {
		t.Errorf("digests were computed again: %v", left)
	}
	checkSHA512(t, f.dir)

	f.rebuild(t, f.names[3])
	res = mustMerge(t, s, o)
	if res.Reused != 4 || res.Computed != 1 {
		t.Errorf("after a rebuild: %+v", res)
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, "index", "*.sha512")); len(left) != 1 {
		t.Errorf("digests computed: %v, want the rebuilt package's", left)
	}
	checkSHA512(t, f.dir)
	checkPublished(t, f, "after a rebuild")
}

// FuzzReusable: whatever the published summary holds, indexing it for
// reuse never panics, and every entry it offers is a whole entry of that
// summary (ending with its blank line) named by its FILE_NAME.
func FuzzReusable(f *testing.F) {
	f.Add([]byte("PKGNAME=a-1\nFILE_NAME=a-1.tgz\nFILE_SIZE=10\n\n"), []byte("SHA512 (All/a-1.tgz) = "+strings.Repeat("ab", 64)+"\n"))
	f.Add([]byte("FILE_NAME=x\n\nFILE_SIZE=-1\n\n\n\n"), []byte("SHA512 () = \n"))
	f.Add([]byte("no blank line at the end\n"), []byte(nil))
	f.Fuzz(func(t *testing.T, sum, sha []byte) {
		p := &previous{sum: sum, sha512: sha, state: &mergeState{
			Version: stateVersion, SummarySHA256: hexSHA256(sum), SHA512SHA256: hexSHA256(sha),
			Listed: time.Unix(1e9, 0), Suffix: ".tgz"}}
		entries, _ := p.reusable(Options{Suffix: ".tgz"})
		for name, e := range entries {
			if !bytes.HasSuffix(e.text, []byte("\n\n")) || !bytes.Contains(sum, e.text) {
				t.Fatalf("entry %q is not a whole entry of the summary: %q", name, e.text)
			}
			if !bytes.Contains(e.text, []byte("FILE_NAME="+name+"\n")) {
				t.Fatalf("entry %q does not name itself: %q", name, e.text)
			}
			if e.digest != "" && !bytes.Contains(sha, []byte("SHA512 (All/"+name+") = "+e.digest)) {
				t.Fatalf("digest %q of %q is not in SHA512.bz2", e.digest, name)
			}
		}
	})
}
