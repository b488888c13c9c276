package scripts

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// runBulk runs scripts/bulk.sh with a config that keeps everything in dir.
func runBulk(t *testing.T, dir string, extra string) (stdout, stderr string) {
	t.Helper()
	root := testenv.RepoRoot(t)
	conf := filepath.Join(dir, "bulk.conf")
	body := fmt.Sprintf("bulkdir=%s/bulk\nstore=file://%s/packages\nbindir=%s\njobs=2\nscan_jobs=2\n%s",
		dir, dir, tools(t), extra)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", filepath.Join(root, "scripts", "bulk.sh"), "-c", conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bulk.sh: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestBulkExampleTree is the README's main job: a real bulk build of the
// example tree with the embedded defaults (local executor, SQLite, a
// file:// store), then a second run that finds everything up to date.
func TestBulkExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("the full bulk build takes about a minute")
	}
	testenv.Program(t, "bmake")
	testenv.Program(t, "cc")
	dir := t.TempDir()
	out, _ := runBulk(t, dir, "")

	report := strings.TrimSpace(out)
	if report != filepath.Join(dir, "bulk", "meta", "report.html") {
		t.Fatalf("bulk.sh printed %q, want the report's path", report)
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	d := openDB(t, filepath.Join(dir, "bulk", "meta", "bulk.db"))
	state := func(name string) string {
		s := queryStrings(t, d, `SELECT b.state FROM build_state b JOIN packages p ON p.id = b.pkg_id WHERE p.pkgname = ?`, name)
		if len(s) != 1 {
			t.Fatalf("no build state for %s", name)
		}
		return s[0]
	}
	// The tree's one real compile error, and what depends on it.
	if s := state("libbroken-0.1"); s != "failed" {
		t.Errorf("libbroken-0.1 is %s, want failed", s)
	}
	if s := state("exbroken-user2-1.0"); s != "indirect-failed" {
		t.Errorf("exbroken-user2-1.0 is %s, want indirect-failed", s)
	}
	if !strings.Contains(string(html), "libbroken-0.1") {
		t.Errorf("report.html does not list libbroken-0.1")
	}
	if _, err := os.Stat(filepath.Join(dir, "packages", "bulklog", "libbroken-0.1", "build.log")); err != nil {
		t.Errorf("the failed build's log is not in the store: %v", err)
	}

	// Every package that started open and does not depend on libbroken is
	// built, and pkg_summary lists exactly the built packages.
	done := queryStrings(t, d, `SELECT p.pkgname FROM build_state b JOIN packages p ON p.id = b.pkg_id WHERE b.state = 'done' ORDER BY 1`)
	open := queryStrings(t, d, `SELECT pkgname FROM packages WHERE initial_state = 'open' AND pkgname NOT LIKE '%broken%' ORDER BY 1`)
	if strings.Join(done, " ") != strings.Join(open, " ") {
		t.Errorf("done packages:\n%v\nwant every open package but the broken chain:\n%v", done, open)
	}
	for _, n := range done {
		if _, err := os.Stat(filepath.Join(dir, "packages", "All", n+".tgz")); err != nil {
			t.Errorf("package of %s missing from the store: %v", n, err)
		}
	}
	summary := summaryNames(t, filepath.Join(dir, "packages", "All", "pkg_summary.gz"))
	if strings.Join(summary, " ") != strings.Join(done, " ") {
		t.Errorf("pkg_summary.gz lists:\n%v\nwant:\n%v", summary, done)
	}

	// Second run: same tree, same store: every built package is up to date.
	runBulk(t, dir, "")
	d2 := openDB(t, filepath.Join(dir, "bulk", "meta", "bulk.db"))
	upToDate := queryStrings(t, d2, `SELECT p.pkgname FROM build_state b JOIN packages p ON p.id = b.pkg_id WHERE b.state = 'done' AND b.detail = 'up-to-date' ORDER BY 1`)
	if strings.Join(upToDate, " ") != strings.Join(done, " ") {
		t.Errorf("second run: up to date:\n%v\nwant:\n%v", upToDate, done)
	}
}

func summaryNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "PKGNAME="); ok {
			names = append(names, n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}
