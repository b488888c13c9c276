package schedcmd

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

// coresSet is the build set of the cores-per-job checks on the example
// tree: devel/exparallel (six slow compile units built with
// make -j${MAKE_JOBS}; PBULK_WEIGHT puts it on the critical path) and
// short packages beside it, with their dependencies
// (pkgtools/bootstrap-mk-files).
var coresSet = []string{"devel/exparallel", "textproc/exwc", "textproc/exwords", "games/exfortune"}

const parallelPkg = "exparallel-1.0"

// coresSetSize is coresSet with its dependencies (bootstrap-mk-files,
// shlib).
const coresSetSize = 6

type coresTree struct {
	*executortest.ExampleTree
	mk, list string
}

func newCoresTree(t testing.TB) *coresTree {
	mk := testenv.Program(t, "bmake")
	x := &coresTree{ExampleTree: executortest.NewExampleTree(t), mk: mk}
	x.list = filepath.Join(x.Dir, "limited")
	if err := os.WriteFile(x.list, []byte(strings.Join(coresSet, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return x
}

// dag (re)builds the database name from the scan, limited to coresSet;
// an existing database's history is carried over.
func (x *coresTree) dag(t testing.TB, name string) string {
	t.Helper()
	path := x.DB(name)
	if out, err := exec.Command(filepath.Join(x.Bin, "pkgdag"), "build", "-q", "--limited", x.list, "-o", path, filepath.Join(x.Dir, "scan")).CombinedOutput(); err != nil {
		t.Fatalf("pkgdag build: %v\n%s", err, out)
	}
	return path
}

// run runs pkgsched run on database path with local:2?cores=2 and the
// policy, into a new file store; it returns the store and the run's wall.
func (x *coresTree) run(t testing.TB, path, policy string) (string, time.Duration) {
	return x.runExit(t, path, policy, 0)
}

// runExit is run for a run that must exit with code.
func (x *coresTree) runExit(t testing.TB, path, policy string, code int) (string, time.Duration) {
	t.Helper()
	store := filepath.Join(x.Dir, fmt.Sprintf("store-%s-%d", policy, time.Now().UnixNano()))
	args := []string{"run", "--db", path, "--executor", "local:2?cores=2", "--make-jobs-policy", policy,
		"--pkgrun", filepath.Join(x.Bin, "pkgrun"), "--pkgsrc", x.Tree, "--make", x.mk, "--max-time", "5m",
		"--store", "file://" + store, "--work-root", filepath.Join(x.Dir, "work"), "--json"}
	start := time.Now()
	out, err := exec.Command(filepath.Join(x.Bin, "pkgsched"), args...).CombinedOutput()
	wall := time.Since(start)
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == code {
		err = nil
	}
	if err == nil && code != 0 && !strings.Contains(string(out), "not built") {
		err = fmt.Errorf("exit 0, want %d", code)
	}
	if err != nil {
		t.Fatalf("pkgsched %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return store, wall
}

// granted is what the database says each package got: the MAKE_JOBS of
// its last history row and of its result, and its build's wall ms.
type granted struct {
	history, result int
	wallMS, cpuMS   int64 // the build stage's
	started         int64
}

func grants(t testing.TB, path string) map[string]granted {
	t.Helper()
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT p.pkgname, s.result, s.started_at,
		(SELECT h.make_jobs FROM history h WHERE h.pkgname = p.pkgname ORDER BY h.finished_at DESC LIMIT 1),
		(SELECT h.build_wall_ms FROM history h WHERE h.pkgname = p.pkgname ORDER BY h.finished_at DESC LIMIT 1),
		(SELECT h.build_cpu_ms FROM history h WHERE h.pkgname = p.pkgname ORDER BY h.finished_at DESC LIMIT 1)
		FROM packages p JOIN build_state s ON s.pkg_id = p.id WHERE s.state IN ('done', 'failed')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]granted{}
	for rows.Next() {
		var name string
		var res sql.NullString
		var g granted
		var hist, wall, cpu sql.NullInt64
		if err := rows.Scan(&name, &res, &g.started, &hist, &wall, &cpu); err != nil {
			t.Fatal(err)
		}
		var r struct {
			MakeJobs int `json:"make_jobs"`
		}
		if err := json.Unmarshal([]byte(res.String), &r); err != nil {
			t.Fatalf("%s: result %q: %v", name, res.String, err)
		}
		g.result, g.history, g.wallMS, g.cpuMS = r.MakeJobs, int(hist.Int64), wall.Int64, cpu.Int64
		out[name] = g
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// buildLog is pkgrun's build log of pkgname in a file store.
func buildLog(t testing.TB, store, pkgname string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, "bulklog", pkgname, "build.log"))
	if err != nil {
		t.Fatalf("build log of %s: %v", pkgname, err)
	}
	return string(b)
}

// TestCoresPerJobExampleTree builds exparallel and short packages beside
// it with the real tools on local:2?cores=2 and the core policy, without
// history (PBULK_WEIGHT makes exparallel the critical path): exparallel
// must get MAKE_JOBS=2 in its result, its history row and pkgrun's build
// log (make -j), and every package's result and history row must agree.
// A second run with the policy off grants nothing. (How a package's own
// history changes its grant is TestMakeJobsGrant's: on this shared
// 2-core machine the speed-up measured from CPU/wall depends on the load.)
func TestCoresPerJobExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds packages of the example tree")
	}
	x := newCoresTree(t)
	path := x.dag(t, "cores.db")
	// pkgrun keeps the logs of failed builds only (as pbulk): exparallel
	// fails at install, after its build stage, so that its build log is
	// kept.
	mkfile := filepath.Join(x.Tree, "devel", "exparallel", "Makefile")
	orig, err := os.ReadFile(mkfile)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(orig), ".include", "INSTALL_TARGET=\tno-such-target\n\n.include", 1)
	if err := os.WriteFile(mkfile, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	store, wall := x.runExit(t, path, "path", 1)
	g := grants(t, path)
	if len(g) != coresSetSize {
		t.Fatalf("%d packages built or failed, want %d: %v", len(g), coresSetSize, g)
	}
	for name, gr := range g {
		t.Logf("%s: MAKE_JOBS %d, build stage %d ms", name, gr.result, gr.wallMS)
		if gr.result < 1 || gr.history != gr.result {
			t.Errorf("%s: result says MAKE_JOBS %d, history %d", name, gr.result, gr.history)
		}
	}
	if p := g[parallelPkg]; p.result != 2 {
		t.Errorf("%s got MAKE_JOBS %d, want 2", parallelPkg, p.result)
	}
	// bmake -j prints a "--- target ---" line before a job's output.
	log := buildLog(t, store, parallelPkg)
	if !strings.Contains(log, "pkgrun: MAKE_JOBS=2 (granted by the scheduler)") || !strings.Contains(log, "--- u1.c ---") {
		t.Errorf("%s's build log does not show MAKE_JOBS=2 and make -j:\n%s", parallelPkg, log)
	}
	// The history row has the stage times the speed-up model is fitted on.
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var cpu sql.NullInt64
	var stages sql.NullString
	err = d.QueryRow(`SELECT build_cpu_ms, stages FROM history WHERE pkgname = ? ORDER BY finished_at DESC LIMIT 1`, parallelPkg).Scan(&cpu, &stages)
	d.Close()
	if err != nil || cpu.Int64 < 1000 || !strings.Contains(stages.String, `"name":"build"`) {
		t.Errorf("history of %s: build_cpu_ms %v, stages %q (%v); want the build stage's CPU (six units of about a second) and the stages", parallelPkg, cpu, stages.String, err)
	}
	t.Logf("%s: build stage CPU %d ms", parallelPkg, cpu.Int64)
	t.Logf("policy on: %v", wall.Round(time.Millisecond))
	x.dag(t, "cores.db") // a fresh build state (the history is kept)
	// Policy off: nothing granted, pkgrun's settings decide (no -j).
	x.runExit(t, path, "off", 1)
	for name, gr := range grants(t, path) {
		if gr.result != 0 || gr.history != 0 {
			t.Errorf("policy off: %s got MAKE_JOBS %d (history %d), want none", name, gr.result, gr.history)
		}
	}
}

// BenchmarkCoresPerJobExampleTree prints the wall time of the same build
// (exparallel on the critical path, short packages beside it; two slots,
// two cores) with the core policy on and off, exparallel's own build
// stage, and the parallelism that stage reached (its CPU time over its
// wall time: on a machine shared with other work the wall times follow
// the load, this ratio less so). Each run starts from a fresh database and
// store; the policies alternate.
func BenchmarkCoresPerJobExampleTree(b *testing.B) {
	x := newCoresTree(b)
	type sums struct{ wall, pkg, cpu time.Duration }
	got := map[string]*sums{"path": {}, "off": {}}
	for i := 0; i < b.N; i++ {
		for _, policy := range []string{"path", "off"} {
			path := x.dag(b, fmt.Sprintf("bench-%s-%d.db", policy, i))
			_, wall := x.run(b, path, policy)
			g := grants(b, path)[parallelPkg]
			s := got[policy]
			s.wall += wall
			s.pkg += time.Duration(g.wallMS) * time.Millisecond
			s.cpu += time.Duration(g.cpuMS) * time.Millisecond
		}
	}
	n := float64(b.N)
	for _, policy := range []string{"path", "off"} {
		s := got[policy]
		b.ReportMetric(s.wall.Seconds()/n, "wall-s/policy-"+policy)
		b.ReportMetric(s.pkg.Seconds()/n, "exparallel-build-s/policy-"+policy)
		if s.pkg > 0 {
			b.ReportMetric(s.cpu.Seconds()/s.pkg.Seconds(), "exparallel-cpu/wall/policy-"+policy)
		}
	}
}
