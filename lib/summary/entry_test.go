package summary

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// fluxer loads the real 2022 metadata and the real pkg_summary generated
// from the same packages by pkg_install.
func fluxer(t *testing.T) (map[string]map[string][]byte, map[string]*Record, []*Record) {
	t.Helper()
	mdPath := testenv.SharedData(t, "pkg_summary/fluxer-2022-metadata.tar.gz")
	sumPath := testenv.SharedData(t, "pkg_summary/fluxer-2022-pkg_summary.txt")
	f, err := os.Open(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := pkgtest.LoadMetadataTarball(f)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := os.Open(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	recs, err := Parse(sumPath, sf)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Record{}
	for _, r := range recs {
		byName[r.PkgName()] = r
	}
	if len(md) != 199 || len(byName) != 199 {
		t.Fatalf("fluxer data: %d metadata dirs, %d summary entries; want 199 each", len(md), len(byName))
	}
	return md, byName, recs
}

// compareEntry checks got (our entry) against the real record, line by
// line, and returns the number of mismatches reported.
func compareEntry(t *testing.T, pkg string, got []byte, want *Record) {
	t.Helper()
	gotRecs, err := Parse(pkg, bytes.NewReader(got))
	if err != nil || len(gotRecs) != 1 {
		t.Errorf("%s: our entry does not parse as one record (%v):\n%s", pkg, err, got)
		return
	}
	if !bytes.HasSuffix(got, []byte("\n\n")) || bytes.HasSuffix(got, []byte("\n\n\n")) {
		t.Errorf("%s: entry does not end with exactly one blank line", pkg)
	}
	g, w := gotRecs[0].Fields, want.Fields
	for i := 0; i < len(g) || i < len(w); i++ {
		switch {
		case i >= len(g):
			t.Errorf("%s: line %d missing: want %s=%s", pkg, i+1, w[i].Name, w[i].Value)
			return
		case i >= len(w):
			t.Errorf("%s: extra line %d: %s=%s", pkg, i+1, g[i].Name, g[i].Value)
			return
		case g[i] != w[i]:
			t.Errorf("%s: line %d: got %s=%s, want %s=%s", pkg, i+1, g[i].Name, g[i].Value, w[i].Name, w[i].Value)
			return
		}
	}
}

// TestEntryFluxerMeta regenerates every real entry from its metadata.
func TestEntryFluxerMeta(t *testing.T) {
	md, want, _ := fluxer(t)
	for pkg, files := range md {
		w := want[pkg]
		if w == nil {
			t.Errorf("%s: no entry in the real pkg_summary", pkg)
			continue
		}
		fn, _ := w.Get("FILE_NAME")
		fsz, _ := w.Get("FILE_SIZE")
		size, err := strconv.ParseInt(fsz, 10, 64)
		if err != nil {
			t.Fatalf("%s: FILE_SIZE %q: %v", pkg, fsz, err)
		}
		m := &pkgfile.Meta{Files: files}
		if m.PkgName() != pkg {
			t.Errorf("PkgName() = %q, want %q", m.PkgName(), pkg)
		}
		compareEntry(t, pkg, Entry(m, fn, size), w)
	}
}

// TestEntryFluxerPackages builds real .tgz files (metadata first, then a
// payload) and regenerates the entries from the files, FILE_SIZE aside.
// A few are built by bsdtar (libarchive, as pkg_create is) rather than by
// Go's archive/tar.
func TestEntryFluxerPackages(t *testing.T) {
	md, want, _ := fluxer(t)
	dir := t.TempDir()
	n := 0
	for pkg, files := range md {
		n++
		if testing.Short() && n > 30 {
			break
		}
		data, err := pkgtest.Package(files, pkgfile.Gzip, 20000+n*97, uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, pkg+".tgz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := EntryFromFile(p)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		wantSize := "FILE_SIZE=" + strconv.Itoa(len(data)) + "\n"
		if !bytes.Contains(got, []byte(wantSize)) {
			t.Errorf("%s: entry lacks %q", pkg, wantSize)
		}
		compareEntry(t, pkg, fixSize(got, want[pkg]), want[pkg])
	}
}

func TestEntryBsdtarPackages(t *testing.T) {
	bsdtar := testenv.Program(t, "bsdtar")
	md, want, _ := fluxer(t)
	dir := t.TempDir()
	n := 0
	for pkg, files := range md {
		if n++; n > 12 {
			break
		}
		src := filepath.Join(dir, "src", pkg)
		args := []string{"-czf", filepath.Join(dir, pkg+".tgz"), "--format=pax", "-C", src}
		for _, m := range pkgtest.MetaMembers(files) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, m.Name), m.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, m.Name)
		}
		if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "bin", "tool"), bytes.Repeat([]byte("payload "), 5000), 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, "bin/tool")
		if out, err := exec.Command(bsdtar, args...).CombinedOutput(); err != nil {
			t.Fatalf("bsdtar: %v\n%s", err, out)
		}
		got, err := EntryFromFileOpts(filepath.Join(dir, pkg+".tgz"), EntryOptions{Cksum: true})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := exec.Command("sha256sum", filepath.Join(dir, pkg+".tgz")).Output()
		if err != nil {
			t.Fatal(err)
		}
		cks := "FILE_CKSUM=sha256 " + strings.Fields(string(sum))[0] + "\n"
		if !bytes.Contains(got, []byte(cks)) {
			t.Errorf("%s: entry lacks %q:\n%s", pkg, cks, got)
		}
		got = bytes.Replace(got, []byte(cks), nil, 1)
		compareEntry(t, pkg, fixSize(got, want[pkg]), want[pkg])
	}
}

// fixSize replaces our FILE_SIZE line (the payload differs from the real
// package's) by the real one.
func fixSize(entry []byte, want *Record) []byte {
	ws, _ := want.Get("FILE_SIZE")
	lines := strings.SplitAfter(string(entry), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "FILE_SIZE=") {
			lines[i] = "FILE_SIZE=" + ws + "\n"
		}
	}
	return []byte(strings.Join(lines, ""))
}
