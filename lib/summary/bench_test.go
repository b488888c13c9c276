package summary

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
)

// benchPackage writes a 2 MB-payload package with realistic metadata.
func benchPackage(b *testing.B) (string, *pkgfile.Meta) {
	b.Helper()
	files := map[string][]byte{
		"+CONTENTS":   bytes.Repeat([]byte("share/doc/foo/file.txt\n@comment MD5:0123456789abcdef0123456789abcdef\n"), 400),
		"+COMMENT":    []byte("A benchmark package\n"),
		"+DESC":       bytes.Repeat([]byte("Some description text of a typical length.\n"), 10),
		"+BUILD_INFO": bytes.Repeat([]byte("REQUIRES=/usr/pkg/lib/libfoo.so.1\nCC_VERSION=gcc-12\n"), 40),
		"+SIZE_PKG":   []byte("123456\n"),
	}
	files["+CONTENTS"] = append([]byte("@name bench-1.0\n@pkgdep dep>=1\n"), files["+CONTENTS"]...)
	data, err := pkgtest.Package(files, pkgfile.Gzip, 2<<20, 1)
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "bench-1.0.tgz")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p, &pkgfile.Meta{Files: files}
}

// BenchmarkEntryFromFile: MB/s counts the whole package file, although
// only its metadata is read.
func BenchmarkEntryFromFile(b *testing.B) {
	p, _ := benchPackage(b)
	st, _ := os.Stat(p)
	b.SetBytes(st.Size())
	for b.Loop() {
		if _, err := EntryFromFile(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEntryFromFileCksum reads every byte (FILE_CKSUM).
func BenchmarkEntryFromFileCksum(b *testing.B) {
	p, _ := benchPackage(b)
	st, _ := os.Stat(p)
	b.SetBytes(st.Size())
	for b.Loop() {
		if _, err := EntryFromFileOpts(p, EntryOptions{Cksum: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEntry(b *testing.B) {
	_, m := benchPackage(b)
	var buf []byte
	for b.Loop() {
		buf = AppendEntry(buf[:0], m, File{Name: "bench-1.0.tgz", Size: 1})
	}
	b.SetBytes(int64(len(buf)))
}
