package pkgfile_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// hostile is a package built to make a reader spend memory: small on
// disk, huge when read naively.
type hostile struct {
	name string
	data []byte
	want []string // the error mentions each
}

// HostilePackages returns packages that break one limit each. The
// metadata members are runs of one byte, so a few hundred KB of gzip
// declare tens of megabytes.
func hostilePackages(t testing.TB) []hostile {
	t.Helper()
	run := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	contents := func(n int) []byte { return append([]byte("@name bomb-1\n"), run(n)...) }
	payload := pkgtest.Member{Name: "bin/x", Data: []byte("x"), Mode: 0o755}
	var hs []hostile

	// One metadata file beyond MaxMetaFileSize.
	hs = append(hs, hostile{"one big file", build(t, pkgfile.Gzip, []pkgtest.Member{
		{Name: "+CONTENTS", Data: contents(pkgfile.MaxMetaFileSize), Mode: 0o644},
		{Name: "+COMMENT", Data: []byte("c\n")}, {Name: "+DESC", Data: []byte("d\n")}, payload,
	}), []string{"+CONTENTS is", "16 MiB"}})

	// Every file within its limit, together beyond MaxMetaTotal.
	ms := []pkgtest.Member{{Name: "+CONTENTS", Data: contents(15 << 20), Mode: 0o644},
		{Name: "+COMMENT", Data: run(15 << 20)}, {Name: "+DESC", Data: run(15 << 20)},
		{Name: "+INSTALL", Data: run(15 << 20)}, {Name: "+DEINSTALL", Data: run(15 << 20)}, payload}
	hs = append(hs, hostile{"many big files", build(t, pkgfile.Gzip, ms), []string{"+COMMENT (", "24 MiB"}})

	// Metadata files within the limits, but so many pax records with them
	// that the tar data goes beyond MaxMetaStream before the payload.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	rec := map[string]string{"comment": strings.Repeat("b", 900<<10)}
	for _, m := range []pkgtest.Member{{Name: "+CONTENTS", Data: contents(16<<20 - 100)},
		{Name: "+COMMENT", Data: []byte("c\n")}, {Name: "+DESC", Data: run(7 << 20)}, payload} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.Name, Size: int64(len(m.Data)), PAXRecords: rec}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.Data)
	}
	tw.Close()
	hs = append(hs, hostile{"decompression bomb", gzipBytes(t, tb.Bytes()), []string{"decompression bomb", "25 MiB", "reading +DESC"}})

	// Pax global headers, each below archive/tar's 1 MiB of records.
	tb.Reset()
	tw = tar.NewWriter(&tb)
	for range 10 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: rec}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Flush()
	hs = append(hs, hostile{"global headers", gzipBytes(t, tb.Bytes()), []string{"more than 4 pax global headers"}})

	// A signed container whose +PKG_HASH header declares 1 GB.
	hs = append(hs, hostile{"huge +PKG_HASH", []byte("!<arch>\n+PKG_HASH       0           0     0     100644  1000000000`\nxx"),
		[]string{"+PKG_HASH", "32 MiB"}})
	hs = append(hs, hostile{"huge signature", bsdAr([2]string{"+PKG_HASH", "h"},
		[2]string{"+PKG_GPG_SIGNATURE", string(run(pkgfile.MaxSignatureSize + 1))}), []string{"+PKG_GPG_SIGNATURE", "1 MiB"}})

	// An xz package whose block asks for a 3 GiB dictionary (488 bytes
	// made the xz decoder allocate all of it).
	hs = append(hs, hostile{"xz dictionary", xzWithDict(t, samplePkg(t, pkgfile.XZ), 39), []string{"dictionary of", "64 MiB"}})

	// A zstd frame asking for a 1 GiB window.
	hs = append(hs, hostile{"zstd window", zstdWithWindowLog(t, samplePkg(t, pkgfile.None), 30), []string{"window", "128 MiB"}})
	return hs
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func bufioReader(b []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(b), 64<<10)
}

