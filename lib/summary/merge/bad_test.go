package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/summary"
)

// smallPkg returns a package whose +CONTENTS is contents.
func smallPkg(t *testing.T, contents string) []byte {
	t.Helper()
	data, err := pkgtest.Package(map[string][]byte{
		"+CONTENTS": []byte(contents), "+COMMENT": []byte("c\n"), "+DESC": []byte("d\n"),
	}, pkgfile.Gzip, 2000, 1)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// badPackages are files in All/ that cannot be indexed, by file name
// (without .tgz), with what the report must say about each.
func badPackages(t *testing.T) map[string]struct {
	data []byte
	why  string
} {
	big := append([]byte("@name big-1\n"), bytes.Repeat([]byte("a"), 15<<20)...)
	var bomb bytes.Buffer
	if err := pkgtest.Build(&bomb, pkgfile.Gzip, append(pkgtest.MetaMembers(map[string][]byte{"+CONTENTS": big, "+COMMENT": big, "+DESC": big}),
		pkgtest.Member{Name: "bin/x", Data: []byte("x")})); err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		data []byte
		why  string
	}{
		"armagic-1":   {[]byte("!<arch>\n"), "without members"},
		"arheader-1":  {[]byte(fmt.Sprintf("!<arch>\n%-16s%-12d%-6d%-6d%-8o%-10d`\n", "+PKG_HASH", 0, 0, 0, 0o100644, 1000)), "truncated"},
		"empty-1":     {nil, "empty file"},
		"gzhead-1":    {[]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, "truncated"},
		"junk-1":      {[]byte("junk"), "truncated stream"},
		"noname-1":    {smallPkg(t, "@comment no name\nbin/x\n"), "no @name"},
		"emptyname-1": {smallPkg(t, "@name\nbin/x\n"), "empty @name"},
		"twonames-1":  {smallPkg(t, "@name twonames-1\n@name other-1\n"), "2 @name lines"},
		"renamed-1":   {smallPkg(t, "@name good-1\nbin/x\n"), "says @name good-1, the file name says renamed-1"},
		"big-1":       {bomb.Bytes(), "+COMMENT (15728652 bytes) brings the metadata files"},
	}
}

