package summary

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func TestParseFluxerRoundTrip(t *testing.T) {
	path := testenv.SharedData(t, "pkg_summary/fluxer-2022-pkg_summary.txt")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Parse(path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, r := range recs {
		out.Write(r.Bytes())
	}
	// The shared file lacks the final blank line; everything else must
	// come back byte for byte.
	if got, want := strings.TrimRight(out.String(), "\n"), strings.TrimRight(string(raw), "\n"); got != want {
		t.Error("re-serialised fluxer pkg_summary differs from the original")
	}
	if recs[1].PkgName() != "automake-1.16.5nb1" || len(recs[1].Values("DEPENDS")) != 2 || recs[0].Line != 1 {
		t.Errorf("record 2: %q, DEPENDS %q, record 1 at line %d", recs[1].PkgName(), recs[1].Values("DEPENDS"), recs[0].Line)
	}
}

func TestParseSparseLxmx(t *testing.T) {
	path := testenv.SharedData(t, "pkg_summary/lxmx-bm-packages-sparse-pkg_summary.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Parse(path, zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 5 {
		t.Fatalf("only %d records", len(recs))
	}
	for _, r := range recs {
		if r.PkgName() == "" {
			t.Errorf("record at line %d has no PKGNAME", r.Line)
		}
		if c, ok := r.Get("COMMENT"); !ok || c != "" {
			t.Errorf("%s: COMMENT %q present=%v, want present and empty", r.PkgName(), c, ok)
		}
	}
}

func TestParseMktool(t *testing.T) {
	path := testenv.SharedData(t, "pkg_summary/pkgsrc-rs-mktool-single-entry.txt")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Parse(path, bytes.NewReader(raw))
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	r := recs[0]
	if r.PkgName() != "mktool-1.4.2" {
		t.Errorf("PKGNAME %q", r.PkgName())
	}
	desc := r.Values("DESCRIPTION")
	if len(desc) < 3 || desc[2] != "" || desc[len(desc)-1] != "https://github.com/jperkin/mktool/" {
		t.Errorf("DESCRIPTION lines %q", desc)
	}
	if fs, _ := r.Get("FILE_SIZE"); fs != "2871260" {
		t.Errorf("FILE_SIZE %q", fs)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"PKGNAME=a\nbroken line\n", "x:2: "},
		{"\n\n=value\n", "x:3: "},
	} {
		_, err := Parse("x", strings.NewReader(tt.in))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error %v, want prefix %q", tt.in, err, tt.want)
		}
	}
	recs, err := Parse("x", strings.NewReader("\n\nA=1\r\nB=\n\n\n\nA=2"))
	if err != nil || len(recs) != 2 || recs[0].Fields[0].Value != "1\r" || recs[1].Line != 8 {
		t.Errorf("tolerant parse: %+v %v", recs, err)
	}
}

// TestEntryRules covers pkg_info -X rules the real data does not exercise.
func TestEntryRules(t *testing.T) {
	base := func() map[string][]byte {
		return map[string][]byte{
			"+CONTENTS":   []byte("@pkgcfl old-[0-9]*\n@name foo-1.0\n@pkgdep bar>=1\n@blddep baz-2\n@pkgdep\n"),
			"+COMMENT":    []byte("Foo\n"),
			"+DESC":       []byte("line 1\n\nline 3"),
			"+BUILD_INFO": []byte("CC_VERSION=gcc\nOPSYS=NetBSD\nOPSYSX=no\nPKGPATH= spaced\nREQUIRES=/lib/a.so\nREQUIRES=/lib/b.so\nHOMEPAGE=last-no-newline"),
		}
	}
	tests := []struct {
		name   string
		edit   func(map[string][]byte)
		file   File
		expect string
	}{
		{"all", func(map[string][]byte) {}, File{Name: "foo-1.0.tgz", Size: 42},
			"CONFLICTS=old-[0-9]*\nPKGNAME=foo-1.0\nDEPENDS=bar>=1\nDEPENDS=(null)\nCOMMENT=Foo\n" +
				"OPSYS=NetBSD\nPKGPATH= spaced\nREQUIRES=/lib/a.so\nREQUIRES=/lib/b.so\nHOMEPAGE=last-no-newline\n" +
				"FILE_NAME=foo-1.0.tgz\nFILE_SIZE=42\nDESCRIPTION=line 1\nDESCRIPTION=\nDESCRIPTION=line 3\n\n"},
		{"no file, empty desc, size_pkg, no build info", func(m map[string][]byte) {
			m["+DESC"] = nil
			m["+SIZE_PKG"] = []byte("123\n")
			delete(m, "+BUILD_INFO")
			m["+CONTENTS"] = []byte("@name foo-1.0\n")
		}, File{},
			"PKGNAME=foo-1.0\nCOMMENT=Foo\nSIZE_PKG=123\n\n"},
		{"cksum and NUL", func(m map[string][]byte) {
			m["+CONTENTS"] = []byte("@name foo-1.0\n")
			m["+COMMENT"] = []byte("Foo\x00garbage\n")
			delete(m, "+BUILD_INFO")
			m["+DESC"] = []byte("d\n\n")
		}, File{Name: "f.tgz", Size: 1, Cksum: "sha256 ab"},
			"PKGNAME=foo-1.0\nCOMMENT=Foo\nFILE_NAME=f.tgz\nFILE_SIZE=1\nFILE_CKSUM=sha256 ab\nDESCRIPTION=d\nDESCRIPTION=\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := base()
			tt.edit(files)
			got := string(AppendEntry(nil, &pkgfile.Meta{Files: files}, tt.file))
			if got != tt.expect {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.expect)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("PKGNAME=a-1\nCOMMENT=x\n\nPKGNAME=b-1\n"))
	f.Add([]byte("\n\n=\nA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Parse("fuzz", bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip.
		var out bytes.Buffer
		for _, r := range recs {
			out.Write(r.Bytes())
		}
		again, err := Parse("again", &out)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("round trip: %d records then %d (%v)", len(recs), len(again), err)
		}
	})
}
