package scanner

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/scan"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func TestEmit(t *testing.T) {
	type loc struct{ name, raw string }
	tests := []struct {
		name  string
		locs  []loc
		want  string
		warns []string
	}{
		{
			name: "one record gets PKG_LOCATION as second line",
			locs: []loc{{"devel/a", "PKGNAME=a-1\nALL_DEPENDS=\nSCAN_DEPENDS=Makefile\n"}},
			want: "PKGNAME=a-1\nPKG_LOCATION=devel/a\nALL_DEPENDS=\nSCAN_DEPENDS=Makefile\n",
		},
		{
			name: "several records of one location",
			locs: []loc{{"lang/py", "PKGNAME=py312-x-1\nMULTI_VERSION= V=312\nPKGNAME=py311-x-1\nMULTI_VERSION= V=311\n"}},
			want: "PKGNAME=py312-x-1\nPKG_LOCATION=lang/py\nMULTI_VERSION= V=312\nPKGNAME=py311-x-1\nPKG_LOCATION=lang/py\nMULTI_VERSION= V=311\n",
		},
		{
			name: "duplicate PKGNAME: first occurrence in job order wins",
			locs: []loc{
				{"a/one", "PKGNAME=dup-1\nX=one\n"},
				{"b/two", "PKGNAME=dup-1\nX=two\nPKGNAME=other-1\nX=two\n"},
			},
			want:  "PKGNAME=dup-1\nPKG_LOCATION=a/one\nX=one\nPKGNAME=other-1\nPKG_LOCATION=b/two\nX=two\n",
			warns: []string{"Duplicate package: dup-1"},
		},
		{
			name:  "output not starting with PKGNAME is dropped whole",
			locs:  []loc{{"x/y", "garbage\nPKGNAME=fine-1\n"}},
			want:  "",
			warns: []string{"pbulk-index output not recognized for x/y"},
		},
		{
			name:  "bad second record drops the rest, keeps the first",
			locs:  []loc{{"x/y", "PKGNAME=ok-1\nA=1\nPKGNAME=has space\nB=2\nPKGNAME=lost-1\n"}},
			want:  "PKGNAME=ok-1\nPKG_LOCATION=x/y\nA=1\n",
			warns: []string{"pbulk-index output not recognized for x/y"},
		},
		{
			name:  "PKGNAME shorter than 2 bytes",
			locs:  []loc{{"x/y", "PKGNAME=a\nA=1\n"}},
			warns: []string{"pbulk-index output not recognized for x/y"},
		},
		{
			name:  "tab in PKGNAME",
			locs:  []loc{{"x/y", "PKGNAME=a\tb\n"}},
			warns: []string{"pbulk-index output not recognized for x/y"},
		},
		{
			name: "two-byte PKGNAME is enough for pbulk-scan",
			locs: []loc{{"x/y", "PKGNAME=ab\n"}},
			want: "PKGNAME=ab\nPKG_LOCATION=x/y\n",
		},
		{
			name:  "unterminated last line drops that record",
			locs:  []loc{{"x/y", "PKGNAME=ok-1\nA=1\nPKGNAME=cut-1\nB=2"}},
			want:  "PKGNAME=ok-1\nPKG_LOCATION=x/y\nA=1\n",
			warns: []string{"pbulk-index output not recognized for x/y"},
		},
		{
			name:  "unterminated PKGNAME line",
			locs:  []loc{{"x/y", "PKGNAME=cut-1"}},
			warns: []string{"pbulk-index output not recognized for x/y"},
		},
		{
			name: "duplicate and unterminated: both warnings, in pbulk's order",
			locs: []loc{
				{"a/one", "PKGNAME=dup-1\n"},
				{"b/two", "PKGNAME=dup-1\nX=2"},
			},
			want:  "PKGNAME=dup-1\nPKG_LOCATION=a/one\n",
			warns: []string{"Duplicate package: dup-1", "pbulk-index output not recognized for b/two"},
		},
		{
			name: "blank lines and PKGNAME-like text inside a line stay",
			locs: []loc{{"x/y", "PKGNAME=ok-1\n\nA= PKGNAME=no\n"}},
			want: "PKGNAME=ok-1\nPKG_LOCATION=x/y\n\nA= PKGNAME=no\n",
		},
		{
			name: "empty output writes nothing and warns nothing",
			locs: []loc{{"x/y", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var warns []string
			e := NewEmitter(&out, func(m string) { warns = append(warns, m) })
			for _, l := range tt.locs {
				if _, err := e.Emit(l.name, []byte(l.raw)); err != nil {
					t.Fatal(err)
				}
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%q\nwant:\n%q", out.String(), tt.want)
			}
			if strings.Join(warns, "|") != strings.Join(tt.warns, "|") {
				t.Errorf("warnings %q, want %q", warns, tt.warns)
			}
		})
	}
}

