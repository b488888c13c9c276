package pattern

import (
	"errors"
	"strings"
	"testing"
)

var fuzzSeeds = []struct{ pattern, name string }{
	{"foo>=1.0", "foo-1.0nb1"},
	{"foo>=1<2", "foo-2.0rc1"},
	{"foo<2>1", "foo-1.5"},
	{"{a,b{c,d}}-[0-9]*", "bd-1"},
	{"foo{,-bar}>=1.0", "foo-bar-1.0"},
	{"py3[0-9]-foo-[0-9]*", "py39-foo-2.0"},
	{"foo-[!0-9]*", "foo-x1"},
	{"[]a-]x*", "-x"},
	{"\\*?", "*."},
	{"foo", "foo-1.0"},
	{"{foo", "foo-1"},
	{"*", ".x"},
	{"foo>=1.0<2:../../x", "foo-1.5"},
}

func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.pattern)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Compile(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedAlternate) && !errors.Is(err, ErrTooManyAlternates) {
				t.Fatalf("Compile(%q): unexpected error kind %v", s, err)
			}
			if strings.Count(s, "{") == 0 {
				t.Fatalf("Compile(%q) failed without any '{': %v", s, err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q, want %q", p.String(), s)
		}
		if len(p.Prefixes()) == 0 {
			t.Fatalf("Compile(%q).Prefixes() is empty", s)
		}
		// A pattern always matches at least its own brace-free expansions
		// when those contain no special characters.
		if !strings.ContainsAny(s, "{}<>*?[]\\") && !p.MatchPbulk(s) {
			t.Fatalf("plain pattern %q does not match itself", s)
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.pattern, s.name)
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		p, err := Compile(pat)
		okB, errB := MatchPbulk(pat, name)
		okI, errI := MatchPkgInstall(pat, name)
		if err != nil {
			if errB == nil || errI == nil {
				t.Fatalf("Compile(%q) failed (%v) but MatchPbulk/MatchPkgInstall errors are %v, %v", pat, err, errB, errI)
			}
			return
		}
		if errB != nil || errI != nil {
			t.Fatalf("Compile(%q) ok but match errors %v, %v", pat, errB, errI)
		}
		gotB, gotI := p.MatchPbulk(name), p.MatchPkgInstall(name)
		if gotB != okB || gotI != okI {
			t.Fatalf("%q on %q: compiled %v/%v, package functions %v/%v", pat, name, gotB, gotI, okB, okI)
		}
		if gotB && !gotI {
			t.Fatalf("%q on %q: pbulk matches but pkg_install does not", pat, name)
		}
		if gotI {
			covered := false
			for _, pre := range p.Prefixes() {
				if strings.HasPrefix(name, pre) {
					covered = true
				}
			}
			if !covered {
				t.Fatalf("%q matches %q but Prefixes() = %q", pat, name, p.Prefixes())
			}
		}
		// The reference's recursive fnmatch is exponential in the number
		// of stars; keep it to inputs where it is quick.
		if strings.Count(pat, "*") > 4 || len(name) > 64 || len(pat) > 256 || len(p.leaves) > 64 {
			return
		}
		for _, pi := range []bool{false, true} {
			want, rerr := refMatch(pat, name, pi)
			got := gotB
			if pi {
				got = gotI
			}
			if rerr != nil || got != want {
				t.Fatalf("%q on %q (pkg_install=%v): compiled %v, reference %v (%v)", pat, name, pi, got, want, rerr)
			}
		}
	})
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range [][2]string{
		{"1.0", "1.0.0"}, {"1.0nb1", "1.0"}, {"1.0alpha1", "1.0beta1"}, {"1.0a", "1.0.1"},
		{"20240101123456", "2024.01.01"}, {"1.0nb", "0nb99999999999999999999"}, {"v1.0", "1.0-1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, vb := ParseVersion(a), ParseVersion(b)
		if c := va.Compare(va); c != 0 {
			t.Fatalf("%q compares %d with itself", a, c)
		}
		c := CompareVersions(a, b)
		if c < -1 || c > 1 {
			t.Fatalf("CompareVersions(%q, %q) = %d", a, b, c)
		}
		if c2 := va.Compare(vb); c2 != c {
			t.Fatalf("CompareVersions(%q, %q) = %d but Version.Compare = %d", a, b, c, c2)
		}
		if r := CompareVersions(b, a); r != -c {
			t.Fatalf("CompareVersions not antisymmetric on %q, %q: %d, %d", a, b, c, r)
		}
		if r := refCompare(a, b); r != c {
			t.Fatalf("CompareVersions(%q, %q) = %d, math/big reference %d", a, b, c, r)
		}
	})
}
