package scan

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

const twoRecords = `PKGNAME=foo-1.0
PKG_LOCATION=devel/foo
ALL_DEPENDS=  bar>=1:../../devel/bar
PKG_SKIP_REASON=
PKG_FAIL_REASON="broken" "really"
PKG_LOCATION=ignored/second
UNKNOWN_KEY=kept
SCAN_DEPENDS=Makefile ../../mk/bsd.pkg.mk
PKGNAME=bar-2.0nb1
PKG_LOCATION=devel/bar

PBULK_WEIGHT=250
ALL_DEPENDS=
`

func TestParse(t *testing.T) {
	recs, err := Parse("two", []byte(twoRecords))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	tests := []struct {
		rec       int
		key, want string
		ok        bool
	}{
		{0, KeyPkgName, "foo-1.0", true},
		{0, KeyPkgLocation, "devel/foo", true}, // first occurrence wins
		{0, KeyAllDepends, "  bar>=1:../../devel/bar", true},
		{0, KeyPkgSkipReason, "", true},
		{0, KeyPkgFailReason, `"broken" "really"`, true},
		{0, "UNKNOWN_KEY", "kept", true},
		{0, KeyScanDepends, "Makefile ../../mk/bsd.pkg.mk", true},
		{0, KeyDepends, "", false},
		{0, "PKG", "", false}, // prefix of a key is not the key
		{0, "SCAN_DEPENDS=Makefile", "", false},
		{1, KeyPkgName, "bar-2.0nb1", true},
		{1, KeyAllDepends, "", true},
		{1, KeyPbulkWeight, "250", true},
		{1, KeyPkgSkipReason, "", false},
		{1, "", "", false}, // a blank line is no field
	}
	for _, tt := range tests {
		got, ok := recs[tt.rec].Get(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("rec %d Get(%q) = %q, %v; want %q, %v", tt.rec, tt.key, got, ok, tt.want, tt.ok)
		}
		// The hand-built path (no line index) must agree.
		hand := NewRecord(recs[tt.rec].Text)
		got, ok = hand.Get(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("hand-built rec %d Get(%q) = %q, %v; want %q, %v", tt.rec, tt.key, got, ok, tt.want, tt.ok)
		}
	}
	if recs[0].Line() != 1 || recs[1].Line() != 9 || recs[1].File() != "two" {
		t.Errorf("positions: %s:%d %s:%d", recs[0].File(), recs[0].Line(), recs[1].File(), recs[1].Line())
	}
	if l := recs[1].LineOf(KeyAllDepends); l != 13 {
		t.Errorf("LineOf(ALL_DEPENDS) = %d, want 13", l)
	}
	if l := recs[1].LineOf("MISSING"); l != 9 {
		t.Errorf("LineOf(MISSING) = %d, want 9", l)
	}
	if n := recs[0].NumLines(); n != 8 {
		t.Errorf("NumLines = %d, want 8", n)
	}
	if recs[0].PkgName() != "foo-1.0" || recs[1].Location() != "devel/bar" {
		t.Errorf("PkgName/Location wrong")
	}
	if w := PbulkWeight(&recs[0]); w != 100 {
		t.Errorf("default weight %d", w)
	}
	if w := PbulkWeight(&recs[1]); w != 250 {
		t.Errorf("weight %d", w)
	}
	var buf bytes.Buffer
	if err := Write(&buf, recs); err != nil {
		t.Fatal(err)
	}
	if buf.String() != twoRecords {
		t.Errorf("round trip differs:\n%s", buf.String())
	}
}

