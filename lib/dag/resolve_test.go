package dag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// rec builds one pscan record the way pbulk-scan writes it. extra lines
// (KEY=VALUE) are appended before SCAN_DEPENDS.
func rec(name, loc, deps string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "PKGNAME=%s\nPKG_LOCATION=%s\nALL_DEPENDS=%s\n", name, loc, deps)
	skip, fail := "", ""
	var rest []string
	for _, e := range extra {
		switch {
		case strings.HasPrefix(e, "PKG_SKIP_REASON="):
			skip = strings.TrimPrefix(e, "PKG_SKIP_REASON=")
		case strings.HasPrefix(e, "PKG_FAIL_REASON="):
			fail = strings.TrimPrefix(e, "PKG_FAIL_REASON=")
		default:
			rest = append(rest, e)
		}
	}
	fmt.Fprintf(&b, "PKG_SKIP_REASON=%s\nPKG_FAIL_REASON=%s\nNO_BIN_ON_FTP=\nRESTRICTED=\nCATEGORIES=%s\n", skip, fail, strings.Split(loc, "/")[0])
	b.WriteString("MAINTAINER=pkgsrc-users@NetBSD.org\nUSE_DESTDIR=user-destdir\nBOOTSTRAP_PKG=\nUSERGROUP_PHASE=\n")
	b.WriteString("SCAN_DEPENDS=../../mk/bsd.pkg.mk Makefile\n")
	for _, e := range rest {
		b.WriteString(e + "\n")
	}
	return b.String()
}

