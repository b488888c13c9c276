package pattern

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// Spec §7.1.
func TestSpecPatternTable(t *testing.T) {
	tests := []struct {
		id, pattern, pkg  string
		pbulk, pkgInstall bool
	}{
		{"P1", "foo>=1.0", "foo-1.0", true, true},
		{"P2", "foo>=1.0", "foo-0.9", false, false},
		{"P3", "foo>=1.0", "foo-1.0nb1", true, true},
		{"P4", "foo>1.0", "foo-1.0", false, false},
		{"P5", "foo>1.0", "foo-1.0nb1", true, true},
		{"P6", "foo<1.0", "foo-1.0rc1", true, true},
		{"P7", "foo<=1.0", "foo-1.0nb1", false, false},
		{"P8", "foo<=1.0nb1", "foo-1.0nb1", true, true},
		{"P9", "foo>=1<2", "foo-1.99", true, true},
		{"P10", "foo>=1<2", "foo-2.0", false, false},
		{"P11", "foo>=1<2", "foo-2.0rc1", true, true},
		{"P12", "foo>=1<2", "foo-2.0alpha1", true, true},
		{"P13", "foo>1<=2", "foo-2.0nb3", false, false},
		{"P14", "foo>1<=2", "foo-2", true, true},
		{"P15", "foo>=1.0", "foo-bar-1.0", false, false},
		{"P16", "foo-bar>=1.0", "foo-bar-1.0", true, true},
		{"P17", "foo>=1.0", "foo", false, false},
		{"P18", "foo>=0", "foo-0", true, true},
		{"P19", "foo>0", "foo-0nb1", true, true},
		{"P20", "foo<2>1", "foo-1.5", true, true},
		{"P21", "foo<2>1", "foo-2.0", true, true},
		{"P22", "foo>=1.0", "Foo-1.0", false, false},
		{"P23", "foo>=1.0RC1", "foo-1.0rc1", true, true},
		{"P24", "foo-[0-9]*", "foo-1.0", true, true},
		{"P25", "foo-[0-9]*", "foo-bar-1.0", false, false},
		{"P26", "foo-*", "foo-bar-1.0", true, true},
		{"P27", "foo-[0-9]*", "foo-1.0nb2", true, true},
		{"P28", "foo-1.[0-9]*", "foo-1.12", true, true},
		{"P29", "foo-1.[0-9]*", "foo-10.1", false, false},
		{"P30", "py3[0-9]-foo-[0-9]*", "py39-foo-2.0", true, true},
		{"P31", "py3[0-9]-foo-[0-9]*", "py312-foo-2.0", false, false},
		{"P32", "p5-*", "p5-Foo-Bar-1.0", true, true},
		{"P33", "*-foo-[0-9]*", "py312-foo-1.0", true, true},
		{"P34", "foo-?.0", "foo-1.0", true, true},
		{"P35", "foo-[!0-9]*", "foo-x1", true, true},
		{"P36", "{foo,bar}-[0-9]*", "bar-2.0", true, true},
		{"P37", "{foo,bar}-[0-9]*", "baz-2.0", false, false},
		{"P38", "{foo,bar}>=2", "foo-2.1", true, true},
		{"P39", "{foo,bar}>=2", "bar-1.9", false, false},
		{"P40", "{mysql,mariadb}-client>=5.5", "mariadb-client-10.11.4", true, true},
		{"P41", "{a,b{c,d}}-[0-9]*", "bd-1", true, true},
		{"P42", "{a,b{c,d}}-[0-9]*", "b-1", false, false},
		{"P43", "py{311,312}-foo>=1", "py312-foo-1.0", true, true},
		{"P44", "foo-{1.0,2.0}", "foo-2.0", true, true},
		{"P45", "{foo-1.0,bar-[0-9]*}", "foo-1.0", true, true},
		{"P46", "foo-1.0", "foo-1.0", true, true},
		{"P47", "foo-1.0", "foo-1.0nb1", false, false},
		{"P48", "foo", "foo-1.0", false, true},
		{"P49", "foo", "foo", true, true},
		{"P50", "foo-1", "foo-1.0", false, false},
		{"P51", "libX11>=1.8", "libX11-1.8.1", true, true},
		{"P52", "ab>=1", "ab-1", true, true},
	}
	for _, tt := range tests {
		p, err := Compile(tt.pattern)
		if err != nil {
			t.Errorf("%s: Compile(%q): %v", tt.id, tt.pattern, err)
			continue
		}
		if got := p.MatchPbulk(tt.pkg); got != tt.pbulk {
			t.Errorf("%s: %q MatchPbulk(%q) = %v, want %v", tt.id, tt.pattern, tt.pkg, got, tt.pbulk)
		}
		if got := p.MatchPkgInstall(tt.pkg); got != tt.pkgInstall {
			t.Errorf("%s: %q MatchPkgInstall(%q) = %v, want %v", tt.id, tt.pattern, tt.pkg, got, tt.pkgInstall)
		}
	}
}

