package scanner

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/scan"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// exampleTree is the bundled example tree, scanned in place: a scan only
// runs make's pbulk-index and show-subdir-var, which write nothing.
func exampleTree(t *testing.T) string {
	t.Helper()
	testenv.Program(t, "bmake")
	tree, err := filepath.Abs(filepath.Join("..", "..", "examples", "tree"))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// closureOf computes, from a full scan's records, the locations reachable
// from roots through ALL_DEPENDS entries, sorted: the reference the
// limited scan is checked against, computed without the scanner's code.
func closureOf(t *testing.T, full string, roots []string) []string {
	t.Helper()
	recs, err := scan.Parse("full", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	for i := range recs {
		v, _ := recs[i].Get(scan.KeyAllDepends)
		for _, f := range strings.Fields(v) {
			_, path, ok := strings.Cut(f, ":../../")
			if !ok {
				t.Fatalf("full scan: entry %q", f)
			}
			deps[recs[i].Location()] = append(deps[recs[i].Location()], path)
		}
	}
	seen := map[string]bool{}
	var visit func(string)
	visit = func(loc string) {
		if seen[loc] {
			return
		}
		seen[loc] = true
		for _, d := range deps[loc] {
			visit(d)
		}
	}
	for _, r := range roots {
		visit(r)
	}
	var out []string
	for loc := range seen {
		out = append(out, loc)
	}
	sort.Strings(out)
	return out
}

// recordsByLocation groups a scan's records by PKG_LOCATION.
func recordsByLocation(t *testing.T, text string) map[string]string {
	t.Helper()
	recs, err := scan.Parse("scan", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for i := range recs {
		m[recs[i].Location()] += string(recs[i].Text)
	}
	return m
}

// TestLimitedFollowsDepends checks --limited on the example tree: make runs
// in exactly the closure of the list, and the output is the full scan's
// records of exactly those locations, in location order.
func TestLimitedFollowsDepends(t *testing.T) {
	tree := exampleTree(t)
	full, stderr, code := pkgscan(t, "", "-C", tree, "-j", "2")
	if code != 0 {
		t.Fatalf("full scan: exit %d: %s", code, stderr)
	}
	byLoc := recordsByLocation(t, full)
	prog, log := countingMake(t)
	tests := []struct {
		name  string
		list  string
		roots []string
		want  int // locations in the closure, to keep the reference honest
	}{
		{"chain and diamond", "misc/exreport\n# a comment\nmisc/diamond-d   \nmisc/exreport\n", []string{"misc/exreport", "misc/diamond-d"}, 10},
		{"multi-version", "net/py-fetch\n", []string{"net/py-fetch"}, 7},
		{"no dependencies", "lang/shlib\n", []string{"lang/shlib"}, 1},
		{"meta package", "meta-pkgs/ex-desktop\n", []string{"meta-pkgs/ex-desktop"}, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			closure := closureOf(t, full, tt.roots)
			if len(closure) != tt.want {
				t.Fatalf("reference closure has %d locations, want %d: %v", len(closure), tt.want, closure)
			}
			var want strings.Builder
			for _, loc := range closure {
				if byLoc[loc] == "" {
					t.Fatalf("closure location %s has no record in the full scan", loc)
				}
				want.WriteString(byLoc[loc])
			}
			list := filepath.Join(t.TempDir(), "list")
			if err := os.WriteFile(list, []byte(tt.list), 0o644); err != nil {
				t.Fatal(err)
			}
			calls(t, log)
			for _, j := range []string{"1", "4"} {
				out, stderr, code := pkgscan(t, "", "-C", tree, "-M", prog, "-j", j, "--limited", list)
				if code != 0 {
					t.Fatalf("-j %s: exit %d: %s", j, code, stderr)
				}
				if out != want.String() {
					t.Errorf("-j %s: output:\n%s\nwant the full scan's records of %v:\n%s", j, out, closure, want.String())
				}
				if got := scanned(tree, calls(t, log)); strings.Join(got, " ") != strings.Join(closure, " ") {
					t.Errorf("-j %s: make pbulk-index ran in %v, want exactly %v", j, got, closure)
				}
			}
			// The same as a plain list of the closure.
			plain, _, code := pkgscan(t, "", append([]string{"-C", tree}, closure...)...)
			if code != 0 || plain != want.String() {
				t.Errorf("pkgscan of the closure's locations differs (exit %d)", code)
			}
		})
	}
	// From stdin too.
	out, stderr, code := pkgscan(t, "lang/shlib\n", "-C", tree, "--limited", "-")
	if code != 0 || out != byLoc["lang/shlib"] {
		t.Errorf("--limited -: exit %d, %s\n%s", code, stderr, out)
	}
}

func TestLimitedBadLists(t *testing.T) {
	tree := exampleTree(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := write("missing", "misc/exreport\n\nmisc/nope # typo\nlang/shlib\naaa/zzz\n")
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  []string
	}{
		{"missing locations", []string{"--limited", missing}, "", []string{
			"pkgscan: " + missing + ":3: location misc/nope is not a package directory of " + tree + "\n" +
				missing + ":5: location aaa/zzz is not a package directory of " + tree + "\n"}},
		{"leaves the tree", []string{"--limited", write("dotdot", "misc/exreport\n../../etc\n")}, "", []string{
			"dotdot:2: location \"../../etc\" leaves the pkgsrc tree"}},
		{"absolute", []string{"--limited", "-"}, "/etc/passwd\n", []string{"stdin:1: location \"/etc/passwd\" is absolute"}},
		{"not category/dir", []string{"--limited", write("deep", "misc\n")}, "", []string{"deep:1: location \"misc\" is not category/dir"}},
		{"empty", []string{"--limited", write("empty", "# nothing\n\n")}, "", []string{"empty: the limited list names no location"}},
		{"unreadable", []string{"--limited", filepath.Join(dir, "nonexistent")}, "", []string{"read limited list", "nonexistent"}},
		{"with -l", []string{"--limited", missing, "-l", missing}, "", []string{"--limited takes the list"}},
		{"with locations", []string{"--limited", missing, "lang/shlib"}, "", []string{"--limited takes the list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := pkgscan(t, tt.stdin, append([]string{"-C", tree}, tt.args...)...)
			if code != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// TestLimitedBadDepends: entries that name no location inside the tree
// are reported and not followed (exit 1); a dependency whose directory is
// missing fails to scan like any location.
func TestLimitedBadDepends(t *testing.T) {
	tree := copyTree(t, "tree")
	pkg := filepath.Join(tree, "www", "evil")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	mk := "DISTNAME=\tevil-1.0\n" +
		"DEPENDS+=\tpython312>=3.12:../../lang/python312\n" +
		"DEPENDS+=\tetc>=1:../../../../etc\n" +
		"DEPENDS+=\tabs>=1:/etc\n" +
		"DEPENDS+=\tgone>=1:../../devel/gone\n" +
		".include \"../../mk/bsd.pkg.mk\"\n"
	if err := os.WriteFile(filepath.Join(pkg, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := pkgscan(t, "www/evil\n", "-C", tree, "--limited", "-")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	var locs []string
	for loc := range recordsByLocation(t, out) {
		locs = append(locs, loc)
	}
	sort.Strings(locs)
	if strings.Join(locs, " ") != "lang/python312 www/evil" {
		t.Errorf("records of %v, want lang/python312 www/evil:\n%s", locs, out)
	}
	for _, w := range []string{
		`pkgscan: Incorrect dependency "etc>=1:../../../../etc" of www/evil, not followed: location "../../etc" leaves the pkgsrc tree` + "\n",
		`pkgscan: Incorrect dependency "abs>=1:/etc" of www/evil, not followed: not PATTERN:../../PATH` + "\n",
		"pkgscan: Scan failed for devel/gone\n  no such package directory (in " + tree + "/devel/gone)\n",
		"pkgscan: 1 of 3 locations failed to scan, 2 dependencies not followed\n",
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

// TestLimitedReuse: a limited scan reuses an earlier one like a full scan.
func TestLimitedReuse(t *testing.T) {
	tree := copyTree(t, "tree")
	prog, log := countingMake(t)
	out := filepath.Join(t.TempDir(), "pscan")
	first, stderr, code := pkgscan(t, "www/site\n", "-C", tree, "-M", prog, "--limited", "-", "-o", out)
	if code != 0 || first != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := scanned(tree, calls(t, log)); strings.Join(got, " ") != "lang/python312 www/site" {
		t.Fatalf("scanned %v", got)
	}
	want, _ := os.ReadFile(out)
	again, stderr, code := pkgscan(t, "www/site\n", "-C", tree, "-M", prog, "--limited", "-", "--reuse", out)
	if code != 0 || again != string(want) {
		t.Errorf("exit %d, %s: output differs:\n%s\nwant:\n%s", code, stderr, again, want)
	}
	if got := scanned(tree, calls(t, log)); len(got) != 0 {
		t.Errorf("an unchanged tree ran make in %v", got)
	}
}

func TestDependLocations(t *testing.T) {
	raw := "PKGNAME=a-1\nALL_DEPENDS=  b>=1:../../x/b\tc-[0-9]*:../../y/c  b>=2:../../x/b\n" +
		"XALL_DEPENDS=q:../../q/q\nPKGNAME=a2-1\nALL_DEPENDS=d:../../z/../../etc e:x/e f:../../g/h/i\nALL_DEPENDS=\n"
	locs, bad := dependLocations([]byte(raw))
	if strings.Join(locs, " ") != "x/b y/c x/b" {
		t.Errorf("locations %q", locs)
	}
	var got []string
	for _, b := range bad {
		got = append(got, b.entry+": "+b.err.Error())
	}
	want := []string{
		`d:../../z/../../etc: location "z/../../etc" leaves the pkgsrc tree`,
		"e:x/e: not PATTERN:../../PATH",
		`f:../../g/h/i: location "g/h/i" is not category/dir`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bad entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func FuzzDependLocations(f *testing.F) {
	f.Add([]byte("ALL_DEPENDS= b>=1:../../x/b c:../../../etc\td:e\n"))
	f.Add([]byte("PKGNAME=a-1\nALL_DEPENDS=x:../../a/b"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		locs, bad := dependLocations(raw)
		for _, l := range locs {
			if err := scan.CheckLocation(l); err != nil {
				t.Fatalf("returned %q: %v", l, err)
			}
		}
		for _, b := range bad {
			if b.err == nil || b.entry == "" {
				t.Fatalf("bad entry %+v", b)
			}
		}
	})
}
