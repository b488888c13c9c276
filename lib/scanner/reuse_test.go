package scanner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// rewrite replaces a file's content and dates it a minute back: a real
// edit, made before the scan that should notice it.
func rewrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	ago := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, ago, ago); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, path string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// reuseEnv is a tree, a counting make and a scan output with its cache.
type reuseEnv struct {
	t    *testing.T
	tree string
	mk   string
	log  string
	dir  string
	n    int
}

func newReuseEnv(t *testing.T) *reuseEnv {
	e := &reuseEnv{t: t, tree: copyTree(t, "tree"), dir: t.TempDir()}
	e.mk, e.log = countingMake(t)
	return e
}

// scan runs pkgscan -o <new file> (with --reuse prev unless prev is "")
// and returns the output path, its content and the make invocations.
func (e *reuseEnv) scan(prev string, extra ...string) (string, string, []string) {
	e.t.Helper()
	e.n++
	out := filepath.Join(e.dir, "pscan"+string(rune('0'+e.n)))
	args := []string{"-C", e.tree, "-M", e.mk, "-j", "2", "-o", out}
	if prev != "" {
		args = append(args, "--reuse", prev)
	}
	args = append(args, extra...)
	_, stderr, code := pkgscan(e.t, "", args...)
	if code != 0 {
		e.t.Fatalf("pkgscan %v: exit %d\n%s", args, code, stderr)
	}
	return out, readFile(e.t, out), calls(e.t, e.log)
}

// fresh is the output of a scan that reuses nothing.
func (e *reuseEnv) fresh() string {
	e.t.Helper()
	_, content, _ := e.scan("", "--no-cache")
	return content
}

func TestReuseWithCache(t *testing.T) {
	e := newReuseEnv(t)
	first, firstOut, c := e.scan("")
	if got := scanned(e.tree, c); len(got) != 9 {
		t.Fatalf("first scan ran pbulk-index in %d locations, want 9: %v", len(got), got)
	}
	if _, err := os.Stat(first + ".cache"); err != nil {
		t.Fatalf("no cache beside the output: %v", err)
	}

	// Nothing changed: not a single make, byte-identical output.
	second, out, c := e.scan(first)
	if len(c) != 0 {
		t.Errorf("unchanged tree ran make %d times: %v", len(c), c)
	}
	if out != firstOut {
		t.Errorf("reused output differs from the fresh scan:\n%s\nwant:\n%s", out, firstOut)
	}

	// Touched without change (shared mk file, a package Makefile, a
	// category Makefile, the top Makefile): hashes match, nothing rescans.
	now := time.Now().Add(-time.Second)
	for _, f := range []string{"mk/extra.mk", "mk/bsd.pkg.mk", "devel/alpha/Makefile", "devel/Makefile", "Makefile"} {
		touch(t, filepath.Join(e.tree, f), now)
	}
	third, out, c := e.scan(second)
	if len(c) != 0 {
		t.Errorf("touched-only tree ran make %d times: %v", len(c), c)
	}
	if out != firstOut {
		t.Errorf("output after touch differs from the fresh scan")
	}

	// A changed mk file rescans exactly the packages that read it.
	extra := filepath.Join(e.tree, "mk/extra.mk")
	rewrite(t, extra, readFile(t, extra)+"# a comment that changes the hash\n")
	fourth, out, c := e.scan(third)
	if got, want := scanned(e.tree, c), []string{"devel/alpha", "lang/py-multi"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after changing mk/extra.mk, rescanned %v, want %v (all calls: %v)", got, want, c)
	}
	if out != firstOut {
		t.Errorf("output after a no-op mk change differs")
	}
	// ... and a change that alters the records shows up in them.
	rewrite(t, extra, strings.Replace(readFile(t, extra), "?=\tplain", "?=\tfancy", 1))
	fifth, out, c := e.scan(fourth)
	if got, want := scanned(e.tree, c), []string{"devel/alpha", "lang/py-multi"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after editing mk/extra.mk, rescanned %v, want %v", got, want)
	}
	if strings.Contains(out, "ALL_DEPENDS= cwrappers>=20150314:../../devel/beta beta") {
		t.Errorf("devel/alpha's record still has the old ALL_DEPENDS")
	}
	if want := e.fresh(); out != want {
		t.Errorf("output after an mk edit differs from a fresh scan:\n%s\nwant:\n%s", out, want)
	}

	// A Makefile.common shared by two packages.
	common := filepath.Join(e.tree, "devel/gamma/Makefile.common")
	rewrite(t, common, strings.Replace(readFile(t, common), "3.0", "3.1", 1))
	sixth, out, c := e.scan(fifth)
	if got, want := scanned(e.tree, c), []string{"devel/gamma", "devel/gamma-doc"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after editing gamma's Makefile.common, rescanned %v, want %v", got, want)
	}
	if !strings.Contains(out, "PKGNAME=gamma-doc-3.1\n") {
		t.Errorf("gamma-doc's new version is missing")
	}

	// A new file in a package directory (make could test for it) rescans
	// that package only.
	rewrite(t, filepath.Join(e.tree, "www/site/options.mk"), "# new\n")
	seventh, _, c := e.scan(sixth)
	if got, want := scanned(e.tree, c), []string{"www/site"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after adding www/site/options.mk, rescanned %v, want %v", got, want)
	}

	// A new package directory and a removed one: the category walk reruns
	// for the changed categories only, the new package is scanned, the
	// removed one's records are gone.
	if err := os.MkdirAll(filepath.Join(e.tree, "devel/epsilon"), 0o755); err != nil {
		t.Fatal(err)
	}
	rewrite(t, filepath.Join(e.tree, "devel/epsilon/Makefile"), "DISTNAME=\tepsilon-0.5\nCATEGORIES=\tdevel\n\n.include \"../../mk/bsd.pkg.mk\"\n")
	develMk := filepath.Join(e.tree, "devel/Makefile")
	rewrite(t, develMk, strings.Replace(readFile(t, develMk), "SUBDIR+=\tgamma-doc\n", "SUBDIR+=\tgamma-doc\nSUBDIR+=\tepsilon\n", 1))
	wwwMk := filepath.Join(e.tree, "www/Makefile")
	rewrite(t, wwwMk, strings.Replace(readFile(t, wwwMk), "SUBDIR+=\tsite\n", "", 1))
	if err := os.RemoveAll(filepath.Join(e.tree, "www/site")); err != nil {
		t.Fatal(err)
	}
	_, out, c = e.scan(seventh)
	if got, want := scanned(e.tree, c), []string{"devel/epsilon"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after adding devel/epsilon, rescanned %v, want %v", got, want)
	}
	walks := 0
	for _, call := range c {
		if strings.Contains(call, "show-subdir-var") {
			walks++
			if !strings.HasPrefix(call, e.tree+"/devel ") && !strings.HasPrefix(call, e.tree+"/www ") {
				t.Errorf("walk reran in an unchanged directory: %s", call)
			}
		}
	}
	if walks != 2 {
		t.Errorf("%d show-subdir-var runs, want 2 (devel, www): %v", walks, c)
	}
	if !strings.Contains(out, "PKGNAME=epsilon-0.5\nPKG_LOCATION=devel/epsilon\n") || strings.Contains(out, "www/site") {
		t.Errorf("new/removed packages not reflected:\n%s", out)
	}
	if want := e.fresh(); out != want {
		t.Errorf("output after adding/removing packages differs from a fresh scan")
	}
}