func TestPbulkWeight(t *testing.T) {
	for _, tt := range []struct {
		line string
		want int
	}{
		{"", 100}, {"PBULK_WEIGHT=1\n", 1}, {"PBULK_WEIGHT=0\n", 0}, {"PBULK_WEIGHT=\n", 100},
		{"PBULK_WEIGHT=abc\n", 100}, {"PBULK_WEIGHT=-5\n", 100}, {"PBULK_WEIGHT=99999999999\n", 100},
		{"PBULK_WEIGHT= 300\n", 300},
	} {
		r := NewRecord([]byte("PKGNAME=foo-1\n" + tt.line))
		if got := PbulkWeight(&r); got != tt.want {
			t.Errorf("%q: got %d, want %d", tt.line, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"garbage first", "FOO=bar\nPKGNAME=foo-1\n", 1, "before the first PKGNAME"},
		{"blank first", "\nPKGNAME=foo-1\n", 1, "before the first PKGNAME"},
		{"no newline", "PKGNAME=foo-1\nALL_DEPENDS=", 2, "does not end with a newline"},
		{"short name", "PKGNAME=foo-1\nPKGNAME=x\n", 2, "shorter than 2"},
		{"empty name", "PKGNAME=\n", 1, "shorter than 2"},
		{"space in name", "PKGNAME=foo-1\nA=b\nPKGNAME=foo 1\n", 3, "whitespace"},
		{"no equals", "PKGNAME=foo-1\nPKG_LOCATION=a/b\ngarbage\n", 3, "without '='"},
		// The first bad line in file order is the one reported (a fuzz
		// finding: Parse named the missing final newline, the chunked
		// reader the leading blank line).
		{"garbage, then truncated", "\nPKGNAME=0000000", 1, "before the first PKGNAME"},
		{"bad name, then truncated", "PKGNAME=x\nA=", 1, "shorter than 2"},
		{"nul in value", "PKGNAME=foo-1\nPKG_LOCATION=a/b\x00c\n", 2, `NUL byte in the value of "PKG_LOCATION"`},
		{"nul in name", "PKGNAME=foo\x00-1\n", 1, `NUL byte in the value of "PKGNAME"`},
		{"nul in key", "PKGNAME=foo-1\nA\x00B=c\n", 2, "NUL byte in a line"},
		{"nul after error", "PKGNAME=foo-1\ngarbage\nA=\x00\n", 2, "without '='"},
		{"nul in last line", "PKGNAME=foo-1\nA=\x00", 2, "does not end with a newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("in.txt", []byte(tt.in))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not *Error", err)
			}
			if pe.File != "in.txt" || pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("got %v, want in.txt:%d: ...%s...", err, tt.line, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "in.txt:") {
				t.Errorf("Error() = %q lacks file:line", err)
			}
		})
	}
	if recs, err := Parse("empty", nil); err != nil || len(recs) != 0 {
		t.Errorf("empty input: %v, %v", recs, err)
	}
}

// TestParseChunksAgree checks that the chunked reader reports exactly
// Parse's error (or records) for inputs where the first error and the
// chunk boundaries used to make them differ, whatever the chunk size.
func TestParseChunksAgree(t *testing.T) {
	inputs := []string{
		"\nPKGNAME=0000000", // fuzz finding
		"X\nPKGNAME=ab\nPKGNAME=c",
		"PKGNAME=ab\nPKGNAME=x\nA=",
		"PKGNAME=ab\nA=1\nPKGNAME=cd\nB=\x00\nPKGNAME=ef\nC",
		"PKGNAME=ab\nA=\x00\nPKGNAME=cd\nno equals\n",
		"PKGNAME=ab\nA=1\nPKGNAME=cd\n\nPKGNAME=ef\n",
		twoRecords + "PKGNAME=x y\n" + twoRecords[:20],
	}
	for _, in := range inputs {
		recs, err := Parse("in", []byte(in))
		for size := 1; size <= len(in)+1; size++ {
			crecs, cerr := readChunks("in", strings.NewReader(in), size)
			if fmt.Sprint(err) != fmt.Sprint(cerr) {
				t.Errorf("%q, chunk size %d: error %v, Parse: %v", in, size, cerr, err)
				break
			}
			if err == nil && !sameRecords(recs, crecs) {
				t.Errorf("%q, chunk size %d: records differ", in, size)
				break
			}
		}
	}
	if recs, err := Parse("empty", nil); err != nil || len(recs) != 0 {
		t.Errorf("empty input: %v, %v", recs, err)
	}
}

func TestReadFileCompressed(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte(twoRecords), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(twoRecords))
	zw.Close()
	// The name does not say .gz: detection is by content.
	gzPath := filepath.Join(dir, "scan")
	os.WriteFile(gzPath, gz.Bytes(), 0o644)
	enc, _ := zstd.NewWriter(nil)
	zsPath := filepath.Join(dir, "scan.zst")
	os.WriteFile(zsPath, enc.EncodeAll([]byte(twoRecords), nil), 0o644)
	for _, p := range []string{plain, gzPath, zsPath} {
		recs, err := ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var buf bytes.Buffer
		Write(&buf, recs)
		if buf.String() != twoRecords || recs[0].File() != p {
			t.Errorf("%s: content differs", p)
		}
		recs, release, err := MapFile(p)
		if err != nil {
			t.Fatalf("MapFile %s: %v", p, err)
		}
		buf.Reset()
		Write(&buf, recs)
		if buf.String() != twoRecords || recs[1].PkgName() != "bar-2.0nb1" {
			t.Errorf("MapFile %s: content differs", p)
		}
		if err := release(); err != nil {
			t.Error(err)
		}
	}
	if _, _, err := MapFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("MapFile of a missing file: no error")
	}
	os.WriteFile(filepath.Join(dir, "trunc"), []byte("PKGNAME=foo-1\nA="), 0o644)
	if _, _, err := MapFile(filepath.Join(dir, "trunc")); err == nil || !strings.Contains(err.Error(), "trunc:2:") {
		t.Errorf("MapFile of a truncated file: %v", err)
	}
	recs, release, err := MapFile(filepath.Join(dir, "empty"))
	if err == nil {
		t.Error("MapFile of a missing empty file: no error")
	}
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	recs, release, err = MapFile(filepath.Join(dir, "empty"))
	if err != nil || len(recs) != 0 {
		t.Errorf("MapFile of an empty file: %v %v", recs, err)
	} else {
		release()
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
	bad := filepath.Join(dir, "bad.zst")
	os.WriteFile(bad, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "garbage"...), 0o644)
	if _, err := ReadFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt zstd: %v", err)
	}
}