func resolveText(t *testing.T, text string) (*Graph, error) {
	t.Helper()
	recs, err := scan.Parse("test.scan", []byte(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return Resolve(context.Background(), recs, 2)
}

// deps returns the DEPENDS value of pkgname, or "-" when there is none.
func dependsOf(g *Graph, pkgname string) string {
	i, ok := g.Lookup(pkgname)
	if !ok {
		return "?"
	}
	v, ok := g.DependsValue(i)
	if !ok {
		return "-"
	}
	return v
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name string
		scan string
		want map[string]string // pkgname -> DEPENDS value ("-" none)
	}{
		{
			name: "greatest version wins",
			scan: rec("app-1", "a/app", "foo-[0-9]*:../../x/foo") +
				rec("foo-1.0", "x/foo", "") + rec("foo-1.0nb1", "x/foo1", "") + rec("foo-0.9", "x/foo0", ""),
			want: map[string]string{"app-1": "foo-1.0nb1", "foo-1.0": "-"},
		},
		{
			name: "equal versions: the greater name wins (pbulk, not pkg_install)",
			scan: rec("app-1", "a/app", "foo>=1:../../x/foo py*-bar-[0-9]*:../../x/bar") +
				rec("foo-1.0", "x/foo", "") + rec("foo-1.0.0", "x/foo2", "") +
				rec("py311-bar-1.0", "x/bar", "") + rec("py312-bar-1.0", "x/bar", ""),
			want: map[string]string{"app-1": "foo-1.0.0 py312-bar-1.0"},
		},
		{
			name: "dedupe: a pattern an earlier choice matches adds nothing",
			scan: rec("app-1", "a/app", "  foo>=1<2:../../x/foo\tfoo-[0-9]*:../../x/foo   bar-[0-9]*:../../x/bar foo>=1:../../x/foo") +
				rec("foo-1.5", "x/foo", "") + rec("foo-2.0", "x/foo", "") + rec("bar-1", "x/bar", ""),
			// foo-[0-9]* alone would pick foo-2.0, but foo-1.5 (chosen
			// first) matches it, so the entry is skipped.
			want: map[string]string{"app-1": "foo-1.5 bar-1"},
		},
		{
			name: "location is not used to choose",
			scan: rec("app-1", "a/app", "py312-foo>=1:../../devel/py-foo") +
				rec("py312-foo-1.0", "devel/py-foo-other", "") +
				rec("py311-foo-1.0", "devel/py-foo", ""),
			want: map[string]string{"app-1": "py312-foo-1.0"},
		},
		{
			name: "prefailed packages are candidates",
			scan: rec("app-1", "a/app", "foo>=1:../../x/foo") +
				rec("foo-1.0", "x/foo", "", `PKG_SKIP_REASON="not on this platform"`) +
				rec("foo-0.5", "x/foo", ""),
			want: map[string]string{"app-1": "foo-1.0"},
		},
		{
			name: "alternates and globs resolve against every record",
			scan: rec("app-1", "a/app", "{mysql,mariadb}-client>=5.5:../../db/mysql-client") +
				rec("mysql-client-8.0", "db/mysql-client", "") + rec("mariadb-client-10.11.4", "db/mariadb-client", ""),
			want: map[string]string{"app-1": "mariadb-client-10.11.4"},
		},
		{
			name: "empty ALL_DEPENDS: no DEPENDS line",
			scan: rec("leaf-1", "a/leaf", "") + rec("blank-1", "a/blank", "   "),
			want: map[string]string{"leaf-1": "-", "blank-1": "-"},
		},
		{
			name: "unresolved: no DEPENDS line, even with other patterns resolved",
			scan: rec("app-1", "a/app", "foo-[0-9]*:../../x/foo nope>=1:../../x/nope") + rec("foo-1", "x/foo", ""),
			want: map[string]string{"app-1": "-"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := resolveText(t, tt.scan)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := dependsOf(g, name); got != want {
					t.Errorf("DEPENDS of %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestLocationMismatch(t *testing.T) {
	in := rec("app-1", "a/app", "py312-foo>=1:../../devel/py-foo foo-[0-9]*:../../x/foo py312-foo-[0-9]*:../../devel/py-foo2") +
		rec("py312-foo-1.0", "devel/py-foo-other", "") + rec("foo-1", "x/foo", "")
	g, err := resolveText(t, in)
	if err != nil {
		t.Fatal(err)
	}
	i, _ := g.Lookup("app-1")
	foo, _ := g.Lookup("py312-foo-1.0")
	want := []Mismatch{{"py312-foo>=1", "devel/py-foo", foo}, {"py312-foo-[0-9]*", "devel/py-foo2", foo}}
	if !slices.Equal(g.Pkgs[i].Mismatches, want) {
		t.Errorf("mismatches %v, want %v", g.Pkgs[i].Mismatches, want)
	}
	code, _, stderr := pkgdag(t, in, "presolve", "-v", "-")
	if code != 0 || !strings.Contains(stderr, "pkgdag: Best matching py312-foo-1.0 differs from location devel/py-foo2 for dependency py312-foo-[0-9]* of package app-1\n") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
	if _, _, stderr := pkgdag(t, in, "presolve", "-"); strings.Contains(stderr, "Best matching") {
		t.Errorf("location warnings without -v: %s", stderr)
	}
}

func TestUnresolvedRewritesFailReason(t *testing.T) {
	in := rec("app-1.0", "a/app", "nope>=1:../../x/nope foo-[0-9]*:../../x/foo gone-[0-9]*:../../y/gone",
		`PKG_FAIL_REASON="old reason"`) + rec("foo-1", "x/foo", "")
	g, err := resolveText(t, in)
	if err != nil {
		t.Fatal(err)
	}
	i, _ := g.Lookup("app-1.0")
	want := []Unresolved{{"nope>=1", "x/nope"}, {"gone-[0-9]*", "y/gone"}}
	if !slices.Equal(g.Pkgs[i].Unresolved, want) {
		t.Errorf("unresolved = %v, want %v", g.Pkgs[i].Unresolved, want)
	}
	if len(g.Pkgs[i].Deps) != 0 {
		t.Errorf("an unresolved package keeps edges: %v", g.Pkgs[i].Deps)
	}
	var out bytes.Buffer
	if err := g.WritePresolve(&out, nil); err != nil {
		t.Fatal(err)
	}
	// The last unresolved pattern wins and replaces the line in place.
	wantText := strings.Replace(in, `PKG_FAIL_REASON="old reason"`, `PKG_FAIL_REASON="could not resolve dependency "gone-[0-9]*""`, 1)
	if out.String() != wantText {
		t.Errorf("presolve:\n%s\nwant:\n%s", out.String(), wantText)
	}
}

func TestPresolveAppendsDepends(t *testing.T) {
	in := rec("app-1.0", "a/app", "foo-[0-9]*:../../x/foo", "MULTI_VERSION= PYTHON_VERSION_REQD=312") + rec("foo-1", "x/foo", "")
	g, err := resolveText(t, in)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	g.WritePresolve(&out, nil)
	recs := strings.SplitAfter(in, "MULTI_VERSION= PYTHON_VERSION_REQD=312\n")
	want := recs[0] + "DEPENDS=foo-1\n" + recs[1]
	if out.String() != want {
		t.Errorf("presolve:\n%s\nwant:\n%s", out.String(), want)
	}
	// Resolving pbulk-resolve's own output again changes nothing (its
	// records carry DEPENDS and are left alone).
	g2, err := resolveText(t, out.String())
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	g2.WritePresolve(&again, nil)
	if again.String() != out.String() {
		t.Errorf("presolve of presolve differs:\n%s", again.String())
	}
	if i, _ := g2.Lookup("app-1.0"); !g2.Pkgs[i].Predepends || len(g2.Pkgs[i].Deps) != 1 || g2.Pkgs[i].Deps[0].Pattern != "foo-[0-9]*" {
		t.Errorf("DEPENDS of a presolve record not taken over: %+v", g2.Pkgs[i])
	}
}

func TestResolveBadInput(t *testing.T) {
	good := rec("foo-1.0", "x/foo", "")
	tests := []struct {
		name string
		scan string
		line int
		msg  string
	}{
		{"entry without path", good + rec("app-1", "a/app", "foo>=1"), 16, "Incorrect dependency for app-1"},
		{"path without ../../", good + rec("app-1", "a/app", "foo>=1:x/foo"), 16, "Incorrect dependency for app-1"},
		{"malformed pattern", good + rec("app-1", "a/app", "{foo,bar-[0-9]*:../../x/foo"), 16, "malformed dependency pattern"},
		{"duplicate PKGNAME", good + rec("foo-1.0", "y/foo", ""), 14, "duplicate package foo-1.0 (first at test.scan:1)"},
		{"short PKGNAME", good + rec("ab", "y/ab", ""), 14, "shorter than 4"},
		{"no PKG_LOCATION", good + "PKGNAME=bar-1\nALL_DEPENDS=\n", 14, "no PKG_LOCATION"},
		{"no ALL_DEPENDS", good + "PKGNAME=bar-1\nPKG_LOCATION=x/bar\n", 14, "No ALL_DEPENDS line for bar-1"},
		{"unknown DEPENDS name", good + rec("app-1", "a/app", "foo>=1:../../x/foo", "DEPENDS=foo-2.0"), 27, "dependency foo-2.0 of app-1 does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveText(t, tt.scan)
			if err == nil {
				t.Fatal("no error")
			}
			var se *scan.Error
			if !errors.As(err, &se) {
				t.Fatalf("%v is not a *scan.Error", err)
			}
			want := fmt.Sprintf("test.scan:%d: ", tt.line)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want %q...%q", err, want, tt.msg)
			}
		})
	}
}

func TestAnalyzeDepthWeightStates(t *testing.T) {
	// base <- lib <- app1, app2; lib2 <- app2; tool prefailed <- user
	in := rec("base-1", "x/base", "", "PBULK_WEIGHT=10") +
		rec("lib-1", "x/lib", "base-[0-9]*:../../x/base") +
		rec("lib2-1", "x/lib2", "") +
		rec("app1-1", "x/app1", "lib-[0-9]*:../../x/lib base>=1:../../x/base", "PBULK_WEIGHT=1000") +
		rec("app2-1", "x/app2", "lib-[0-9]*:../../x/lib lib2-[0-9]*:../../x/lib2") +
		rec("tool-1", "x/tool", "", `PKG_SKIP_REASON="no"`) +
		rec("user-1", "x/user", "tool-[0-9]*:../../x/tool lib2>=1:../../x/lib2") +
		rec("user2-1", "x/user2", "user-[0-9]*:../../x/user") +
		rec("lost-1", "x/lost", "missing-[0-9]*:../../x/missing lib-1:../../x/lib")
	g, err := resolveText(t, in)
	if err != nil {
		t.Fatal(err)
	}
	a := g.Analyze(nil)
	want := []struct {
		name          string
		depth         int
		weight        int64
		state, detail string
	}{
		{"base-1", 4, 10 + 100 + 1000 + 100, StateOpen, ""},
		{"lib-1", 3, 100 + 1000 + 100, StateOpen, ""}, // lost-1 has no edges: unresolved
		{"lib2-1", 4, 100 + 100 + 100 + 100, StateOpen, ""},
		{"app1-1", 1, 1000, StateOpen, ""},
		{"tool-1", 3, 300, StatePrefailed, `PKG_SKIP_REASON="no"`},
		{"user-1", 2, 200, StateIndirectPrefailed, "tool-1"},
		{"user2-1", 1, 100, StateIndirectPrefailed, "tool-1"},
		{"lost-1", 1, 100, StatePrefailed, `PKG_FAIL_REASON="could not resolve dependency "missing-[0-9]*""`},
	}
	for _, w := range want {
		i, _ := g.Lookup(w.name)
		if a.Depth[i] != w.depth || a.Weight[i] != w.weight || a.State[i] != w.state || a.Detail[i] != w.detail {
			t.Errorf("%s: depth %d weight %d state %s (%s); want %d %d %s (%s)", w.name,
				a.Depth[i], a.Weight[i], a.State[i], a.Detail[i], w.depth, w.weight, w.state, w.detail)
		}
	}
	if len(a.Cycles) != 0 {
		t.Errorf("cycles %v", a.Cycles)
	}
}

func TestAnalyzeCycles(t *testing.T) {
	in := rec("aa-1", "x/a", "bb-[0-9]*:../../x/b") +
		rec("bb-1", "x/b", "cc-[0-9]*:../../x/c leaf-[0-9]*:../../x/leaf") +
		rec("cc-1", "x/c", "aa>=1:../../x/a") +
		rec("top-1", "x/top", "aa-[0-9]*:../../x/a") +
		rec("self-1", "x/self", "self-[0-9]*:../../x/self") +
		rec("leaf-1", "x/leaf", "") +
		rec("ok-1", "x/ok", "leaf-[0-9]*:../../x/leaf")
	g, err := resolveText(t, in)
	if err != nil {
		t.Fatal(err)
	}
	a := g.Analyze(nil)
	idx := func(n string) int { i, _ := g.Lookup(n); return i }
	wantCycles := [][]int{{idx("aa-1"), idx("bb-1"), idx("cc-1")}, {idx("self-1")}}
	if len(a.Cycles) != 2 {
		t.Fatalf("cycles %v, want %v", a.Cycles, wantCycles)
	}
	for k := range wantCycles {
		got := slices.Clone(a.Cycles[k])
		slices.Sort(got)
		if !slices.Equal(got, wantCycles[k]) {
			t.Errorf("cycle %d = %v, want %v", k, got, wantCycles[k])
		}
	}
	for _, n := range []string{"aa-1", "bb-1", "cc-1", "self-1"} {
		if a.State[idx(n)] != StatePrefailed || !strings.HasPrefix(a.Detail[idx(n)], "dependency cycle: ") {
			t.Errorf("%s: %s (%s), want prefailed by the cycle", n, a.State[idx(n)], a.Detail[idx(n)])
		}
	}
	if a.State[idx("top-1")] != StateIndirectPrefailed || a.State[idx("ok-1")] != StateOpen || a.State[idx("leaf-1")] != StateOpen {
		t.Errorf("states top %s ok %s leaf %s", a.State[idx("top-1")], a.State[idx("ok-1")], a.State[idx("leaf-1")])
	}
	// Members count the other members and top-1; leaf-1 counts all but itself.
	for n, d := range map[string]int{"aa-1": 4, "bb-1": 4, "cc-1": 4, "top-1": 1, "self-1": 1, "leaf-1": 6, "ok-1": 1} {
		if a.Depth[idx(n)] != d {
			t.Errorf("depth of %s = %d, want %d", n, a.Depth[idx(n)], d)
		}
	}
	var msg bytes.Buffer
	WriteCycles(&msg, g, a)
	for _, s := range []string{"dependency cycle 1: aa-1 bb-1 cc-1", "cc-1 -> aa-1 (pattern aa>=1, test.scan:", "dependency cycle 2: self-1", "self-1 -> self-1 (pattern self-[0-9]*"} {
		if !strings.Contains(msg.String(), s) {
			t.Errorf("cycle report lacks %q:\n%s", s, msg.String())
		}
	}
}

func TestLimitedClosure(t *testing.T) {
	in := rec("base-1", "x/base", "") +
		rec("lib-1", "x/lib", "base-[0-9]*:../../x/base") +
		rec("py311-mod-1", "x/py-mod", "lib-[0-9]*:../../x/lib", "MULTI_VERSION= PYTHON_VERSION_REQD=311") +
		rec("py312-mod-1", "x/py-mod", "", "MULTI_VERSION= PYTHON_VERSION_REQD=312") +
		rec("other-1", "x/other", "lib-[0-9]*:../../x/lib")
	g, err := resolveText(t, in)
	if err != nil {
		t.Fatal(err)
	}
	list := ParseLimited("list", []byte("# my packages\nx/py-mod   \n\n  \nx/py-mod # again\n"))
	if len(list) != 1 || list[0].Path != "x/py-mod" || list[0].Line != 2 {
		t.Fatalf("ParseLimited = %+v", list)
	}
	sel, err := g.SelectPaths(list)
	if err != nil {
		t.Fatal(err)
	}
	a := g.Analyze(sel)
	for name, want := range map[string]bool{"base-1": true, "lib-1": true, "py311-mod-1": true, "py312-mod-1": true, "other-1": false} {
		i, _ := g.Lookup(name)
		if a.Selected[i] != want {
			t.Errorf("%s selected = %v, want %v", name, a.Selected[i], want)
		}
	}
	// Depth counts build-set dependents only: other-1 is not built.
	lib, _ := g.Lookup("lib-1")
	if a.Depth[lib] != 2 || g.Analyze(nil).Depth[lib] != 3 {
		t.Errorf("depth of lib-1: %d limited, %d full; want 2 and 3", a.Depth[lib], g.Analyze(nil).Depth[lib])
	}
	_, err = g.SelectPaths(ParseLimited("list", []byte("x/base\nx/nope\n")))
	if err == nil || err.Error() != "list:2: pkgpath x/nope is not in the scan" {
		t.Errorf("unknown pkgpath: %v", err)
	}
}

// TestDepthBruteForce checks Depth and Weight against a plain walk over
// dependents on random graphs with cycles.
func TestDepthBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		n := 5 + rng.IntN(60)
		var b strings.Builder
		for i := 0; i < n; i++ {
			var deps []string
			for j := 0; j < n; j++ {
				// Mostly edges to earlier packages, a few back edges.
				if (j < i && rng.IntN(6) == 0) || (j > i && rng.IntN(60) == 0) {
					deps = append(deps, fmt.Sprintf("p%d-[0-9]*:../../x/p%d", j, j))
				}
			}
			w := fmt.Sprintf("PBULK_WEIGHT=%d", 1+rng.IntN(200))
			b.WriteString(rec(fmt.Sprintf("p%d-1", i), fmt.Sprintf("x/p%d", i), strings.Join(deps, " "), w))
		}
		g, err := resolveText(t, b.String())
		if err != nil {
			t.Fatal(err)
		}
		// Every other round is a limited build of a few random packages.
		var limited []int
		if round%2 == 1 {
			limited = []int{}
			for v := 0; v < n; v++ {
				if rng.IntN(8) == 0 {
					limited = append(limited, v)
				}
			}
		}
		a := g.Analyze(limited)
		rdeps := g.reverse()
		for v := 0; v < n; v++ {
			seen := map[int32]bool{}
			stack := []int32{int32(v)}
			for len(stack) > 0 {
				u := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				for _, x := range rdeps[u] {
					if !seen[x] {
						seen[x] = true
						stack = append(stack, x)
					}
				}
			}
			delete(seen, int32(v))
			if limited != nil && a.Selected[v] {
				// Inside the build set only build-set dependents count.
				for u := range seen {
					if !a.Selected[u] {
						delete(seen, u)
					}
				}
			}
			w := int64(scan.PbulkWeight(&g.Recs[v]))
			for u := range seen {
				w += int64(scan.PbulkWeight(&g.Recs[u]))
			}
			if a.Depth[v] != len(seen)+1 || a.Weight[v] != w {
				t.Fatalf("round %d: %s depth %d weight %d, want %d %d", round, g.Pkgs[v].Name, a.Depth[v], a.Weight[v], len(seen)+1, w)
			}
		}
	}
}