// Spec §7.2.
func TestSpecVersionTable(t *testing.T) {
	tests := []struct {
		id, a, b string
		want     int
	}{
		{"V1", "1.0", "1.0", 0},
		{"V2", "1.0", "1.0.0", 0},
		{"V3", "1.0", "1.0nb1", -1},
		{"V4", "1.0nb1", "1.0nb2", -1},
		{"V5", "1.0nb10", "1.0nb9", 1},
		{"V6", "1.0", "1.1", -1},
		{"V7", "1.10", "1.9", 1},
		{"V8", "1.01", "1.1", 0},
		{"V9", "2.0", "10.0", -1},
		{"V10", "1.0alpha1", "1.0beta1", -1},
		{"V11", "1.0beta2", "1.0rc1", -1},
		{"V12", "1.0pre1", "1.0rc1", 0},
		{"V13", "1.0rc2", "1.0pre1", 1},
		{"V14", "1.0rc1", "1.0", -1},
		{"V15", "1.0", "1.0pl1", -1},
		{"V16", "1.0pl1", "1.0.1", 0},
		{"V17", "1.0_1", "1.0.1", 0},
		{"V18", "1.0pl1", "1.0.0.1", 1},
		{"V19", "1.0", "1.0a", -1},
		{"V20", "1.0a", "1.0b", -1},
		{"V21", "1.0z", "1.0.26", 0},
		{"V22", "1.0a", "1.0.1", 0},
		{"V23", "1.0A", "1.0a", 0},
		{"V24", "1.0RC1", "1.0rc1", 0},
		{"V25", "1.0alpha", "1.0", -1},
		{"V26", "1.0-1", "1.01", -1},
		{"V27", "1.0+1", "1.01", -1},
		{"V28", "20240101", "2024.01.01", 1},
		{"V29", "0", "0nb0", 0},
		{"V30", "", "0", 0},
		{"V31", "1.2.3nb4", "1.2.3.0nb4", 0},
		{"V32", "1.0nb", "1.0", 0},
		{"V33", "1.0beta", "1.0beta0", 0},
		{"V34", "3.0.0beta1", "3.0.0", -1},
		{"V35", "2.4.7nb1", "2.4.7", 1},
		{"V36", "1.0.0alpha", "1.0alpha", 1},
		{"V37", "1.0alpha1", "1.0.-3.1", -1},
		{"V38", "v1.0", "1.0", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: CompareVersions(%q, %q) = %d, want %d", tt.id, tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("%s: CompareVersions(%q, %q) = %d, want %d", tt.id, tt.b, tt.a, got, -tt.want)
		}
		if got := ParseVersion(tt.a).Compare(ParseVersion(tt.b)); got != tt.want {
			t.Errorf("%s: ParseVersion(%q).Compare(%q) = %d, want %d", tt.id, tt.a, tt.b, got, tt.want)
		}
	}
}