// xzWithDict rewrites the dictionary byte of the first block's LZMA2
// filter (and the header's CRC32).
func xzWithDict(t testing.TB, data []byte, code byte) []byte {
	t.Helper()
	data = bytes.Clone(data)
	hs := (int(data[12]) + 1) * 4
	h := data[12 : 12+hs]
	i := bytes.Index(h, []byte{0x21, 0x01})
	if i < 0 {
		t.Fatalf("no LZMA2 filter in block header % x", h)
	}
	h[i+2] = code
	binary.LittleEndian.PutUint32(h[hs-4:], crc32.ChecksumIEEE(h[:hs-4]))
	return data
}

// zstdWithWindowLog compresses raw into one zstd frame whose header
// declares a window of 1<<log bytes and no content size.
func zstdWithWindowLog(t testing.TB, raw []byte, log byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	d := out.Bytes()
	// Replace the frame header (magic, descriptor, window, dictionary ID,
	// content size) by one with only the window.
	fhd := d[4]
	n := 5 + []int{0, 1, 2, 4}[fhd&3] + []int{0, 2, 4, 8}[fhd>>6]
	if fhd&0x20 == 0 {
		n++ // a window descriptor
	} else if fhd>>6 == 0 {
		n++ // a single-segment frame has a 1-byte content size
	}
	return append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (log - 10) << 3}, d[n:]...)
}

// TestLimits: every hostile package is refused as malformed, with a
// message naming the file, the member and the limit, and reading it
// allocates a bounded amount (runtime.MemStats.TotalAlloc, an upper
// bound of the peak).
func TestLimits(t *testing.T) {
	const bound = 40 << 20 // MaxMetaTotal, the decoders' buffers, slack
	for _, h := range hostilePackages(t) {
		t.Run(h.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := pkgfile.ReadMeta("bomb-1.tgz", bytes.NewReader(h.data))
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes on disk, %d MiB allocated: %v", len(h.data), alloc>>20, err)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, pkgfile.ErrFormat) || !strings.HasPrefix(err.Error(), "bomb-1.tgz: ") {
				t.Errorf("error %q: want ErrFormat, starting with the file name", err)
			}
			for _, w := range h.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if alloc > bound {
				t.Errorf("allocated %d MiB reading a %d-byte package (bound %d MiB)", alloc>>20, len(h.data), bound>>20)
			}
		})
	}
}

// TestWithinLimits: metadata at the limits is read.
func TestWithinLimits(t *testing.T) {
	files := map[string][]byte{
		"+CONTENTS": append([]byte("@name big-1\n"), bytes.Repeat([]byte("x"), pkgfile.MaxMetaFileSize-12)...),
		"+COMMENT":  []byte("c\n"),
		"+DESC":     bytes.Repeat([]byte("d"), pkgfile.MaxMetaTotal-pkgfile.MaxMetaFileSize-2),
	}
	m, err := pkgfile.ReadMeta("big-1.tgz", bytes.NewReader(build(t, pkgfile.Gzip, pkgtest.MetaMembers(files))))
	if err != nil {
		t.Fatal(err)
	}
	if m.PkgName() != "big-1" || len(m.Files["+CONTENTS"]) != pkgfile.MaxMetaFileSize {
		t.Errorf("PkgName %q, +CONTENTS %d bytes", m.PkgName(), len(m.Files["+CONTENTS"]))
	}
	// An xz dictionary of exactly the limit is fine (the decoder then
	// allocates it).
	if _, err := pkgfile.ReadMeta("dict.txz", bytes.NewReader(xzWithDict(t, samplePkg(t, pkgfile.XZ), 28))); err != nil {
		t.Errorf("xz with a 64 MiB dictionary: %v", err)
	}
	if _, err := pkgfile.ReadMeta("dict.txz", bytes.NewReader(xzWithDict(t, samplePkg(t, pkgfile.XZ), 29))); err == nil {
		t.Errorf("xz with a 96 MiB dictionary: no error")
	}
}

// errReader fails after its data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