func TestReuseCacheNotMatching(t *testing.T) {
	e := newReuseEnv(t)
	first, _, _ := e.scan("")
	// The cache describes another output: ignored, pbulk's rule used.
	if err := os.WriteFile(first, []byte(readFile(t, first)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(first, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("PKGNAME=extra-1\nPKG_LOCATION=gone/extra\nSCAN_DEPENDS=Makefile\n")
	f.Close()
	future := time.Now().Add(time.Hour)
	touch(t, first, future)
	var stderr string
	args := []string{"-C", e.tree, "-M", e.mk, "-j", "2", "--reuse", first}
	_, stderr, code := pkgscan(t, "", args...)
	if code != 0 || !strings.Contains(stderr, "describes another output") {
		t.Errorf("exit %d, stderr %q; want a note that the cache was not used", code, stderr)
	}
	c := calls(t, e.log)
	if got := scanned(e.tree, c); len(got) != 0 {
		t.Errorf("pbulk rule with an old scan newer than every file rescanned %v", got)
	}

	// A cache made under other MAKE* variables is not used either.
	second, _, _ := e.scan("")
	t.Setenv("MAKEFLAGS", "-DPKGSCAN_TEST")
	_, stderr, code = pkgscan(t, "", "-C", e.tree, "-M", e.mk, "--reuse", second)
	if code != 0 || !strings.Contains(stderr, "MAKE* environment variables changed") {
		t.Errorf("exit %d, stderr %q; want a note that the environment changed", code, stderr)
	}
}

// TestReusePbulkRule covers --reuse with a plain pbulk-scan output (no
// cache): pbulk's mtime rule, plus the deliberate difference that a record
// without SCAN_DEPENDS is rescanned.
func TestReusePbulkRule(t *testing.T) {
	e := newReuseEnv(t)
	_, firstOut, _ := e.scan("", "--no-cache")
	old := filepath.Join(e.dir, "pbulk-pscan")
	// Take www/site's SCAN_DEPENDS away, as an old pbulk-index would.
	var edited strings.Builder
	for _, rec := range splitRecords(firstOut) {
		if strings.Contains(rec, "PKG_LOCATION=www/site\n") {
			i := strings.Index(rec, "SCAN_DEPENDS=")
			j := strings.Index(rec[i:], "\n")
			rec = rec[:i] + rec[i+j+1:]
		}
		edited.WriteString(rec)
	}
	if err := os.WriteFile(old, []byte(edited.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	scanTime := time.Now().Add(-30 * time.Second)
	touch(t, old, scanTime)

	// Files older than the scan: reused; the record without SCAN_DEPENDS:
	// rescanned.
	_, out, c := e.scan(old, "--no-cache")
	if got, want := scanned(e.tree, c), []string{"www/site"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rescanned %v, want %v", got, want)
	}
	if out != firstOut {
		t.Errorf("output differs from the fresh scan")
	}
	// A file as new as the old scan (pbulk: mtime >= scan time) forces a
	// rescan even if its content did not change: no cache, no hashes.
	touch(t, filepath.Join(e.tree, "mk/extra.mk"), scanTime)
	_, out, c = e.scan(old, "--no-cache")
	if got, want := scanned(e.tree, c), []string{"devel/alpha", "lang/py-multi", "www/site"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rescanned %v, want %v", got, want)
	}
	if out != firstOut {
		t.Errorf("output differs from the fresh scan")
	}
	// A missing --reuse file is not an error: everything is scanned.
	_, _, c = e.scan(filepath.Join(e.dir, "does-not-exist"), "--no-cache")
	if got := scanned(e.tree, c); len(got) != 9 {
		t.Errorf("missing old scan: rescanned %d locations, want 9", len(got))
	}
}

// TestReuseDuplicateRaw checks that a location whose output lost a record
// to the duplicate rule is reproduced from the cache's raw copy: when the
// first owner of the name goes away, the reused scan gives what a fresh
// scan gives.
func TestReuseDuplicateRaw(t *testing.T) {
	e := newReuseEnv(t)
	first, _, _ := e.scan("")
	// Remove devel/alpha: www/dup's alpha-1.0 record is now the first.
	develMk := filepath.Join(e.tree, "devel/Makefile")
	rewrite(t, develMk, strings.Replace(readFile(t, develMk), "SUBDIR+=\talpha\n", "", 1))
	_, out, c := e.scan(first)
	if got := scanned(e.tree, c); len(got) != 0 {
		t.Errorf("rescanned %v, want nothing (www/dup is unchanged)", got)
	}
	if !strings.Contains(out, "PKGNAME=alpha-1.0\nPKG_LOCATION=www/dup\n") {
		t.Errorf("www/dup's alpha-1.0 record did not come back:\n%s", out)
	}
	if want := e.fresh(); out != want {
		t.Errorf("reused output differs from a fresh scan:\n%s\nwant:\n%s", out, want)
	}
}

func TestStatsJSON(t *testing.T) {
	e := newReuseEnv(t)
	first, _, _ := e.scan("")
	stats := filepath.Join(e.dir, "stats.json")
	e.scan(first, "--stats-json", stats)
	var st Stats
	if err := json.Unmarshal([]byte(readFile(t, stats)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Locations != 9 || st.Reused != 9 || st.Scanned != 0 || st.MakeRuns != 0 || !st.CacheUsed || !st.WalkCached || st.Records != 10 || st.Duplicates != 1 {
		t.Errorf("stats of an unchanged rescan: %+v", st)
	}
}

// TestExampleTree scans the project's example tree (examples/, whose
// pbulk-index contract is in examples/README.md) in place: the parallel
// scan equals the plain sequential one, and an unchanged rescan runs no
// make and gives the same bytes.
func TestExampleTree(t *testing.T) {
	testenv.Program(t, "bmake")
	tree := filepath.Join(testenv.RepoRoot(t), "examples", "tree")
	if _, err := os.Stat(filepath.Join(tree, "Makefile")); err != nil {
		t.Fatalf("example tree missing: %v", err)
	}
	want := sequentialScan(t, tree)
	mk, log := countingMake(t)
	out := filepath.Join(t.TempDir(), "pscan")
	_, stderr, code := pkgscan(t, "", "-C", tree, "-M", mk, "-j", "2", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if got := readFile(t, out); got != want {
		t.Fatalf("pkgscan output differs from the sequential scan:\n%s\nwant:\n%s", got, want)
	}
	if n := len(scanned(tree, calls(t, log))); n == 0 {
		t.Fatal("no pbulk-index ran")
	}
	again := out + ".2"
	_, stderr, code = pkgscan(t, "", "-C", tree, "-M", mk, "-j", "2", "--reuse", out, "-o", again)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if c := calls(t, log); len(c) != 0 {
		t.Errorf("unchanged example tree: %d make runs: %v", len(c), c)
	}
	if readFile(t, again) != want {
		t.Errorf("reused output differs")
	}
}