// Spec §7.3.
func TestSpecBestTable(t *testing.T) {
	tests := []struct {
		id, pattern       string
		candidates        []string
		pbulk, pkgInstall string
	}{
		{"B1", "foo-[0-9]*", []string{"foo-1.0", "foo-1.0nb1", "foo-0.9"}, "foo-1.0nb1", "foo-1.0nb1"},
		{"B2", "foo>=1", []string{"foo-1.0", "foo-1.0.0"}, "foo-1.0.0", "foo-1.0"},
		{"B3", "foo-[0-9]*", []string{"foo-1.0.0", "foo-1.0"}, "foo-1.0.0", "foo-1.0"},
		{"B4", "{foo,bar}-[0-9]*", []string{"foo-1.0", "bar-2.0"}, "bar-2.0", "bar-2.0"},
		{"B5", "{foo,bar}-[0-9]*", []string{"foo-2.0", "bar-2.0"}, "foo-2.0", "bar-2.0"},
		{"B6", "py*-foo-[0-9]*", []string{"py311-foo-1.0", "py312-foo-1.0"}, "py312-foo-1.0", "py311-foo-1.0"},
		{"B7", "foo>=1", []string{"foo-1.0rc1", "foo-1.0", "foo-0.9"}, "foo-1.0", "foo-1.0"},
	}
	for _, tt := range tests {
		p, err := Compile(tt.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		// The result must not depend on the candidates' order.
		for _, cands := range [][]string{tt.candidates, reversed(tt.candidates)} {
			if got, ok := p.BestPbulk(cands); !ok || got != tt.pbulk {
				t.Errorf("%s: BestPbulk(%q) = %q, %v; want %q", tt.id, cands, got, ok, tt.pbulk)
			}
			if got, ok := p.BestPkgInstall(cands); !ok || got != tt.pkgInstall {
				t.Errorf("%s: BestPkgInstall(%q) = %q, %v; want %q", tt.id, cands, got, ok, tt.pkgInstall)
			}
		}
	}
	p, _ := Compile("nothing-[0-9]*")
	if got, ok := p.BestPbulk([]string{"foo-1.0"}); ok {
		t.Errorf("BestPbulk with no match = %q, true", got)
	}
	if got, ok := p.BestPkgInstall(nil); ok {
		t.Errorf("BestPkgInstall(nil) = %q, true", got)
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func TestSplitName(t *testing.T) {
	tests := []struct{ in, base, version string }{
		{"py312-foo-bar-1.0", "py312-foo-bar", "1.0"},
		{"foo-1.0", "foo", "1.0"},
		{"foo", "foo", ""},
		{"foo-", "foo", ""},
		{"-1.0", "", "1.0"},
		{"", "", ""},
	}
	for _, tt := range tests {
		b, v := SplitName(tt.in)
		if b != tt.base || v != tt.version {
			t.Errorf("SplitName(%q) = %q, %q; want %q, %q", tt.in, b, v, tt.base, tt.version)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		pattern string
		want    error
	}{
		{"{foo", ErrMalformedAlternate},
		{"{foo,bar", ErrMalformedAlternate},
		{"a{b}{c", ErrMalformedAlternate},
		{"{a,{b}", ErrMalformedAlternate},
		{strings.Repeat("{a,b}", 13), ErrTooManyAlternates},
		{strings.Repeat("{a,b}", 12) + strings.Repeat("{x}", 1000), ErrTooManyAlternates},
		{"foo}", nil},
		{"foo{a,b}}", nil},
		{"{}foo-1.0", nil},
		{strings.Repeat("{a,b}", 12), nil},
		{"", nil},
	}
	for _, tt := range tests {
		_, err := Compile(tt.pattern)
		if !errors.Is(err, tt.want) {
			t.Errorf("Compile(%q) error = %v, want %v", tt.pattern, err, tt.want)
		}
		_, err1 := MatchPbulk(tt.pattern, "foo-1.0")
		_, err2 := MatchPkgInstall(tt.pattern, "foo-1.0")
		if (err1 != nil) != (tt.want != nil) || (err2 != nil) != (tt.want != nil) {
			t.Errorf("MatchPbulk/MatchPkgInstall(%q) errors = %v, %v; want %v", tt.pattern, err1, err2, tt.want)
		}
	}
}

// Edge cases of fnmatch that the vectors do not cover, each checked against
// NetBSD's fnmatch(3) semantics as documented in the package comment.
func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", ".hidden", false},
		{"?hidden", ".hidden", false},
		{"[.]hidden", ".hidden", false},
		{".*", ".hidden", true},
		{"\\.*", ".hidden", true},
		{"a*", "a.b", true},
		{"a?b", "a.b", true},
		{"a/*", "a/b/c", true},
		{"*/c", "a/b/c", true},
		{"[]]x", "]x", true},
		{"[!]]x", "]x", false},
		{"[!]]x", "ax", true},
		{"[^a]x", "ax", false},
		{"[^a]x", "bx", true},
		{"[a-]x", "-x", true},
		{"[-a]x", "-x", true},
		{"[z-a]x", "mx", false},
		{"[\\]]x", "]x", true},
		{"[a\\-z]x", "-x", true},
		{"[a\\-z]x", "bx", false},
		{"foo[", "foo[", true},
		{"foo[a", "foo[a", true},
		{"foo[a", "fooa", false},
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"a\\", "a\\", true},
		{"*a*b*c*", "xaybzc", true},
		{"*a*b*c*", "xaybz", false},
		{"a**b", "ab", true},
		{"***", "", true},
		{"?", "", false},
		{"[0-9]*", "1", true},
		{"[[:digit:]]", "1", false},
		{"[[:digit:]]", "d]", true},
	}
	for _, tt := range tests {
		g := compileGlob(tt.pattern)
		if got := g.match(tt.name); got != tt.want {
			t.Errorf("glob %q on %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
		if got := refFnmatch(tt.pattern, tt.name, true); got != tt.want {
			t.Errorf("reference glob %q on %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestDeweyQuirks(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"foo>=1<2<3", "foo-2.2", true}, // upper bound is "2<3" = [2,3]
		{"foo>=1<2<3", "foo-2.3", true}, // [2,0,3] < [2,3]
		{"foo>=1<2<3", "foo-23", false},
		{"foo>=<2", "foo-0", true}, // empty lower bound = 0
		{"foo>=1.0<", "foo-1.0", false},
		{"foo<", "foo-0alpha", true},
		{"foo>=", "foo-0", true},
		{">=1", "-1.0", true},
		// The lower bound is cut to 1023 bytes, losing the "5".
		{"foo>=" + strings.Repeat("+", 1023) + "5<9", "foo-2", true},
		{"foo>=" + strings.Repeat("+", 1022) + "5<9", "foo-2", false},
		{"foo>=20240101123456", "foo-20240101123457", true},
		{"foo>=99999999999999999999", "foo-100000000000000000000", true},
		{"foo>=99999999999999999999", "foo-099999999999999999998", false},
	}
	for _, tt := range tests {
		p, err := Compile(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.MatchPbulk(tt.name); got != tt.want {
			t.Errorf("%q MatchPbulk(%q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
		if got, _ := refMatch(tt.pattern, tt.name, false); got != tt.want {
			t.Errorf("reference %q on %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestVersionString(t *testing.T) {
	for in, want := range map[string]string{
		"1.0": "[1,0,0]", "1.0alpha1nb2": "[1,0,0,-3,1]nb2", "": "[]", "v1": "[0,22,1]",
		"0099999999999999999999": "[99999999999999999999]",
	} {
		if got := ParseVersion(in).String(); got != want {
			t.Errorf("ParseVersion(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestOverflows(t *testing.T) {
	for s, want := range map[string]bool{
		"2147483647": false, "2147483648": true, "1.0nb2147483648": true,
		"0002147483647": false, "20240101123456": true, "1.0": false,
	} {
		if got := ParseVersion(s).Overflows(); got != want {
			t.Errorf("ParseVersion(%q).Overflows() = %v, want %v", s, got, want)
		}
	}
}

func TestPrefixesExamples(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{"foo>=1", []string{"foo-"}},
		{"{a,b}-[0-9]*", []string{"a-", "b-"}},
		{"*-foo-[0-9]*", []string{""}},
		{"foo", []string{"foo"}},
		{"foo{,-bar}-[0-9]*", []string{"foo-"}},
		{"\\f*", []string{""}},
	}
	for _, tt := range tests {
		p, err := Compile(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Prefixes(); !slices.Equal(got, tt.want) {
			t.Errorf("Compile(%q).Prefixes() = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

type vectorRow struct {
	line                             int
	pattern, name, pkgInstall, pbulk string
}

func readTSV(t testing.TB, rel string, cols int) [][]string {
	t.Helper()
	path := testenv.SharedData(t, rel)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue // header
		}
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) < cols {
			t.Fatalf("%s:%d: %d fields, want %d", path, n, len(fs), cols)
		}
		rows = append(rows, fs)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no rows", path)
	}
	return rows
}

func readPatternVectors(t testing.TB) []vectorRow {
	var out []vectorRow
	for i, fs := range readTSV(t, "vectors/pattern-vectors.tsv", 4) {
		out = append(out, vectorRow{line: i + 2, pattern: fs[0], name: fs[1], pkgInstall: fs[2], pbulk: fs[3]})
	}
	return out
}

func verdict(ok bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case ok:
		return "match"
	}
	return "no"
}

func TestPatternVectors(t *testing.T) {
	rows := readPatternVectors(t)
	for _, r := range rows {
		if got := verdict(MatchPbulk(r.pattern, r.name)); got != r.pbulk {
			t.Errorf("pattern-vectors.tsv:%d: pbulk %q on %q = %s, want %s", r.line, r.pattern, r.name, got, r.pbulk)
		}
		if got := verdict(MatchPkgInstall(r.pattern, r.name)); got != r.pkgInstall {
			t.Errorf("pattern-vectors.tsv:%d: pkg_install %q on %q = %s, want %s", r.line, r.pattern, r.name, got, r.pkgInstall)
		}
	}
	t.Logf("checked %d pattern vectors in both modes", len(rows))
}

func TestDeweyVectors(t *testing.T) {
	ops := map[string]func(int) bool{
		"<": func(c int) bool { return c < 0 }, "<=": func(c int) bool { return c <= 0 },
		">": func(c int) bool { return c > 0 }, ">=": func(c int) bool { return c >= 0 },
		"==": func(c int) bool { return c == 0 }, "!=": func(c int) bool { return c != 0 },
	}
	var checked, overflow, overflowAgree int
	for i, fs := range readTSV(t, "vectors/dewey-vectors.tsv", 4) {
		a, o, b, want := fs[0], fs[1], fs[2], fs[3] == "1"
		f, ok := ops[o]
		if !ok {
			t.Fatalf("dewey-vectors.tsv:%d: unknown operator %q", i+2, o)
		}
		got := f(CompareVersions(a, b))
		if got2 := f(ParseVersion(a).Compare(ParseVersion(b))); got2 != got {
			t.Errorf("dewey-vectors.tsv:%d: CompareVersions and Version.Compare disagree on %q %s %q", i+2, a, o, b)
		}
		if len(fs) > 4 && fs[4] == "int-overflow" {
			overflow++
			if got == want {
				overflowAgree++
			}
			continue
		}
		checked++
		if got != want {
			t.Errorf("dewey-vectors.tsv:%d: %q %s %q = %v, want %v", i+2, a, o, b, got, want)
		}
	}
	t.Logf("checked %d dewey vectors; %d of %d int-overflow rows agree with the C results (not required)", checked, overflowAgree, overflow)
}

// Every name a vector pattern matches, in either mode, starts with one of its
// prefixes. Names are taken from the whole vector file, not just the pattern's
// own rows, so that each pattern meets many non-trivial names.
func TestPrefixesVectors(t *testing.T) {
	rows := readPatternVectors(t)
	var patterns, names []string
	seenP, seenN := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		if !seenP[r.pattern] {
			seenP[r.pattern] = true
			patterns = append(patterns, r.pattern)
		}
		if !seenN[r.name] {
			seenN[r.name] = true
			names = append(names, r.name)
		}
	}
	matches := 0
	for _, ps := range patterns {
		p, err := Compile(ps)
		if err != nil {
			continue
		}
		prefixes := p.Prefixes()
		for _, n := range names {
			if !p.MatchPbulk(n) && !p.MatchPkgInstall(n) {
				continue
			}
			matches++
			if !slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(n, pre) }) {
				t.Errorf("%q matches %q but its prefixes are %q", ps, n, prefixes)
			}
		}
	}
	t.Logf("%d patterns x %d names: %d matches, all covered by Prefixes", len(patterns), len(names), matches)
}

// The compiled matcher agrees with the step-by-step reference on every vector.
func TestReferenceVectors(t *testing.T) {
	for _, r := range readPatternVectors(t) {
		p, err := Compile(r.pattern)
		if err != nil {
			continue
		}
		for _, pi := range []bool{false, true} {
			want, rerr := refMatch(r.pattern, r.name, pi)
			got := p.MatchPbulk(r.name)
			if pi {
				got = p.MatchPkgInstall(r.name)
			}
			if rerr != nil || got != want {
				t.Errorf("line %d: %q on %q (pkg_install=%v): compiled %v, reference %v %v", r.line, r.pattern, r.name, pi, got, want, rerr)
			}
		}
	}
}
