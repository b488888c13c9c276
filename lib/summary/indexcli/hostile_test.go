package indexcli

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
)

// hostileFiles writes packages of a few hundred KB or less that ask for
// gigabytes when read naively, and returns their paths with what the
// message about each must say.
func hostileFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	// Every metadata file pkg_install knows, 15 MiB each: 210 MiB of
	// metadata in a 200 KB package. Each is within the per-file limit;
	// together they are far beyond the total.
	meta := map[string][]byte{}
	run := bytes.Repeat([]byte("a"), 15<<20)
	for _, n := range []string{"+CONTENTS", "+COMMENT", "+DESC", "+INSTALL", "+DEINSTALL", "+DISPLAY",
		"+MTREE_DIRS", "+BUILD_VERSION", "+BUILD_INFO", "+SIZE_PKG", "+SIZE_ALL", "+PRESERVE", "+REQUIRED_BY", "+INSTALLED_INFO"} {
		meta[n] = run
	}
	meta["+CONTENTS"] = append([]byte("@name meta-1\n"), run...)
	var b bytes.Buffer
	if err := pkgtest.Build(&b, pkgfile.Gzip, append(pkgtest.MetaMembers(meta), pkgtest.Member{Name: "bin/x", Data: []byte("x")})); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "meta-1.tgz")
	os.WriteFile(p, b.Bytes(), 0o644)
	files[p] = "brings the metadata files to"

	// An xz package whose block asks for a 3 GiB dictionary.
	b.Reset()
	if err := pkgtest.Build(&b, pkgfile.XZ, pkgtest.MetaMembers(map[string][]byte{
		"+CONTENTS": []byte("@name xz-1\n"), "+COMMENT": []byte("c\n"), "+DESC": []byte("d\n")})); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	hs := (int(data[12]) + 1) * 4
	h := data[12 : 12+hs]
	i := bytes.Index(h, []byte{0x21, 0x01})
	h[i+2] = 39
	binary.LittleEndian.PutUint32(h[hs-4:], crc32.ChecksumIEEE(h[:hs-4]))
	p = filepath.Join(dir, "xz-1.tgz")
	os.WriteFile(p, data, 0o644)
	files[p] = "dictionary of 3072 MiB"

	// A signed container whose +PKG_HASH declares a gigabyte.
	p = filepath.Join(dir, "hash-1.tgz")
	os.WriteFile(p, []byte(fmt.Sprintf("!<arch>\n%-16s%-12d%-6d%-6d%-8o%-10d`\nxx", "+PKG_HASH", 0, 0, 0, 0o100644, 1000000000)), 0o644)
	files[p] = "+PKG_HASH"
	return files
}

// TestFragmentHostile (issue 9, point 8): "pkgindex fragment" reports
// each hostile package as a bad package, naming the file and the member,
// prints the good ones, exits 1, and allocates a bounded amount doing it
// (runtime.MemStats.TotalAlloc before and after: an upper bound of the
// peak). It used to take gigabytes.
func TestFragmentHostile(t *testing.T) {
	dir := t.TempDir()
	good := writePkgs(t, dir, "good-1")[0]
	files := hostileFiles(t, dir)
	args := []string{"fragment", good}
	for p := range files {
		args = append(args, p)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, out, errs := run(t, args...)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB; stderr:\n%s", alloc>>20, errs)
	if code != 1 || !strings.Contains(out, "PKGNAME=good-1\n") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for p, why := range files {
		if !strings.Contains(errs, "pkgindex: "+p+": ") || !strings.Contains(errs, why) {
			t.Errorf("stderr does not report %s (%q)", p, why)
		}
	}
	// The largest legitimate cost: pkgfile.MaxMetaTotal of metadata, the
	// decoders' buffers, and slack.
	if bound := uint64(pkgfile.MaxMetaTotal + 16<<20); alloc > bound {
		t.Errorf("allocated %d MiB for %d packages (bound %d MiB)", alloc>>20, len(files)+1, bound>>20)
	}
}

// TestMergeReportsBadPackages (issue 9, points 7 and 9): "pkgindex merge"
// over a store with files that are not packages, or are packages under
// another name or without one, names each on stderr with the reason,
// publishes the rest and exits 1.
func TestMergeReportsBadPackages(t *testing.T) {
	dir := t.TempDir()
	writePkgs(t, dir, "a-1", "b-2")
	all := filepath.Join(dir, "All")
	bad := map[string]string{
		"armagic-1": "signed container without members",
		"noname-1":  "+CONTENTS has no @name",
		"other-1":   "says @name a-1, the file name says other-1",
	}
	os.WriteFile(filepath.Join(all, "armagic-1.tgz"), []byte("!<arch>\n"), 0o644)
	pkgs := writePkgs(t, t.TempDir(), "a-1")
	a, _ := os.ReadFile(pkgs[0])
	os.WriteFile(filepath.Join(all, "other-1.tgz"), a, 0o644)
	var b bytes.Buffer
	pkgtest.Build(&b, pkgfile.Gzip, pkgtest.MetaMembers(map[string][]byte{
		"+CONTENTS": []byte("@comment nothing\n"), "+COMMENT": []byte("c\n"), "+DESC": []byte("d\n")}))
	os.WriteFile(filepath.Join(all, "noname-1.tgz"), b.Bytes(), 0o644)

	code, _, errs := run(t, "merge", "--store", dir, "--formats", "plain")
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, errs)
	}
	for n, why := range bad {
		if !strings.Contains(errs, "All/"+n+".tgz") || !strings.Contains(errs, why) {
			t.Errorf("stderr does not report All/%s.tgz (%q):\n%s", n, why, errs)
		}
	}
	sum, err := os.ReadFile(filepath.Join(all, "pkg_summary"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(sum), "PKGNAME="); got != 2 || !strings.Contains(string(sum), "FILE_NAME=a-1.tgz\n") ||
		!strings.Contains(string(sum), "FILE_NAME=b-2.tgz\n") {
		t.Errorf("published summary:\n%s", sum)
	}
	// The same entry twice (a-1 under two file names) is what pbulk
	// would have published; refusing other-1 leaves one.
	if strings.Count(string(sum), "PKGNAME=a-1\n") != 1 {
		t.Errorf("PKGNAME=a-1 is not once in the summary:\n%s", sum)
	}
}

// TestFragmentNoName: an entry without PKGNAME is not printed.
func TestFragmentNoName(t *testing.T) {
	var b bytes.Buffer
	pkgtest.Build(&b, pkgfile.Gzip, pkgtest.MetaMembers(map[string][]byte{
		"+CONTENTS": []byte("@comment nothing\nbin/x\n"), "+COMMENT": []byte("c\n"), "+DESC": []byte("d\n")}))
	p := filepath.Join(t.TempDir(), "noname-1.tgz")
	os.WriteFile(p, b.Bytes(), 0o644)
	code, out, errs := run(t, "fragment", p)
	if code != 1 || out != "" || !strings.Contains(errs, p+": invalid binary package: +CONTENTS has no @name") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
