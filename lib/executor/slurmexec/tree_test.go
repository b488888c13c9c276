package slurmexec_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func states(t *testing.T, path string) map[string]string {
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

// workers lists the workers build_state names.
func workers(t *testing.T, path string) []string {
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT DISTINCT worker FROM build_state WHERE worker IS NOT NULL AND worker != ''`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ws []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		t.Errorf("%s: no workers recorded", path)
	}
	return ws
}

func packages(store string) []string {
	ents, _ := os.ReadDir(filepath.Join(store, "All"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestExampleTree builds the example tree with the real pkgrun once on
// local slots and once through Slurm (two slots): both runs must end with
// the same exit code, states and packages, and leave Slurm's queue empty.
func TestExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example tree twice")
	}
	c := startCluster(t)
	mk := testenv.Program(t, "bmake")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/pkgscan", "./cmd/pkgdag", "./cmd/pkgrun", "./cmd/pkgsched")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.CopyFS(tree, os.DirFS(filepath.Join(root, "examples", "tree"))); err != nil {
		t.Fatal(err)
	}
	scan := filepath.Join(dir, "scan")
	if out, err := exec.Command(filepath.Join(bin, "pkgscan"), "-C", tree, "-j", "2", "-o", scan).CombinedOutput(); err != nil {
		t.Fatalf("pkgscan: %v\n%s", err, out)
	}
	for _, name := range []string{"local.db", "slurm.db"} {
		if out, err := exec.Command(filepath.Join(bin, "pkgdag"), "build", "-q", "-o", filepath.Join(dir, name), scan).CombinedOutput(); err != nil {
			t.Fatalf("pkgdag build: %v\n%s", err, out)
		}
	}
	common := []string{"--pkgrun", filepath.Join(bin, "pkgrun"), "--pkgsrc", tree, "--make", mk, "--max-time", "5m", "--json"}
	sched := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(bin, "pkgsched"), append(append([]string{"run"}, args...), common...)...)
		cmd.Env = append(os.Environ(), "SLURM_CONF="+c.Conf)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	start := time.Now()
	storeL := filepath.Join(dir, "store-local")
	outL, codeL := sched("--db", filepath.Join(dir, "local.db"), "-j", "2", "--store", "file://"+storeL, "--work-root", filepath.Join(dir, "work-local"))
	t.Logf("local run: exit %d in %v", codeL, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	storeS := filepath.Join(dir, "store-slurm")
	outS, codeS := sched("--db", filepath.Join(dir, "slurm.db"), "--executor", "slurm://?partition="+c.Partition+"&slots=2&cores=1",
		"--store", "file://"+storeS, "--work-root", filepath.Join(dir, "work-slurm"))
	t.Logf("slurm run: exit %d in %v", codeS, time.Since(start).Round(time.Millisecond))
	if codeS != codeL {
		t.Errorf("slurm run: exit %d, local %d\nlocal:\n%s\nslurm:\n%s", codeS, codeL, outL, outS)
	}
	sl, ss := states(t, filepath.Join(dir, "local.db")), states(t, filepath.Join(dir, "slurm.db"))
	if len(sl) == 0 {
		t.Fatal("no packages in the local run")
	}
	done := 0
	for p, s := range sl {
		if ss[p] != s {
			t.Errorf("%s: %s through Slurm, %s locally", p, ss[p], s)
		}
		if s == "done" {
			done++
		}
	}
	if done == 0 {
		t.Errorf("nothing was built: %v", sl)
	}
	if pl, ps := packages(storeL), packages(storeS); strings.Join(pl, " ") != strings.Join(ps, " ") {
		t.Errorf("packages differ:\nlocal: %v\nslurm: %v", pl, ps)
	}
	for _, w := range workers(t, filepath.Join(dir, "slurm.db")) {
		if !strings.HasPrefix(w, "slurm/") {
			t.Errorf("a job of the Slurm run ran on %q", w)
		}
	}
	if q := c.squeue(t); q != "" {
		t.Errorf("jobs left in Slurm's queue:\n%s", q)
	}
}
