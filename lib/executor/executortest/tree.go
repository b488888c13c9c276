package executortest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// ExampleTree is the bundled example tree made ready for builds through a
// real executor: the tools built from this checkout into Bin, a copy of
// examples/tree at Tree, scanned once, and one fresh build database per
// name given to NewExampleTree (DB gives its path).
type ExampleTree struct {
	Dir, Bin, Tree string
}

// NewExampleTree builds the tools, copies and scans the tree, and makes a
// database for each name.
func NewExampleTree(t testing.TB, dbs ...string) *ExampleTree {
	t.Helper()
	root := testenv.RepoRoot(t)
	x := &ExampleTree{Dir: t.TempDir()}
	x.Bin, x.Tree = filepath.Join(x.Dir, "bin"), filepath.Join(x.Dir, "tree")
	build := exec.Command("go", "build", "-o", x.Bin+"/", "./cmd/pkgscan", "./cmd/pkgdag", "./cmd/pkgrun", "./cmd/pkgsched")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.CopyFS(x.Tree, os.DirFS(filepath.Join(root, "examples", "tree"))); err != nil {
		t.Fatal(err)
	}
	scan := filepath.Join(x.Dir, "scan")
	if out, err := exec.Command(filepath.Join(x.Bin, "pkgscan"), "-C", x.Tree, "-j", "2", "-o", scan).CombinedOutput(); err != nil {
		t.Fatalf("pkgscan: %v\n%s", err, out)
	}
	for _, name := range dbs {
		if out, err := exec.Command(filepath.Join(x.Bin, "pkgdag"), "build", "-q", "-o", x.DB(name), scan).CombinedOutput(); err != nil {
			t.Fatalf("pkgdag build: %v\n%s", err, out)
		}
	}
	return x
}

// DB is the path of the database name.
func (x *ExampleTree) DB(name string) string { return filepath.Join(x.Dir, name) }

// States maps every package of the database at path to its build state.
func States(t *testing.T, path string) map[string]string {
	t.Helper()
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT p.pkgname, s.state FROM packages p JOIN build_state s ON s.pkg_id = p.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var n, s string
		if err := rows.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		m[n] = s
	}
	return m
}

// Packages lists the package files in a file store's All/, sorted.
func Packages(store string) []string {
	ents, _ := os.ReadDir(filepath.Join(store, "All"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// CheckNoOverlap fails t when a package of the database at path started
// again before its last run ended (built twice at once), from the events
// table, and returns how many runs started.
func CheckNoOverlap(t testing.TB, path string) int {
	t.Helper()
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT COALESCE(e.pkg_id, 0), COALESCE(p.pkgname, ''), e.event FROM events e LEFT JOIN packages p ON p.id = e.pkg_id ORDER BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	running := map[int64]bool{}
	starts := 0
	for rows.Next() {
		var id int64
		var pkg, ev string
		if err := rows.Scan(&id, &pkg, &ev); err != nil {
			t.Fatal(err)
		}
		switch ev {
		case "start":
			if running[id] {
				t.Errorf("%s started again before its last run ended", pkg)
			}
			running[id] = true
			starts++
		case "init", "cleanup":
		default:
			running[id] = false
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return starts
}