// TestMergeBadPackages (issue 9, points 7 and 9): files in All/ that are
// not packages, or whose entry would lack PKGNAME or carry another name
// than the file's, are reported with their file and reason and left out;
// the other packages are published.
func TestMergeBadPackages(t *testing.T) {
	for _, listedStore := range []bool{false, true} {
		t.Run(fmt.Sprintf("listed=%v", listedStore), func(t *testing.T) {
			dir := t.TempDir()
			all := filepath.Join(dir, "All")
			os.MkdirAll(all, 0o755)
			var want bytes.Buffer
			for _, n := range []string{"good-1", "good-2"} {
				p := filepath.Join(all, n+".tgz")
				if err := os.WriteFile(p, smallPkg(t, "@name "+n+"\nbin/x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				e, err := summary.EntryFromFile(p)
				if err != nil {
					t.Fatal(err)
				}
				want.Write(e)
			}
			bad := badPackages(t)
			for n, b := range bad {
				if err := os.WriteFile(filepath.Join(all, n+".tgz"), b.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var s store.Store = openStore(t, dir, storeopen.Options{})
			if listedStore {
				s = listed{Store: s}
			}
			for round := range 2 { // the second finds the good fragments and the published summary
				res, err := Merge(context.Background(), s, Options{Formats: []string{"plain"}})
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if res.Packages != 2 || len(res.Failed) != len(bad) {
					t.Errorf("round %d: %d packages, %d failed (want 2, %d): %+v", round, res.Packages, len(res.Failed), len(bad), res.Failed)
				}
				for _, f := range res.Failed {
					b, ok := bad[f.PkgName]
					if !ok {
						t.Errorf("round %d: %s failed: %s", round, f.PkgName, f.Error)
						continue
					}
					if !strings.Contains(f.Error, "All/"+f.PkgName+".tgz") || !strings.Contains(f.Error, b.why) {
						t.Errorf("round %d: %s: error %q should name the file and say %q", round, f.PkgName, f.Error, b.why)
					}
				}
				got, err := os.ReadFile(filepath.Join(all, "pkg_summary"))
				if err != nil || !bytes.Equal(got, want.Bytes()) {
					t.Errorf("round %d: published summary %q (%v), want the good packages':\n%s", round, got, err, want.Bytes())
				}
			}
		})
	}
}

// TestMergeBadFragmentName: a fragment whose PKGNAME is not its
// package's (or that has none, or two) is not used: the entry is
// recomputed from the package.
func TestMergeBadFragmentName(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "All"), 0o755)
	os.MkdirAll(filepath.Join(dir, "index"), 0o755)
	data := smallPkg(t, "@name a-1\nbin/x\n")
	p := filepath.Join(dir, "All", "a-1.tgz")
	os.WriteFile(p, data, 0o644)
	want, err := summary.EntryFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		strings.Replace(string(want), "PKGNAME=a-1", "PKGNAME=b-1", 1),
		strings.Replace(string(want), "PKGNAME=a-1\n", "", 1),
		strings.Replace(string(want), "PKGNAME=a-1\n", "PKGNAME=a-1\nPKGNAME=a-1\n", 1),
	} {
		future := time.Now().Add(time.Hour)
		fp := filepath.Join(dir, "index", "a-1.pkginfo")
		os.WriteFile(fp, []byte(frag), 0o644)
		os.Chtimes(fp, future, future)
		res, err := Merge(context.Background(), openStore(t, dir, storeopen.Options{}), Options{Formats: []string{"plain"}, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "All", "pkg_summary"))
		if res.Computed != 1 || res.Stale != 1 || !bytes.Equal(got, want) {
			t.Errorf("fragment %q: %+v, summary %q", frag, res, got)
		}
	}
}

// TestMergeReuseChecksName: an entry of the published summary whose
// PKGNAME is not its file's (published before pkgindex checked names) is
// not reused on a listed store: the package is read and refused.
func TestMergeReuseChecksName(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "All"), 0o755)
	for _, n := range []string{"a-1", "b-1"} {
		os.WriteFile(filepath.Join(dir, "All", n+".tgz"), smallPkg(t, "@name "+n+"\nbin/x\n"), 0o644)
	}
	s := listed{Store: openStore(t, dir, storeopen.Options{})}
	ctx := context.Background()
	if _, err := Merge(ctx, s, Options{Formats: []string{"plain"}}); err != nil {
		t.Fatal(err)
	}
	// Make b-1 a package named a-1, as an older pkgindex would have
	// published it, with its fragment and the state to match.
	renamed := smallPkg(t, "@name a-1\nbin/y\n")
	bp := filepath.Join(dir, "All", "b-1.tgz")
	os.WriteFile(bp, renamed, 0o644)
	e, err := summary.EntryFromFile(bp)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "index", "b-1.pkginfo"), e, 0o644)
	a, _ := os.ReadFile(filepath.Join(dir, "index", "a-1.pkginfo"))
	sum := append(a, e...)
	os.WriteFile(filepath.Join(dir, "All", "pkg_summary"), sum, 0o644)
	past := time.Now().Add(-time.Hour)
	setTimes(t, dir, "All/*", past)
	setTimes(t, dir, "index/*", past)
	if err := writeState(ctx, s, Options{Suffix: ".tgz"}, nil, sum, "", nil, time.Now()); err != nil {
		t.Fatal(err)
	}

	res, err := Merge(ctx, s, Options{Formats: []string{"plain"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused != 1 || len(res.Failed) != 1 || res.Failed[0].PkgName != "b-1" {
		t.Errorf("result %+v", res)
	}
}

// failingStore fails reading one package midway with a transient error.
type failingStore struct {
	store.Store
	name string
}

type failingReader struct{ io.ReadCloser }

var errReset = errors.New("connection reset by peer")

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p[:min(len(p), 10)])
	if err == nil && n > 0 {
		return n, errReset
	}
	return n, err
}

func (f failingStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := f.Store.Get(ctx, name)
	if err == nil && name == f.name {
		return failingReader{rc}, nil
	}
	return rc, err
}

// TestMergeStoreFailure: a package that cannot be read because the store
// fails (not because of its bytes) stops the merge: nothing is published
// without it.
func TestMergeStoreFailure(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "All"), 0o755)
	for _, n := range []string{"a-1", "b-1"} {
		os.WriteFile(filepath.Join(dir, "All", n+".tgz"), smallPkg(t, "@name "+n+"\nbin/x\n"), 0o644)
	}
	s := failingStore{Store: listed{Store: openStore(t, dir, storeopen.Options{})}, name: "All/b-1.tgz"}
	res, err := Merge(context.Background(), s, Options{Formats: []string{"plain"}})
	if !errors.Is(err, errReset) {
		t.Errorf("merge: %+v, %v; want the store's error", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "All", "pkg_summary")); err == nil {
		t.Error("published without b-1")
	}
}
