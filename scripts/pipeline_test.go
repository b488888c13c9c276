// Package scripts holds the end-to-end tests of the pipeline: the real
// tools, built from this checkout, chained the way an operator chains them
// (pkgscan | pkgdag, and scripts/bulk.sh), on the bundled example tree with
// the real bmake.
package scripts

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// scanTree runs pkgscan over an example tree into a file and returns its path.
func scanTree(t *testing.T, bin, tree, out string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "pkgscan"), "-C", tree, "-j", "2", "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pkgscan -C %s: %v\n%s", tree, err, msg)
	}
	return out
}

// TestPackageCountsInDocs: the counts the READMEs give for the example
// tree are what the tools find in it.
func TestPackageCountsInDocs(t *testing.T) {
	testenv.Program(t, "bmake")
	bin := tools(t)
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	pscan := scanTree(t, bin, filepath.Join(root, "examples", "tree"), filepath.Join(dir, "pscan"))
	db := filepath.Join(dir, "bulk.db")
	if out, err := exec.Command(filepath.Join(bin, "pkgdag"), "build", "-q", "-o", db, pscan).CombinedOutput(); err != nil {
		t.Fatalf("pkgdag build: %v\n%s", err, out)
	}
	d := openDB(t, db)
	packages := queryStrings(t, d, "SELECT count(*) FROM packages")[0]
	dirs := queryStrings(t, d, "SELECT count(DISTINCT pkgpath) FROM packages")[0]
	categories := queryStrings(t, d, "SELECT count(DISTINCT substr(pkgpath, 1, instr(pkgpath, '/') - 1)) FROM packages")[0]

	for _, c := range []struct{ file, want string }{
		{"README.md", "`examples/tree`: " + packages + " packages from " + dirs + " package directories"},
		{filepath.Join("examples", "README.md"), dirs + " package directories in " + categories + " categories, " + packages + " scan records."},
	} {
		text, err := os.ReadFile(filepath.Join(root, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(strings.Fields(string(text)), " "), c.want) {
			t.Errorf("%s does not say %q (what the tools count in examples/tree)", c.file, c.want)
		}
	}
}

// TestSchemaDocQueries runs every example of docs/schema.md with the real
// sqlite3 against a database of the example trees (examples/tree and the
// cycles of examples/cycle-tree), with pkgsched's tables filled as after a
// build, and checks that each gives output and no error: the names the
// examples use are real packages of the example tree.
func TestSchemaDocQueries(t *testing.T) {
	testenv.Program(t, "bmake")
	sqlite3 := testenv.Program(t, "sqlite3")
	bin := tools(t)
	root := testenv.RepoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	scans := []string{
		scanTree(t, bin, filepath.Join(root, "examples", "tree"), filepath.Join(dir, "tree.pscan")),
		scanTree(t, bin, filepath.Join(root, "examples", "cycle-tree"), filepath.Join(dir, "cycle.pscan")),
	}
	path := filepath.Join(dir, "bulk.db")
	if out, err := exec.Command(filepath.Join(bin, "pkgdag"), append([]string{"build", "-q", "-o", path}, scans...)...).CombinedOutput(); err != nil {
		t.Fatalf("pkgdag build: %v\n%s", err, out)
	}
	// What pkgsched leaves after a build of the tree: libbroken fails, its
	// dependents are indirect-failed, the rest of the open packages are done.
	fill := exec.Command(sqlite3, "-bail", path)
	fill.Stdin = strings.NewReader(`
		INSERT INTO build_state (pkg_id, state, detail, worker)
			SELECT id, 'done', '', 'local/1' FROM packages WHERE initial_state = 'open';
		UPDATE build_state SET state = 'failed', detail = 'build'
			WHERE pkg_id = (SELECT id FROM packages WHERE pkgname = 'libbroken-0.1');
		UPDATE build_state SET state = 'indirect-failed', detail = 'libbroken-0.1'
			WHERE pkg_id IN (SELECT id FROM packages WHERE pkgbase LIKE 'exbroken-user%');
		INSERT INTO build_state (pkg_id, state, detail)
			SELECT id, initial_state, initial_detail FROM packages WHERE initial_state <> 'open';
		INSERT INTO history (pkgpath, pkgname, finished_at, state, wall_ms, cpu_ms, make_jobs, build_wall_ms, build_cpu_ms)
			SELECT pkgpath, pkgname, 1700000000000 + id, 'done', 1000 * id, 1500 * id,
				CASE pkgbase WHEN 'exparallel' THEN 2 ELSE 1 END, 500 * id, CASE pkgbase WHEN 'exparallel' THEN 900 ELSE 500 END * id
			FROM packages WHERE initial_state = 'open';`)
	if out, err := fill.CombinedOutput(); err != nil {
		t.Fatalf("filling pkgsched's tables: %v\n%s", err, out)
	}

	blocks := regexp.MustCompile("(?s)```(sql|sh)\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 10 {
		t.Fatalf("only %d example blocks in docs/schema.md", len(blocks))
	}
	for _, b := range blocks {
		lang, code := string(b[1]), string(b[2])
		name := strings.SplitN(strings.TrimSpace(code), "\n", 2)[0]
		t.Run(name, func(t *testing.T) {
			var cmd *exec.Cmd
			if lang == "sql" {
				cmd = exec.Command(sqlite3, "-bail", path)
				cmd.Stdin = strings.NewReader(code)
			} else {
				cmd = exec.Command("sh", "-e", "-c", code)
				cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(sqlite3)+":"+os.Getenv("PATH"))
			}
			cmd.Dir = dir
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Fatalf("%v: %s\n%s", err, stderr.String(), code)
			}
			if out.Len() == 0 && !strings.Contains(code, "> presolve") {
				t.Errorf("no output from:\n%s", code)
			}
		})
	}
	// The presolve example reproduces pbulk-resolve's output exactly.
	got, err := os.ReadFile(filepath.Join(dir, "presolve"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command(filepath.Join(bin, "pkgdag"), append([]string{"presolve", "-q"}, scans...)...).Output()
	if err != nil {
		t.Fatalf("pkgdag presolve: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("presolve from the database differs from pkgdag presolve (%d and %d bytes)", len(got), len(want))
	}
}

// TestReadmeStageByStage runs the README's stage-by-stage block as
// written, line by line, from a checkout-like directory (bin/ holding the
// tools, examples/) in a shell whose PATH has no pkgbulk tools: every line
// must succeed, except pkgsched run's exit 1 for the tree's one real build
// failure, which the README states.
func TestReadmeStageByStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example tree (about a minute)")
	}
	testenv.Program(t, "bmake")
	testenv.Program(t, "cc")
	sqlite3 := testenv.Program(t, "sqlite3")
	bin := tools(t)
	root := testenv.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "Run a stage by hand")
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(rest)
	if !ok || m == nil {
		t.Fatal("README.md has no stage-by-stage block")
	}
	dir := t.TempDir()
	os.Symlink(bin, filepath.Join(dir, "bin"))
	os.Symlink(filepath.Join(root, "examples"), filepath.Join(dir, "examples"))

	// One status line per command: "LINE EXIT COMMAND".
	var script strings.Builder
	var commands []string
	for _, line := range strings.Split(m[1], "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		commands = append(commands, line)
		fmt.Fprintf(&script, "%s\necho \"%d $?\" >>\"$STATUS\"\n", line, len(commands)-1)
	}
	status := filepath.Join(t.TempDir(), "status")
	// PATH without any directory that holds pkgbulk tools (an earlier
	// setup.sh --prefix), so the block's own export must do it.
	var path []string
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(p, "pkgscan")); err != nil {
			path = append(path, p)
		}
	}
	path = append(path, filepath.Dir(sqlite3))
	cmd := exec.Command("sh", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+strings.Join(path, ":"), "STATUS="+status, "PWD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the block as a script: %v\n%s", err, out)
	}
	st, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(st)), "\n")
	if len(lines) != len(commands) {
		t.Fatalf("%d of %d commands ran:\n%s\noutput:\n%s", len(lines), len(commands), st, out)
	}
	for _, l := range lines {
		var i, code int
		fmt.Sscan(l, &i, &code)
		want := 0
		if strings.HasPrefix(commands[i], "pkgsched run ") {
			want = 1
		}
		if code != want {
			t.Errorf("exit %d, want %d: %s", code, want, commands[i])
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	if !strings.Contains(string(out), "libbroken-0.1|build") {
		t.Errorf("the sqlite3 line does not list libbroken-0.1 as failed in the build phase:\n%s", out)
	}
	for _, f := range []string{"work/meta/report.html", "work/packages/All/pkg_summary.gz", "work/packages/All/exgrep-0.5.tgz"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the block did not make %s: %v", f, err)
		}
	}
}
