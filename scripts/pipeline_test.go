// Package scripts holds the end-to-end tests of the pipeline: the real
// tools, built from this checkout, chained the way an operator chains them
// (pkgscan | pkgdag, and scripts/bulk.sh), on the bundled example tree with
// the real bmake.
package scripts

import (
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// tools builds every command of this checkout once per test binary.
func tools(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pkgbulk-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			binDir = string(out)
			return
		}
		binDir = dir
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", buildErr, binDir)
	}
	return binDir
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func queryStrings(t *testing.T, d *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := d.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestScanPipeDag runs "pkgscan | pkgdag build -" over the example tree and
// checks the database against what the tree's Makefiles say.
func TestScanPipeDag(t *testing.T) {
	testenv.Program(t, "bmake")
	bin := tools(t)
	tree := filepath.Join(testenv.RepoRoot(t), "examples", "tree")
	db := filepath.Join(t.TempDir(), "bulk.db")

	sh := exec.Command("sh", "-c", `"$BIN/pkgscan" -C "$TREE" -j 2 | "$BIN/pkgdag" build -o "$DB" -`)
	sh.Env = append(os.Environ(), "BIN="+bin, "TREE="+tree, "DB="+db)
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	if err := sh.Run(); err != nil {
		t.Fatalf("pkgscan | pkgdag: %v\n%s", err, stderr.String())
	}
	// The only warning is the deliberately unresolvable pattern.
	if !strings.Contains(stderr.String(), "No match found for dependency exwc>=99 of package exunresolvable-1.0") {
		t.Errorf("missing unresolved-pattern warning; stderr:\n%s", stderr.String())
	}
	d := openDB(t, db)

	// Every package directory of the tree produced at least one record.
	dirs, _ := filepath.Glob(filepath.Join(tree, "*", "*", "Makefile"))
	paths := map[string]bool{}
	for _, m := range dirs {
		rel, _ := filepath.Rel(tree, filepath.Dir(m))
		if !strings.HasPrefix(rel, "mk") {
			paths[filepath.ToSlash(rel)] = true
		}
	}
	got := map[string]bool{}
	for _, p := range queryStrings(t, d, "SELECT DISTINCT pkgpath FROM packages") {
		got[p] = true
	}
	for p := range paths {
		// Directories with a DESCR are packages (lang/python holds only .mk files).
		if _, err := os.Stat(filepath.Join(tree, p, "DESCR")); err == nil && !got[p] {
			t.Errorf("package directory %s has no record in the database", p)
		}
	}
	if len(got) < 30 {
		t.Errorf("only %d package directories in the database, want at least 30", len(got))
	}

	// The diamond: d depends on b and c, both on a, each edge with its pattern.
	edges := queryStrings(t, d, `SELECT p.pkgname || ' -> ' || q.pkgname || ' [' || e.pattern || ']'
		FROM depends e JOIN packages p ON p.id = e.pkg_id JOIN packages q ON q.id = e.dep_id
		WHERE p.pkgbase LIKE 'diamond-%' ORDER BY 1`)
	want := []string{}
	for _, l := range edges {
		want = append(want, l[:strings.Index(l, " [")])
	}
	wantEdges := []string{"diamond-b-1.1 -> diamond-a-1.0", "diamond-c-2.0 -> diamond-a-1.0", "diamond-d-0.4 -> diamond-b-1.1", "diamond-d-0.4 -> diamond-c-2.0"}
	if strings.Join(want, "\n") != strings.Join(wantEdges, "\n") {
		t.Errorf("diamond edges:\n%s\nwant:\n%s", strings.Join(edges, "\n"), strings.Join(wantEdges, "\n"))
	}
	for _, e := range edges {
		if strings.HasSuffix(e, "[]") {
			t.Errorf("edge without its pattern: %s", e)
		}
	}

	// Multi-version: every py-* directory gives the default (312) first.
	mv := queryStrings(t, d, `SELECT pkgname || ' ' || multi_version FROM packages WHERE pkgpath = 'devel/py-six' ORDER BY id`)
	if len(mv) != 2 || !strings.HasPrefix(mv[0], "py312-six-") || !strings.Contains(mv[0], "PYTHON_VERSION_REQD=312") || !strings.HasPrefix(mv[1], "py311-six-") {
		t.Errorf("devel/py-six variants = %q, want py312 then py311 with MULTI_VERSION", mv)
	}

	// Initial states as pbulk-build starts: skip/fail reasons prefail,
	// their dependents are indirect-prefailed, the rest are open.
	states := map[string]string{}
	rows, err := d.Query("SELECT pkgname, initial_state FROM packages")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, s string
		rows.Scan(&n, &s)
		states[n] = s
	}
	rows.Close()
	for name, want := range map[string]string{
		"exskip-1.0":         "prefailed",
		"exbrokenflag-2.3":   "prefailed",
		"exunresolvable-1.0": "prefailed",
		"exskip-user-1.0":    "indirect-prefailed",
		"libbroken-0.1":      "open",
		"diamond-d-0.4":      "open",
	} {
		if states[name] != want {
			t.Errorf("%s initial_state = %q, want %q", name, states[name], want)
		}
	}
	if u := queryStrings(t, d, `SELECT p.pkgname || ' ' || u.pattern || ' ' || u.location FROM unresolved u JOIN packages p ON p.id = u.pkg_id`); len(u) != 1 || u[0] != "exunresolvable-1.0 exwc>=99 textproc/exwc" {
		t.Errorf("unresolved = %q", u)
	}

	// Depth is pbulk's: distinct transitive dependents + 1. Recompute it
	// from the edges and compare for every package.
	type edge struct{ from, to string }
	var es []edge
	rows, err = d.Query(`SELECT p.pkgname, q.pkgname FROM depends e JOIN packages p ON p.id = e.pkg_id JOIN packages q ON q.id = e.dep_id`)
	if err != nil {
		t.Fatal(err)
	}
	dependents := map[string][]string{}
	for rows.Next() {
		var a, b string
		rows.Scan(&a, &b)
		es = append(es, edge{a, b})
		dependents[b] = append(dependents[b], a)
	}
	rows.Close()
	rows, err = d.Query("SELECT pkgname, depth FROM packages")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for rows.Next() {
		var n string
		var depth int
		rows.Scan(&n, &depth)
		seen := map[string]bool{}
		stack := []string{n}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, y := range dependents[x] {
				if !seen[y] {
					seen[y] = true
					stack = append(stack, y)
				}
			}
		}
		if depth != len(seen)+1 {
			t.Errorf("%s depth %d, want %d", n, depth, len(seen)+1)
		}
		checked++
	}
	rows.Close()
	if checked < 30 || len(es) == 0 {
		t.Fatalf("only %d packages and %d edges in the database", checked, len(es))
	}
}

