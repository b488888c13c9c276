package sign

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// builtSet is a bulk build's packages in the order they were built, each
// with the packages it was built with (@blddep). Name order is not build
// order: signing in name order made zlib-1.3 newer than everything built
// with it.
var builtSet = []struct {
	name    string
	blddeps []string
}{
	{"zlib-1.3", nil},
	{"openssl-3.1", []string{"zlib-1.3"}},
	{"curl-8.5", []string{"openssl-3.1", "zlib-1.3"}},
	{"aaa-1.0", []string{"curl-8.5", "openssl-3.1", "zlib-1.3"}},
	{"mmm-2.0", []string{"aaa-1.0", "zlib-1.3"}},
	{"bbb-1.0", []string{"zlib-1.3"}},
}

func builtPackage(t *testing.T, i int) []byte {
	t.Helper()
	p := builtSet[i]
	contents := "@name " + p.name + "\n"
	for _, d := range p.blddeps {
		contents += "@blddep " + d + "\n"
	}
	contents += "bin/" + p.name + "\n"
	data, err := pkgtest.Package(map[string][]byte{
		"+CONTENTS": []byte(contents), "+COMMENT": []byte("c\n"), "+DESC": []byte("d\n"),
	}, pkgfile.Gzip, 3000+1000*i, uint64(i))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// olderThan is lib/build's (pkg-up-to-date's "dep -ot pkg", with equal
// whole-second times, as S3 reports them, counting as older).
func olderThan(dep, pkg time.Time) bool {
	return dep.Before(pkg) || dep.Equal(pkg) && dep.Nanosecond() == 0 && pkg.Nanosecond() == 0
}

// checkUpToDate does the age part of lib/build's upToDate for every
// package of the set, with the store's Stat times: each @blddep of a
// package must be older than it.
func checkUpToDate(t *testing.T, ctx context.Context, st store.Store, when string) map[string]time.Time {
	t.Helper()
	times := map[string]time.Time{}
	for _, p := range builtSet {
		name := "All/" + p.name + ".tgz"
		info, err := st.Stat(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		times[name] = info.ModTime
		rc, err := st.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := pkgfile.ReadMeta(name, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(blddeps(m), " "); got != strings.Join(p.blddeps, " ") {
			t.Fatalf("%s: @blddep %q, want %q", name, got, p.blddeps)
		}
		for _, d := range p.blddeps {
			dinfo, err := st.Stat(ctx, "All/"+d+".tgz")
			if err != nil {
				t.Fatal(err)
			}
			if !olderThan(dinfo.ModTime, info.ModTime) {
				t.Errorf("%s: %s is not up to date: its build dependency %s (%v) is not older than it (%v)",
					when, name, d, dinfo.ModTime, info.ModTime)
			}
		}
	}
	return times
}

// slowPuts makes every Put take a second longer, so that packages put in
// turn on a store with whole-second times (S3) get different times.
type slowPuts struct{ store.Store }

func (s slowPuts) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	time.Sleep(1100 * time.Millisecond)
	return s.Store.Put(ctx, name, r, size)
}

// TestSigningKeepsUpToDate (issue 9, point 13): signing a built set of
// packages, and re-signing it with another key, leaves every package up
// to date by pkgrun's age check. Where the store can set times (local
// files, file and sftp stores) they are kept; where it cannot (S3, the
// memory store) the packages are replaced in build order.
func TestSigningKeepsUpToDate(t *testing.T) {
	x := testX509(t)
	first, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadX509Signer(x.OtherKey, x.Other, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type storeCase struct {
		name      string
		open      func(t *testing.T) store.Store
		keepTimes bool
		slow      bool // whole-second times: sign through slowPuts
		jobs      int
	}
	cases := []storeCase{
		{name: "file", keepTimes: true, open: func(t *testing.T) store.Store {
			st, err := storeopen.Open(ctx, "file://"+t.TempDir(), storeopen.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{name: "mem", open: func(*testing.T) store.Store { return memstore.New("uptodate") }},
		{name: "mem-4-jobs", jobs: 4, open: func(*testing.T) store.Store { return memstore.New("uptodate") }},
		{name: "sftp", keepTimes: true, jobs: 3, open: func(t *testing.T) store.Store {
			if testing.Short() {
				t.Skip("starts sshd")
			}
			srv := storetest.StartSSHD(t)
			st, err := storeopen.Open(ctx, srv.URL("uptodate"), storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: srv.IdentityFile, KnownHosts: srv.KnownHosts}})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{name: "s3", slow: true, open: func(t *testing.T) store.Store {
			if testing.Short() {
				t.Skip("starts an S3 server")
			}
			srv := storetest.StartS3(t)
			st, err := storeopen.Open(ctx, srv.URL("uptodate"), storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: srv.Endpoint, S3Region: srv.Region}, S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.open(t)
			defer st.Close()
			// The build: each package stored after what it was built with.
			for i, p := range builtSet {
				data := builtPackage(t, i)
				if err := st.Put(ctx, "All/"+p.name+".tgz", bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
				if c.keepTimes {
					// Distinct whole seconds in the past, as sftp has them.
					mt := time.Now().Add(time.Duration(i-len(builtSet)) * time.Minute).Truncate(time.Second)
					if err := asChtimer(st).Chtimes(ctx, "All/"+p.name+".tgz", mt); err != nil {
						t.Fatal(err)
					}
				}
			}
			built := checkUpToDate(t, ctx, st, "after the build")
			signStore := st
			if c.slow {
				signStore = slowPuts{st}
			}
			for _, s := range []Signer{first, second} {
				rep, err := SignStore(ctx, signStore, s, Options{TempDir: t.TempDir(), Jobs: c.jobs})
				if err != nil || rep.Signed+rep.Resigned != len(builtSet) {
					t.Fatalf("sign with %s: %v %+v", s.Identity(), err, rep)
				}
				for _, o := range rep.Outcomes {
					if o.Warning != "" {
						t.Errorf("%s: warning %s", o.Name, o.Warning)
					}
				}
				signed := checkUpToDate(t, ctx, st, "after signing with "+s.Identity())
				if c.keepTimes {
					for name, mt := range built {
						if !signed[name].Equal(mt) {
							t.Errorf("%s: time %v after signing, %v before", name, signed[name], mt)
						}
					}
				}
			}
		})
	}
}

// TestSignFilesKeepsUpToDate: the same for local files, with a package
// directory laid out as a store (All/ beside index/): pkgindex's caches
// of the signed packages are removed, since their times do not change.
func TestSignFilesKeepsUpToDate(t *testing.T) {
	x := testX509(t)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	all, index := filepath.Join(dir, "All"), filepath.Join(dir, "index")
	os.MkdirAll(all, 0o755)
	os.MkdirAll(index, 0o755)
	var files []string
	base := time.Now().Add(-time.Hour)
	for i, p := range builtSet {
		f := filepath.Join(all, p.name+".tgz")
		if err := os.WriteFile(f, builtPackage(t, i), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Millisecond) // nanosecond times, as local disks have
		os.Chtimes(f, mt, mt)
		files = append(files, f)
		for _, ext := range []string{".pkginfo", ".sha512"} {
			os.WriteFile(filepath.Join(index, p.name+ext), []byte("cached\n"), 0o644)
		}
	}
	os.WriteFile(filepath.Join(index, "merge-state.json"), []byte("{}\n"), 0o644)
	os.WriteFile(filepath.Join(index, "other-1.0.pkginfo"), []byte("cached\n"), 0o644)
	st, err := storeopen.Open(context.Background(), dir, storeopen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	built := checkUpToDate(t, context.Background(), st, "after the build")
	rep, err := SignFiles(context.Background(), files, s, Options{Jobs: 2})
	if err != nil || rep.Signed != len(files) {
		t.Fatalf("%v %+v", err, rep)
	}
	signed := checkUpToDate(t, context.Background(), st, "after signing")
	for name, mt := range built {
		if !signed[name].Equal(mt) {
			t.Errorf("%s: time %v after signing, %v before", name, signed[name], mt)
		}
	}
	left, _ := filepath.Glob(filepath.Join(index, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "other-1.0.pkginfo" {
		t.Errorf("index/ after signing: %v; want only the unsigned package's fragment", left)
	}
}

// TestSignStoreForgetsCaches: signing a package in a store removes
// pkgindex's fragment and digest of it and the merge state (the package
// keeps its time, and a re-signed one can keep its size: pkgindex must
// not take them for unchanged).
func TestSignStoreForgetsCaches(t *testing.T) {
	x := testX509(t)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := memstore.New("forget")
	put := func(name string, data []byte) {
		if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range builtSet[:2] {
		put("All/"+p.name+".tgz", builtPackage(t, i))
	}
	put("index/merge-state.json", []byte("{}\n"))
	for _, p := range builtSet[:2] {
		put("index/"+p.name+".pkginfo", []byte("cached\n"))
		put("index/"+p.name+".sha512", []byte("cached\n"))
	}
	rep, err := SignStore(ctx, st, s, Options{TempDir: t.TempDir()})
	if err != nil || rep.Signed != 2 {
		t.Fatalf("%v %+v", err, rep)
	}
	var left []string
	st.List(ctx, "index/", func(i store.Info) error { left = append(left, i.Name); return nil })
	if len(left) != 0 {
		t.Errorf("left in index/: %v", left)
	}
	// Nothing changed, nothing removed: a re-run skips.
	put("index/merge-state.json", []byte("{}\n"))
	if rep, err := SignStore(ctx, st, s, Options{TempDir: t.TempDir()}); err != nil || rep.Skipped != 2 {
		t.Fatalf("%v %+v", err, rep)
	}
	if _, err := st.Stat(ctx, "index/merge-state.json"); err != nil {
		t.Errorf("a run that signed nothing removed the merge state: %v", err)
	}
}