// TestRoundTripIllumos parses the real 29,022-record scan and writes it back.
func TestRoundTripIllumos(t *testing.T) {
	path := testenv.SharedData(t, "scan/pscan-illumos-2026.txt.zst")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Decompress(raw)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 29022 {
		t.Errorf("got %d records, want 29022", len(recs))
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := Write(&buf, recs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("round trip is not byte-identical")
	}
	// Every record has the fields pbulk-index-item always writes.
	for i := range recs {
		for _, k := range Keys[:13] {
			if _, ok := recs[i].GetBytes(k); !ok {
				t.Fatalf("%s:%d: %s lacks %s", path, recs[i].Line(), recs[i].PkgName(), k)
			}
		}
	}
	if recs[0].PkgName() != "xaos-4.2.1nb26" || recs[0].Location() != "x11/XaoS" {
		t.Errorf("first record: %s %s", recs[0].PkgName(), recs[0].Location())
	}
}

func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Text, b[i].Text) || a[i].Line() != b[i].Line() || a[i].File() != b[i].File() || a[i].NumLines() != b[i].NumLines() {
			return false
		}
		for _, k := range append(Keys, "", "X") {
			x, xok := a[i].Get(k)
			y, yok := b[i].Get(k)
			if x != y || xok != yok {
				return false
			}
		}
	}
	return true
}

func TestReadChunks(t *testing.T) {
	big := strings.Repeat(twoRecords, 50)
	want, err := Parse("in", []byte(big))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 10, 64, 333, 1 << 20} {
		got, err := readChunks("in", strings.NewReader(big), size)
		if err != nil || !sameRecords(want, got) {
			t.Errorf("size %d: %v, same %v", size, err, sameRecords(want, got))
		}
		// Errors name the line in the whole file, not in the chunk.
		_, err = readChunks("in", strings.NewReader(big+"PKGNAME=x y\n"), size)
		if err == nil || err.Error() != fmt.Sprintf("in:%d: PKGNAME \"x y\" contains whitespace", strings.Count(big, "\n")+1) {
			t.Errorf("size %d: error %v", size, err)
		}
	}
	// Through a pipe (no size known), compressed or not.
	for _, compress := range []bool{false, true} {
		pr, pw, _ := os.Pipe()
		go func() {
			if compress {
				zw := gzip.NewWriter(pw)
				zw.Write([]byte(big))
				zw.Close()
			} else {
				pw.Write([]byte(big))
			}
			pw.Close()
		}()
		got, err := ReadAll("<stdin>", pr)
		pr.Close()
		if err != nil || !sameRecords(want, relabel(got, "in")) {
			t.Errorf("pipe (gzip %v): %v", compress, err)
		}
	}
}

func relabel(recs []Record, file string) []Record {
	for i := range recs {
		recs[i].file = file
	}
	return recs
}

func BenchmarkParseIllumos(b *testing.B) {
	path := testenv.SharedData(b, "scan/pscan-illumos-2026.txt.zst")
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	data, err := Decompress(raw)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(path, data); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(twoRecords))
	f.Add([]byte("PKGNAME=ab\n"))
	f.Add([]byte("PKGNAME=ab\n\n\nX=\n"))
	f.Add([]byte("x"))
	f.Add([]byte("\nPKGNAME=0000000"))
	f.Add([]byte("PKGNAME=ab\nA=\x00\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := Parse("fuzz", in)
		// Reading in small chunks gives the same records or error.
		for _, size := range []int{1, 16, 100} {
			crecs, cerr := readChunks("fuzz", bytes.NewReader(in), size)
			if (err == nil) != (cerr == nil) || (err != nil && err.Error() != cerr.Error()) {
				t.Fatalf("chunk size %d: error %v, Parse: %v", size, cerr, err)
			}
			if err == nil && !sameRecords(recs, crecs) {
				t.Fatalf("chunk size %d: records differ", size)
			}
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, recs); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), in) {
			t.Fatalf("round trip differs: %q -> %q", in, buf.Bytes())
		}
		for i := range recs {
			name, ok := recs[i].Get(KeyPkgName)
			if !ok || !bytes.HasPrefix(recs[i].Text, []byte("PKGNAME="+name+"\n")) {
				t.Fatalf("record %d: PKGNAME %q not its first line", i, name)
			}
			hand := NewRecord(recs[i].Text)
			for _, k := range append(Keys, "", "X") {
				a, aok := recs[i].Get(k)
				b, bok := hand.Get(k)
				if a != b || aok != bok {
					t.Fatalf("Get(%q) indexed %q,%v hand %q,%v", k, a, aok, b, bok)
				}
			}
		}
	})
}
