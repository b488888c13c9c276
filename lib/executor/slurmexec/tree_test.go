package slurmexec_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

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

// TestExampleTree builds the example tree with the real pkgrun once on
// local slots and once through Slurm (two slots): both runs must end with
// the same exit code, states and packages, and leave Slurm's queue empty.
func TestExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example tree twice")
	}
	c := startCluster(t)
	mk := testenv.Program(t, "bmake")
	x := executortest.NewExampleTree(t, "local.db", "slurm.db")
	dir, bin, tree := x.Dir, x.Bin, x.Tree
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
	sl, ss := executortest.States(t, filepath.Join(dir, "local.db")), executortest.States(t, filepath.Join(dir, "slurm.db"))
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
	if pl, ps := executortest.Packages(storeL), executortest.Packages(storeS); strings.Join(pl, " ") != strings.Join(ps, " ") {
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