// TestReaderErrors: a failing reader is not a bad package (no ErrFormat,
// the reader's error is wrapped); a stream that merely ends is.
func TestReaderErrors(t *testing.T) {
	boom := errors.New("connection reset")
	for _, c := range []pkgfile.Compression{pkgfile.None, pkgfile.Gzip, pkgfile.Bzip2, pkgfile.XZ, pkgfile.Zstd} {
		data := samplePkg(t, c)
		cut := data[:min(len(data)/3, 600)] // inside the metadata
		_, err := pkgfile.ReadMeta("p.tgz", &errReader{r: bytes.NewReader(cut), err: boom})
		if !errors.Is(err, boom) || errors.Is(err, pkgfile.ErrFormat) {
			t.Errorf("%s: error %v: want the reader's error, not ErrFormat", c, err)
		}
	}
	for _, data := range [][]byte{[]byte("!<arch>\n"), []byte("!<arch>\n" + arHeader("+PKG_HASH", 2) + "h\n"), samplePkg(t, pkgfile.XZ)[:40]} {
		_, err := pkgfile.ReadMeta("p.tgz", bytes.NewReader(data))
		if !errors.Is(err, pkgfile.ErrFormat) {
			t.Errorf("%q: error %v does not wrap ErrFormat", data, err)
		}
	}
}

func arHeader(name string, size int) string {
	return fmt.Sprintf("%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, 0, 0, 0, 0o100644, size)
}

// xzFiles returns xz files as the xz tool writes them: every check type,
// several blocks with and without sizes in their headers, several
// streams with padding between them.
func xzFiles(t testing.TB) map[string][]byte {
	t.Helper()
	prog := testenv.Program(t, "xz")
	raw := samplePkg(t, pkgfile.None)
	big := build(t, pkgfile.None, append(pkgtest.MetaMembers(sampleMeta), pkgtest.PayloadMembers(sampleMeta["+CONTENTS"], 300<<10, 7)...))
	xzc := func(in []byte, args ...string) []byte {
		cmd := exec.Command(prog, append([]string{"-c"}, args...)...)
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz %v: %v", args, err)
		}
		return out
	}
	files := map[string][]byte{
		"default":               xzc(raw),
		"check none":            xzc(raw, "--check=none"),
		"check crc32":           xzc(raw, "--check=crc32", "-9"),
		"check sha256":          xzc(raw, "--check=sha256", "-0"),
		"blocks":                xzc(big, "--block-size=40000"),
		"threads":               xzc(big, "-T2", "--block-size=50000"),
		"incompressible chunks": xzc(big, "-0", "--block-size=100000"),
	}
	two := append(xzc(raw[:len(raw)/2]), 0, 0, 0, 0, 0, 0, 0, 0)
	files["streams and padding"] = append(two, xzc(raw[len(raw)/2:])...)
	return files
}

// TestXZGuard: the guard passes every xz file the xz tool writes through
// unchanged, and refuses big dictionaries in later blocks and streams
// too.
func TestXZGuard(t *testing.T) {
	raw := samplePkg(t, pkgfile.None)
	for name, data := range xzFiles(t) {
		t.Run(name, func(t *testing.T) {
			want, err := io.ReadAll(mustXZ(t, bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			r, c, done, err := pkgfile.Decompress(bufioReader(data))
			if err != nil || c != pkgfile.XZ {
				t.Fatalf("Decompress: %v %v", c, err)
			}
			defer done()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("through the guard: %d bytes, %v; want %d bytes", len(got), err, len(want))
			}
			if name == "streams and padding" && !bytes.Equal(got, raw) {
				t.Error("two streams do not give the whole tar")
			}
		})
	}
	// A second stream whose block asks for 3 GiB.
	bad := append(xzFiles(t)["default"], xzWithDict(t, samplePkg(t, pkgfile.XZ), 39)...)
	r, _, done, err := pkgfile.Decompress(bufioReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "dictionary of") {
		t.Errorf("second stream with a 3 GiB dictionary: %v", err)
	}
}

func mustXZ(t testing.TB, r io.Reader) io.Reader {
	t.Helper()
	xr, err := xz.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	return xr
}
