package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
	"github.com/pkgbulk/pkgbulk/lib/summary"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// fixture is a package store built from the real fluxer metadata.
type fixture struct {
	dir   string
	names []string // PKGNAMEs, sorted by file name
	real  map[string]*summary.Record
}

func loadFluxer(t *testing.T) (map[string]map[string][]byte, map[string]*summary.Record) {
	t.Helper()
	f, err := os.Open(testenv.SharedData(t, "pkg_summary/fluxer-2022-metadata.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := pkgtest.LoadMetadataTarball(f)
	if err != nil {
		t.Fatal(err)
	}
	sp := testenv.SharedData(t, "pkg_summary/fluxer-2022-pkg_summary.txt")
	sf, err := os.Open(sp)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	recs, err := summary.Parse(sp, sf)
	if err != nil {
		t.Fatal(err)
	}
	real := map[string]*summary.Record{}
	for _, r := range recs {
		real[r.PkgName()] = r
	}
	return md, real
}

// newFixture writes n fluxer packages to dir/All (compressions rotate
// through gzip, bzip2, xz, zstd and none).
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	md, real := loadFluxer(t)
	var names []string
	for name := range md {
		names = append(names, name)
	}
	sort.Strings(names)
	names = names[:n]
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "All"), 0o755); err != nil {
		t.Fatal(err)
	}
	comps := []pkgfile.Compression{pkgfile.Gzip, pkgfile.Bzip2, pkgfile.XZ, pkgfile.Zstd, pkgfile.None}
	for i, name := range names {
		data, err := pkgtest.Package(md[name], comps[i%len(comps)], 5000+i*300, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "All", name+".tgz"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{dir: dir, names: names, real: real}
}

// expected is what pbulk would publish: pkg_info -X over the sorted files.
func (f *fixture) expected(t *testing.T, skip ...string) []byte {
	t.Helper()
	var files []string
	for _, n := range f.names {
		if !slices.Contains(skip, n) {
			files = append(files, n+".tgz")
		}
	}
	sort.Strings(files)
	var b bytes.Buffer
	for _, fn := range files {
		e, err := summary.EntryFromFile(filepath.Join(f.dir, "All", fn))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(e)
	}
	return b.Bytes()
}

// upload puts the fixture's packages into s.
func (f *fixture) upload(t *testing.T, s store.Store) {
	t.Helper()
	for _, n := range f.names {
		data, err := os.ReadFile(filepath.Join(f.dir, "All", n+".tgz"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(context.Background(), "All/"+n+".tgz", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
}

// s3Fixture returns n fluxer packages uploaded to a store in a real S3
// server (versitygw) that the test starts on loopback.
func s3Fixture(t *testing.T, n int) (*fixture, store.Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an S3 server")
	}
	f := newFixture(t, n)
	srv := storetest.StartS3(t)
	s := openStore(t, srv.URL("repo"), storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: srv.Endpoint, S3Region: srv.Region}, S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey})
	f.upload(t, s)
	return f, s
}

func decompress(t *testing.T, prog, path string) []byte {
	t.Helper()
	out, err := exec.Command(testenv.Program(t, prog), "-dc", path).Output()
	if err != nil {
		t.Fatalf("%s -dc %s: %v", prog, path, err)
	}
	return out
}

func openStore(t *testing.T, url string, o storeopen.Options) store.Store {
	t.Helper()
	s, err := storeopen.Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMergeFileStore(t *testing.T) {
	f := newFixture(t, 25)
	s := openStore(t, "file://"+f.dir, storeopen.Options{})
	ctx := context.Background()

	// A few fragments exist already, as pkgrun writes them.
	for _, n := range f.names[:5] {
		e, err := summary.EntryFromFile(filepath.Join(f.dir, "All", n+".tgz"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "index/"+n+".pkginfo", bytes.NewReader(e), int64(len(e))); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Merge(ctx, s, Options{SHA512: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 25 || res.FromFragments != 5 || res.Computed != 20 || len(res.Failed) != 0 {
		t.Errorf("result %+v", res)
	}
	want := f.expected(t)
	if got, err := os.ReadFile(filepath.Join(f.dir, "All", "pkg_summary")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the plain pkg_summary differs from pkg_info -X over the sorted files (%v)", err)
	}
	for prog, obj := range map[string]string{"gzip": "pkg_summary.gz", "bzip2": "pkg_summary.bz2", "xz": "pkg_summary.xz"} {
		if got := decompress(t, prog, filepath.Join(f.dir, "All", obj)); !bytes.Equal(got, want) {
			t.Errorf("%s differs from pkg_info -X over the sorted files", obj)
		}
		// pkgin reads pkg_summary through libarchive: so does bsdcat.
		out, err := exec.Command(testenv.Program(t, "bsdcat"), filepath.Join(f.dir, "All", obj)).Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Errorf("bsdcat %s: %v, or output differs", obj, err)
		}
	}
	// Every entry matches the real pkg_install output but for FILE_SIZE.
	recs, err := summary.Parse("merged", bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		realRec := f.real[r.PkgName()]
		for i, fl := range r.Fields {
			if fl.Name != "FILE_SIZE" && (i >= len(realRec.Fields) || realRec.Fields[i] != fl) {
				t.Errorf("%s: line %d %s=%s differs from the real entry", r.PkgName(), i+1, fl.Name, fl.Value)
				break
			}
		}
	}
	checkSHA512(t, f.dir)

	// The second merge reads only fragments (written back by the first).
	res, err = Merge(ctx, s, Options{SHA512: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.FromFragments != 25 || res.Computed != 0 {
		t.Errorf("second merge: %+v", res)
	}
	if got := decompress(t, "gzip", filepath.Join(f.dir, "All", "pkg_summary.gz")); !bytes.Equal(got, want) {
		t.Error("second merge changed the summary")
	}
	checkSHA512(t, f.dir)
}

// checkSHA512 compares SHA512.bz2 with sha512sum over the same files.
func checkSHA512(t *testing.T, dir string) {
	t.Helper()
	got := decompress(t, "bzip2", filepath.Join(dir, "SHA512.bz2"))
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		p, _, ok := strings.Cut(strings.TrimPrefix(l, "SHA512 ("), ") = ")
		if !ok {
			t.Fatalf("bad SHA512 line %q", l)
		}
		files = append(files, p)
	}
	if !sort.StringsAreSorted(files) {
		t.Error("SHA512.bz2 is not sorted by path")
	}
	cmd := exec.Command(testenv.Program(t, "sha512sum"), files...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		sum, path, _ := strings.Cut(l, "  ")
		fmt.Fprintf(&want, "SHA512 (%s) = %s\n", path, sum)
	}
	if string(got) != want.String() {
		t.Errorf("SHA512.bz2:\n%s\nsha512sum says:\n%s", got, want.String())
	}
	var all []string
	ents, _ := os.ReadDir(filepath.Join(dir, "All"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tgz") || e.Name() == "pkg_summary" || strings.HasPrefix(e.Name(), "pkg_summary.") {
			all = append(all, "All/"+e.Name())
		}
	}
	sort.Strings(all)
	if !slices.Equal(all, files) {
		t.Errorf("SHA512.bz2 lists %v, want %v", files, all)
	}
}

// TestMergeStaleAndBroken covers fragments that must not be used and
// packages that cannot be read.
// listedStore hides the file store's ReadFileInfo (and Unwrap): merge
// then lists index/ as it does on remote stores.
type listedStore struct{ store.Store }

func TestMergeStaleAndBroken(t *testing.T) {
	t.Run("index read directly", func(t *testing.T) { testMergeStaleAndBroken(t, false) })
	t.Run("index listed", func(t *testing.T) { testMergeStaleAndBroken(t, true) })
}

func testMergeStaleAndBroken(t *testing.T, listed bool) {
	f := newFixture(t, 12)
	s := openStore(t, f.dir, storeopen.Options{})
	if listed {
		s = listedStore{s}
	}
	if ok := asStatReader(s) != nil; ok == listed {
		t.Fatalf("store %T: statReader %v", s, ok)
	}
	ctx := context.Background()
	all := func(n string) string { return filepath.Join(f.dir, "All", n+".tgz") }
	frag := func(n string) string { return filepath.Join(f.dir, "index", n+".pkginfo") }
	if _, err := Merge(ctx, s, Options{Formats: []string{"gz"}}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)

	// 0: fragment older than its package (package rebuilt).
	if err := os.Chtimes(frag(f.names[0]), past, past); err != nil {
		t.Fatal(err)
	}
	// 1: package signed after its fragment was written, with the same
	// mtime: only the size tells.
	inner, err := os.ReadFile(all(f.names[1]))
	if err != nil {
		t.Fatal(err)
	}
	signed := bsdAr([2]string{"+PKG_HASH", "pkgsrc signature\n"}, [2]string{"+PKG_GPG_SIGNATURE", "sig"},
		[2]string{f.names[1] + ".tmp.tgz", string(inner)})
	if err := os.WriteFile(all(f.names[1]), signed, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(frag(f.names[1]))
	if err := os.Chtimes(all(f.names[1]), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	// 2: a garbage fragment.
	if err := os.WriteFile(frag(f.names[2]), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// 3: a corrupt package (and no fragment).
	os.Remove(frag(f.names[3]))
	if err := os.WriteFile(all(f.names[3]), []byte("not a package"), 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := Merge(ctx, s, Options{Formats: []string{"gz"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 11 || res.Computed != 3 || res.Stale != 3 || len(res.Failed) != 1 || res.Failed[0].PkgName != f.names[3] {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(res.Failed[0].Error, "All/"+f.names[3]+".tgz") {
		t.Errorf("failure does not name the file: %q", res.Failed[0].Error)
	}
	got := decompress(t, "gzip", filepath.Join(f.dir, "All", "pkg_summary.gz"))
	if want := f.expected(t, f.names[3]); !bytes.Equal(got, want) {
		t.Error("summary differs from pkg_info -X over the readable files")
	}
	if !bytes.Contains(got, []byte(fmt.Sprintf("FILE_NAME=%s.tgz\nFILE_SIZE=%d\n", f.names[1], len(signed)))) {
		t.Error("the signed package's entry lacks its new FILE_SIZE")
	}
}

func TestMergeSuccessExclude(t *testing.T) {
	f := newFixture(t, 8)
	s := openStore(t, f.dir, storeopen.Options{})
	var out bytes.Buffer
	success := []string{f.names[0], f.names[2], f.names[3], "missing-1.0"}
	res, err := Merge(context.Background(), s, Options{
		Success: success, Exclude: map[string]bool{f.names[3]: true}, Output: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 2 || len(res.Failed) != 1 || res.Failed[0].PkgName != "missing-1.0" || res.Excluded != 6 {
		t.Errorf("result %+v", res)
	}
	want := f.expected(t, f.names[1], f.names[3], f.names[4], f.names[5], f.names[6], f.names[7])
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("--stdout output:\n%s\nwant:\n%s", out.Bytes(), want)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "All", "pkg_summary.gz")); err == nil {
		t.Error("Output set, yet pkg_summary.gz was published")
	}
	if _, err := Merge(context.Background(), openStore(t, t.TempDir(), storeopen.Options{}), Options{}); !errors.Is(err, ErrNoPackages) {
		t.Errorf("empty store: %v", err)
	}
}

// TestMergeSortOrder: entries follow file names, not PKGNAMEs ("foo-1.0-x"
// sorts before "foo-1.0" as file names since '-' < '.').
func TestMergeSortOrder(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "All"), 0o755)
	for _, n := range []string{"foo-1.0", "foo-1.0-x", "Zed-1", "foo-1.0nb1"} {
		data, err := pkgtest.Package(map[string][]byte{
			"+CONTENTS": []byte("@name " + n + "\n"), "+COMMENT": []byte("c\n"), "+DESC": []byte("d\n"),
		}, pkgfile.Gzip, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "All", n+".tgz"), data, 0o644)
	}
	var out bytes.Buffer
	if _, err := Merge(context.Background(), openStore(t, dir, storeopen.Options{}), Options{Output: &out}); err != nil {
		t.Fatal(err)
	}
	recs, _ := summary.Parse("out", &out)
	var got []string
	for _, r := range recs {
		got = append(got, r.PkgName())
	}
	if want := []string{"Zed-1", "foo-1.0-x", "foo-1.0", "foo-1.0nb1"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// TestPublishAtomic reads pkg_summary.gz and SHA512.bz2 in a loop while
// merges replace them: every read is a complete file of one version, and
// SHA512.bz2 read first always matches the pkg_summary.gz read after it
// once both come from the same finished merge.
func TestPublishAtomic(t *testing.T) {
	f := newFixture(t, 10)
	s := openStore(t, f.dir, storeopen.Options{})
	ctx := context.Background()
	if _, err := Merge(ctx, s, Options{SHA512: true, Formats: []string{"gz", "bz2"}}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(filepath.Join(f.dir, "All", "pkg_summary.gz"))
			if err != nil {
				errs <- err
				return
			}
			cmd := exec.Command("gzip", "-t")
			cmd.Stdin = bytes.NewReader(b)
			if err := cmd.Run(); err != nil {
				errs <- fmt.Errorf("a reader saw a broken pkg_summary.gz (%d bytes): %v", len(b), err)
				return
			}
			reads.Add(1)
		}
	}()
	for i := 0; i < 6; i++ {
		// Each round changes a package so the summary really changes.
		n := f.names[i%len(f.names)]
		md := map[string][]byte{"+CONTENTS": []byte("@name " + n + "\n"), "+COMMENT": []byte(fmt.Sprintf("round %d\n", i)), "+DESC": []byte("d\n")}
		data, _ := pkgtest.Package(md, pkgfile.Gzip, 100*i, 1)
		if err := s.Put(ctx, "All/"+n+".tgz", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if _, err := Merge(ctx, s, Options{SHA512: true, Formats: []string{"gz", "bz2"}}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never ran")
	}
	checkSHA512(t, f.dir)
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Join(f.dir, "All"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), store.TempPrefix) {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestMergeSFTP runs a merge against a real sshd on loopback.
func TestMergeSFTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd")
	}
	srv := storetest.StartSSHD(t)
	f := newFixture(t, 6)
	o := storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: srv.IdentityFile, KnownHosts: srv.KnownHosts}}
	s := openStore(t, srv.URL("repo"), o)
	ctx := context.Background()
	f.upload(t, s)
	res, err := Merge(ctx, s, Options{SHA512: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 6 || res.Computed != 6 {
		t.Errorf("result %+v", res)
	}
	rc, err := s.Get(ctx, "All/pkg_summary.gz")
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := io.ReadAll(rc)
	rc.Close()
	tmp := filepath.Join(t.TempDir(), "s.gz")
	os.WriteFile(tmp, gz, 0o644)
	if got := decompress(t, "gzip", tmp); !bytes.Equal(got, f.expected(t)) {
		t.Error("pkg_summary.gz over sftp differs")
	}
	res, err = Merge(ctx, s, Options{SHA512: true})
	if err != nil || res.FromFragments != 6 {
		t.Errorf("second merge over sftp: %+v %v", res, err)
	}
}

// bsdAr writes a BSD ar archive like libarchive's ar_bsd writer.
func bsdAr(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range members {
		name, data := m[0], m[1]
		if len(name) > 16 {
			fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", fmt.Sprintf("#1/%d", len(name)), 1700000000, 0, 0, 0o100644, len(name)+len(data))
			b.WriteString(name)
			data = name + data
		} else {
			fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, 1700000000, 0, 0, 0o100644, len(data))
		}
		b.WriteString(m[1])
		if len(data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// TestMergeUnchanged: a merge that would publish the same summary
// rewrites nothing, unless forced; a lost file is republished.
func TestMergeUnchanged(t *testing.T) {
	f := newFixture(t, 5)
	s := openStore(t, f.dir, storeopen.Options{})
	ctx := context.Background()
	o := Options{SHA512: true}
	if _, err := Merge(ctx, s, o); err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(f.dir, "All", "pkg_summary.gz")
	before, _ := os.Stat(gz)
	res, err := Merge(ctx, s, o)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(gz)
	if !res.Unchanged || len(res.Published) != 0 || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("unchanged merge: %+v, mtime %v -> %v", res, before.ModTime(), after.ModTime())
	}
	os.Remove(filepath.Join(f.dir, "All", "pkg_summary.xz"))
	os.Remove(filepath.Join(f.dir, "SHA512.bz2"))
	res, err = Merge(ctx, s, o)
	if err != nil || res.Unchanged || len(res.Published) != 5 {
		t.Errorf("after losing pkg_summary.xz: %+v %v", res, err)
	}
	checkSHA512(t, f.dir)
	o.Force = true
	res, err = Merge(ctx, s, o)
	if err != nil || res.Unchanged || len(res.Published) != 5 {
		t.Errorf("forced: %+v %v", res, err)
	}
}

// TestMergeS3 runs a merge against a real S3 server (versitygw) on
// loopback.
func TestMergeS3(t *testing.T) {
	f, s := s3Fixture(t, 6)
	ctx := context.Background()
	res, err := Merge(ctx, s, Options{SHA512: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 6 || res.Computed != 6 || len(res.Published) != 5 {
		t.Errorf("result %+v", res)
	}
	rc, err := s.Get(ctx, "All/pkg_summary.bz2")
	if err != nil {
		t.Fatal(err)
	}
	bz, _ := io.ReadAll(rc)
	rc.Close()
	tmp := filepath.Join(t.TempDir(), "s.bz2")
	os.WriteFile(tmp, bz, 0o644)
	if got := decompress(t, "bzip2", tmp); !bytes.Equal(got, f.expected(t)) {
		t.Error("pkg_summary.bz2 over S3 differs")
	}
	res, err = Merge(ctx, s, Options{SHA512: true})
	if err != nil || res.FromFragments != 6 || !res.Unchanged {
		t.Errorf("second merge over S3: %+v %v", res, err)
	}
}

// TestMergeAllBroken: when no package can be read, nothing is published
// (an empty summary would empty the repository for its clients).
func TestMergeAllBroken(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "All"), 0o755)
	os.WriteFile(filepath.Join(dir, "All", "a-1.tgz"), []byte("junk"), 0o644)
	res, err := Merge(context.Background(), openStore(t, dir, storeopen.Options{}), Options{})
	if err == nil || res == nil || len(res.Failed) != 1 {
		t.Fatalf("res %+v, err %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "All", "pkg_summary.gz")); err == nil {
		t.Error("an empty pkg_summary.gz was published")
	}
}

// A summary larger than a bzip2 and an xz stream's input is published as
// several streams of each (multistream): every reader, libarchive's
// included, must read each file back as the plain summary.
func TestMergeMultiStream(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses 6 MB three ways")
	}
	dir := fragmentStore(t, 4000)
	s := openStore(t, "file://"+dir, storeopen.Options{})
	ctx := context.Background()
	res, err := Merge(ctx, s, Options{Formats: []string{"plain", "gz", "bz2", "xz", "zst"}, SHA512: false})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packages != 4000 || res.FromFragments != 4000 {
		t.Errorf("result %+v", res)
	}
	want, err := os.ReadFile(filepath.Join(dir, "All", "pkg_summary"))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(want)) != res.SummaryBytes || len(want) < 5<<20 {
		t.Fatalf("plain summary: %d bytes (result says %d); the test needs more than one xz stream", len(want), res.SummaryBytes)
	}
	// The plain summary is the sorted fragments, untouched.
	var names []string
	for i := range 4000 {
		names = append(names, fmt.Sprintf("pkg%05d-%d.%d", i, i%7, i%13))
	}
	sort.Strings(names)
	var cat []byte
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, "index", n+".pkginfo"))
		if err != nil {
			t.Fatal(err)
		}
		cat = append(cat, b...)
	}
	if !bytes.Equal(cat, want) {
		t.Fatal("All/pkg_summary is not the fragments in file name order")
	}
	for _, c := range []struct {
		obj, prog string
		magic     []byte
		streams   int
	}{
		{"pkg_summary.gz", "gzip", []byte{0x1f, 0x8b, 8}, 1},
		{"pkg_summary.bz2", "bzip2", []byte("BZh9"), 3},
		{"pkg_summary.xz", "xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}, 2},
		{"pkg_summary.zst", "zstd", nil, 1},
	} {
		path := filepath.Join(dir, "All", c.obj)
		if got := decompress(t, c.prog, path); !bytes.Equal(got, want) {
			t.Errorf("%s -dc %s: %d bytes, differs from the plain summary", c.prog, c.obj, len(got))
		}
		out, err := exec.Command(testenv.Program(t, "bsdcat"), path).Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Errorf("bsdcat %s: %v, or output differs", c.obj, err)
		}
		got, err := getDecompressed(ctx, s, "All/"+c.obj) // Go's readers
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Go reader of %s: %v, or output differs", c.obj, err)
		}
		if c.magic != nil {
			b, _ := os.ReadFile(path)
			if n := bytes.Count(b, c.magic); n < c.streams {
				t.Errorf("%s: %d streams, want %d or more", c.obj, n, c.streams)
			}
		}
	}
	// Unchanged is judged from the multi-stream files too.
	res, err = Merge(ctx, s, Options{Formats: []string{"plain", "gz", "bz2", "xz", "zst"}})
	if err != nil || !res.Unchanged {
		t.Errorf("second merge: %+v, %v; want unchanged", res, err)
	}
}

// Without Force, the summary is compared with the published one while it
// is read, and compression starts at the first difference: wherever the
// difference is (or when one summary is a prefix of the other), the new
// summary must be published, and an unchanged one must not.
func TestMergeChangedSummary(t *testing.T) {
	ctx := context.Background()
	name := func(i int) string { return fmt.Sprintf("pkg%05d-%d.%d", i, i%7, i%13) }
	recomment := func(t *testing.T, dir string, i int) {
		p := filepath.Join(dir, "index", name(i)+".pkginfo")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("COMMENT=Package"), []byte("COMMENT=Changed package"), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"first entry", func(t *testing.T, dir string) { recomment(t, dir, 0) }},
		{"middle entry", func(t *testing.T, dir string) { recomment(t, dir, 150) }},
		{"last entry", func(t *testing.T, dir string) { recomment(t, dir, 299) }},
		{"last package removed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "All", name(299)+".tgz"))
			os.Remove(filepath.Join(dir, "index", name(299)+".pkginfo"))
		}},
		{"package added at the end", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "All", "zz-1.tgz"), []byte("x"), 0o644)
			os.WriteFile(filepath.Join(dir, "index", "zz-1.pkginfo"), []byte("PKGNAME=zz-1\nFILE_NAME=zz-1.tgz\nFILE_SIZE=1\n"), 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fragmentStore(t, 300)
			s := openStore(t, dir, storeopen.Options{})
			o := Options{Formats: []string{"gz", "xz"}}
			if _, err := Merge(ctx, s, o); err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir)
			var want bytes.Buffer
			if _, err := Merge(ctx, s, Options{Output: &want}); err != nil {
				t.Fatal(err)
			}
			res, err := Merge(ctx, s, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Unchanged || len(res.Published) != 2 {
				t.Errorf("changed summary: %+v", res)
			}
			for _, c := range [][2]string{{"gzip", "pkg_summary.gz"}, {"xz", "pkg_summary.xz"}} {
				if got := decompress(t, c[0], filepath.Join(dir, "All", c[1])); !bytes.Equal(got, want.Bytes()) {
					t.Errorf("%s: not the new summary", c[1])
				}
			}
			if res, err := Merge(ctx, s, o); err != nil || !res.Unchanged {
				t.Errorf("merge after publishing: %+v, %v; want unchanged", res, err)
			}
		})
	}
}