func TestEmitComplete(t *testing.T) {
	var out bytes.Buffer
	e := NewEmitter(&out, func(string) {})
	r, _ := e.Emit("a/b", []byte("PKGNAME=x-1\nPKGNAME=y-1\n"))
	if !r.Complete || r.Records != 2 {
		t.Errorf("got %+v, want 2 records, complete", r)
	}
	r, _ = e.Emit("a/c", []byte("PKGNAME=x-1\nPKGNAME=z-1\n"))
	if r.Complete || r.Records != 1 || r.Duplicates != 1 {
		t.Errorf("got %+v, want 1 record, 1 duplicate, incomplete", r)
	}
}

func TestScanDepends(t *testing.T) {
	tests := []struct {
		raw   string
		words string
		all   bool
	}{
		{"PKGNAME=a-1\nSCAN_DEPENDS=Makefile ../../mk/x.mk\n", "Makefile ../../mk/x.mk", true},
		{"PKGNAME=a-1\nSCAN_DEPENDS=a\nPKGNAME=b-1\nSCAN_DEPENDS=b  c\n", "a b c", true},
		{"PKGNAME=a-1\nSCAN_DEPENDS=a\nPKGNAME=b-1\n", "a", false},
		{"PKGNAME=a-1\nSCAN_DEPENDS=\n", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		words, all := scanDepends([]byte(tt.raw))
		if strings.Join(words, " ") != tt.words || all != tt.all {
			t.Errorf("scanDepends(%q) = %q, %v; want %q, %v", tt.raw, words, all, tt.words, tt.all)
		}
	}
}

func TestResolveDep(t *testing.T) {
	tests := []struct{ loc, word, want string }{
		{"devel/foo", "/usr/share/mk/sys.mk", "/usr/share/mk/sys.mk"},
		{"devel/foo", "../../mk/bsd.pkg.mk", "/p/mk/bsd.pkg.mk"},
		{"devel/foo", "Makefile", "/p/devel/foo/Makefile"},
		{"devel/foo", "../bar/x.mk", "/p/devel/foo/../bar/x.mk"},
		{"a/b/c", "../../mk/x.mk", "/p/a/b/c/../../mk/x.mk"},
	}
	for _, tt := range tests {
		if got := resolveDep("/p", tt.loc, tt.word); got != tt.want {
			t.Errorf("resolveDep(%q, %q) = %q, want %q", tt.loc, tt.word, got, tt.want)
		}
	}
}

func TestAppendWithoutLocation(t *testing.T) {
	tests := []struct{ rec, want string }{
		{"PKGNAME=a-1\nPKG_LOCATION=x/y\nA=1\n", "PKGNAME=a-1\nA=1\n"},
		{"PKGNAME=a-1\nA=1\nPKG_LOCATION=x/y\nB=2\n", "PKGNAME=a-1\nA=1\nB=2\n"},
		{"PKGNAME=a-1\nA=1\n", "PKGNAME=a-1\nA=1\n"},
	}
	for _, tt := range tests {
		if got := string(appendWithoutLocation(nil, []byte(tt.rec))); got != tt.want {
			t.Errorf("appendWithoutLocation(%q) = %q, want %q", tt.rec, got, tt.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
		{"one\n", 1, "one"},
	}
	for _, tt := range tests {
		if got := string(lastLines([]byte(tt.in), tt.n)); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// FuzzEmit checks the splitter on arbitrary make output: no panic, every
// written record is well formed, and a complete emission can be turned back
// into the raw output (what the reuse cache relies on).
func FuzzEmit(f *testing.F) {
	f.Add([]byte("PKGNAME=a-1\nA=1\nPKGNAME=b-1\n"))
	f.Add([]byte("PKGNAME=a-1\nA=1\nPKGNAME=a-1\nB"))
	f.Add([]byte("junk\nPKGNAME=x-1\n"))
	f.Add([]byte("PKGNAME=x\n\n\nPKGNAME=ab\n"))
	f.Add([]byte("PKGNAME=seen-1\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var out bytes.Buffer
		e := NewEmitter(&out, func(string) {})
		// A record seen before, so that duplicates get exercised.
		if _, err := e.Emit("pre/seen", []byte("PKGNAME=seen-1\n")); err != nil {
			t.Fatal(err)
		}
		pre := out.Len()
		res, err := e.Emit("cat/pkg", raw)
		if err != nil {
			t.Fatal(err)
		}
		got := out.Bytes()[pre:]
		if len(got) > 0 && got[len(got)-1] != '\n' {
			t.Fatalf("output does not end in a newline: %q", got)
		}
		var rebuilt []byte
		records := 0
		for len(got) > 0 {
			end, ok := recordEnd(got)
			if !ok {
				t.Fatalf("unterminated record in output %q", got)
			}
			rec := got[:end]
			got = got[end:]
			if _, ok := recordName(rec); !ok {
				t.Fatalf("written record with a bad PKGNAME line: %q", rec)
			}
			first := bytes.IndexByte(rec, '\n') + 1
			if !bytes.HasPrefix(rec[first:], []byte("PKG_LOCATION=cat/pkg\n")) {
				t.Fatalf("second line is not PKG_LOCATION: %q", rec)
			}
			rebuilt = appendWithoutLocation(rebuilt, rec)
			records++
		}
		if records != res.Records {
			t.Fatalf("Emit says %d records, output has %d", res.Records, records)
		}
		if res.Complete && !bytes.Equal(rebuilt, raw) {
			t.Fatalf("complete emission does not rebuild the output:\n%q\n%q", rebuilt, raw)
		}
		if !res.Complete && res.Duplicates == 0 && !res.Unrecognized {
			t.Fatalf("incomplete without a reason: %+v", res)
		}
	})
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		done, total, reused int64
		elapsed             time.Duration
		want                string
	}{
		{0, 100, 0, 0, "scanning 0/100 (0 reused) 0.0/s ETA ?"},
		{50, 100, 10, 10 * time.Second, "scanning 50/100 (10 reused) 5.0/s ETA 10s"},
		{100, 100, 0, 20 * time.Second, "scanning 100/100 (0 reused) 5.0/s ETA 0s"},
	}
	for _, tt := range tests {
		if got := progressLine(tt.done, tt.total, tt.reused, tt.elapsed); got != tt.want {
			t.Errorf("progressLine(%d, %d, %d, %v) = %q, want %q", tt.done, tt.total, tt.reused, tt.elapsed, got, tt.want)
		}
	}
}

func TestReadList(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"b/x\na/y\n\n# c/z\na/y  \t\n", "a/y b/x", ""},
		{"cat/pkg#comment\n  \n", "cat/pkg", ""},
		{"a/b/c\n", "", "list:1: location \"a/b/c\" is not category/dir"},
		{"ok/one\ntwo\n", "", "list:2: location \"two\" is not category/dir"},
		{"a/b\tc\n", "", "list:1: location \"a/b\\tc\" contains whitespace"},
		{"ok/one\n/abs/path\n", "", "list:2: location \"/abs/path\" is absolute"},
		{"x/../../etc\n", "", "list:1: location \"x/../../etc\" leaves the pkgsrc tree"},
		{"", "", ""},
	}
	for _, tt := range tests {
		got, err := ReadList("list", strings.NewReader(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadList(%q) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if got == nil {
			t.Errorf("ReadList(%q) = nil: nil means the whole tree", tt.in)
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("ReadList(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestEmitRealOutput runs real pbulk-index output (40 records from a macOS
// pkgsrc tree, multi-version variants included) through the splitter:
// every record is kept, PKG_LOCATION lands second, lib/scan reads the
// result, and the raw output can be rebuilt from it.
func TestEmitRealOutput(t *testing.T) {
	raw, err := os.ReadFile(testenv.SharedData(t, "scan/pbulk-index-raw-darwin-40.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var warns []string
	e := NewEmitter(&out, func(m string) { warns = append(warns, m) })
	res, err := e.Emit("databases/py-mysqlclient", raw)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 40 || !res.Complete || len(warns) != 0 {
		t.Fatalf("got %+v, warnings %q; want 40 records, complete, no warnings", res, warns)
	}
	recs, err := scan.Parse("emitted", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt []byte
	for i := range recs {
		r := &recs[i]
		if r.Location() != "databases/py-mysqlclient" {
			t.Errorf("record %s: PKG_LOCATION %q", r.PkgName(), r.Location())
		}
		lines := bytes.SplitN(r.Text, []byte("\n"), 3)
		if !bytes.HasPrefix(lines[1], []byte("PKG_LOCATION=")) {
			t.Errorf("record %s: second line %q", r.PkgName(), lines[1])
		}
		rebuilt = appendWithoutLocation(rebuilt, r.Text)
	}
	if !bytes.Equal(rebuilt, raw) {
		t.Error("raw output not rebuilt from the emitted records")
	}
	words, all := scanDepends(raw)
	if !all || len(words) < 40*10 {
		t.Errorf("SCAN_DEPENDS: %d words, every record: %v", len(words), all)
	}
}