// TestCycleTree: the cycle is reported with its members, and the packages
// outside it are still usable.
func TestCycleTree(t *testing.T) {
	testenv.Program(t, "bmake")
	bin := tools(t)
	tree := filepath.Join(testenv.RepoRoot(t), "examples", "cycle-tree")
	db := filepath.Join(t.TempDir(), "bulk.db")
	sh := exec.Command("sh", "-c", `"$BIN/pkgscan" -C "$TREE" | "$BIN/pkgdag" build -o "$DB" -`)
	sh.Env = append(os.Environ(), "BIN="+bin, "TREE="+tree, "DB="+db)
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	if err := sh.Run(); err != nil {
		t.Fatalf("pkgscan | pkgdag: %v\n%s", err, stderr.String())
	}
	for _, n := range []string{"cyc-a", "cyc-b", "cyc-c"} {
		if !strings.Contains(stderr.String(), n) {
			t.Errorf("cycle report does not name %s:\n%s", n, stderr.String())
		}
	}
	d := openDB(t, db)
	members := queryStrings(t, d, `SELECT p.pkgbase FROM cycles c JOIN packages p ON p.id = c.pkg_id ORDER BY 1`)
	sort.Strings(members)
	if strings.Join(members, " ") != "cyc-a cyc-b cyc-c" {
		t.Errorf("cycle members = %q", members)
	}
	for _, n := range queryStrings(t, d, `SELECT pkgbase || ' ' || initial_state FROM packages WHERE pkgbase LIKE 'plain-%'`) {
		if !strings.HasSuffix(n, " open") {
			t.Errorf("package outside the cycle not buildable: %s", n)
		}
	}
}
