package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/dag"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedcmd"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// asMain makes the test binary act as pkgsched itself, so the kill -9
// test can kill a real pkgsched process.
const asMain = "PKGSCHED_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(executortest.FakeEnv) != "1" && os.Getenv(asMain) == "1" {
		main()
	}
	executortest.Main(m)
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), "pkgsched", schedcmd.Description, &schedcmd.CLI{}, args,
		&cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func writeDB(t *testing.T, pkgs []schedtest.Pkg) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bulk.db")
	if err := schedtest.WriteDB(context.Background(), p, pkgs); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHelp(t *testing.T) {
	code, out, _ := run(t, "--help")
	if code != 0 || !strings.Contains(out, "Exit codes") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "run", "--help")
	if code != 0 || !strings.Contains(out, "--priority") || !strings.Contains(out, "--max-time") {
		t.Errorf("run --help: exit %d\n%s", code, out)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	// A database of another schema version.
	other := filepath.Join(dir, "other.db")
	d, err := sql.Open("sqlite3", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(`CREATE TABLE packages (id INTEGER); PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	code, _, errs := run(t, "run", "--db", other, "-j", "1", "--pkgrun", "/bin/true")
	if code != 2 || !strings.Contains(errs, other) || !strings.Contains(errs, "99") || !strings.Contains(errs, fmt.Sprint(db.SchemaVersion)) {
		t.Errorf("other schema: exit %d, stderr %q", code, errs)
	}
	code, _, errs = run(t, "status", "--db", filepath.Join(dir, "missing.db"))
	if code != 2 || !strings.Contains(errs, "missing.db") {
		t.Errorf("missing database: exit %d, stderr %q", code, errs)
	}
	good := writeDB(t, schedtest.RandomDAG(1, 5))
	prio := filepath.Join(dir, "prio")
	os.WriteFile(prio, []byte("p0001-1.0\nno/such\n"), 0o644)
	code, _, errs = run(t, "run", "--db", good, "--priority", prio, "--pkgrun", "/bin/true")
	if code != 2 || !strings.Contains(errs, prio+":2") {
		t.Errorf("bad priority list: exit %d, stderr %q", code, errs)
	}
}

// TestUnreachableStore: a store that cannot be reached stops the run
// before any builder starts; no package changes state.
func TestUnreachableStore(t *testing.T) {
	good := writeDB(t, schedtest.RandomDAG(1, 5))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, nil, 0o644)
	code, _, errs := run(t, "run", "--db", good, "--pkgrun", "/bin/false",
		"--store", "sftp://nobody@127.0.0.1:1/packages", "--known-hosts", kh, "--connect-timeout", "2s")
	if code != 2 || !strings.Contains(errs, "sftp://nobody@127.0.0.1:1/packages") {
		t.Errorf("unreachable store: exit %d, stderr %q", code, errs)
	}
	d, err := sql.Open("sqlite3", good)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(`SELECT count(*) FROM build_state WHERE state NOT IN ('open', 'prefailed', 'indirect-prefailed')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d packages changed state although nothing could be built", n)
	}
}

// TestRunCommand runs pkgsched run in-process against the fake builder:
// exit codes, the summary, status afterwards, and builders that print
// garbage or run out of disk space (the run stops with exit 2, the
// package stays open).
func TestRunCommand(t *testing.T) {
	fake := executortest.FakePkgrun(t)
	work := t.TempDir()
	ok := writeDB(t, schedtest.RandomDAG(2, 40))
	code, out, errs := run(t, "run", "--db", ok, "-j", "3", "--pkgrun", fake, "--work-root", work)
	if code != 0 || !strings.Contains(out, "done  40") {
		t.Errorf("all good: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = run(t, "status", "--db", ok)
	if code != 0 || !strings.Contains(out, "done  40") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "status", "--db", ok, "--json")
	if code != 0 || !strings.Contains(out, `"done": 40`) || !strings.Contains(out, `"slots": 3`) {
		t.Errorf("status --json: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "simulate", "--db", ok, "-W", "2,4", "--order", "both")
	if code != 0 || strings.Count(out, "\n") != 6 {
		t.Errorf("simulate: exit %d\n%s", code, out)
	}

	// Builders that crash, or run out of disk space, stop the run with
	// exit 2 and fail no package.
	for _, tc := range []struct {
		name, bad string
		env       []string
		want      []string
	}{
		{name: "crashing builder", bad: "garbage-1.0",
			want: []string{"garbage-1.0: its builder crashed 3 times", "garbage on pkgrun's stdout", "run pkgsched again"}},
		{name: "out of disk space", bad: "nospace-1.0",
			want: []string{"every slot is out of disk space", "no space left on device", "Free disk space", "run pkgsched again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := writeDB(t, []schedtest.Pkg{{Name: tc.bad}, {Name: "app-1.0", Deps: []string{tc.bad}}, {Name: "fine-1.0"}})
			code, out, errs := run(t, "run", "--db", bad, "-j", "2", "--pkgrun", fake, "--work-root", work, "--json")
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s\n%s", code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			d, err := db.Open(context.Background(), bad)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var failed int
			d.QueryRow(`SELECT count(*) FROM build_state WHERE state NOT IN ('open', 'done')`).Scan(&failed)
			var state string
			d.QueryRow(`SELECT state FROM build_state WHERE pkg_id = 1`).Scan(&state)
			if state != "open" || failed != 0 {
				t.Errorf("%s: %s, %d packages failed", tc.bad, state, failed)
			}
		})
	}
}

// TestKill9 kills pkgsched with SIGKILL at random moments, restarts it,
// and checks at the end that every package has its right state, that no
// finished package was built again, that only packages running at a
// kill were built more than once, and that the job directories of the
// builders killed with it are gone.
func TestKill9(t *testing.T) {
	n, kills := 300, 6
	if testing.Short() {
		n, kills = 120, 3
	}
	pkgs := schedtest.RandomDAG(11, n)
	want := map[string]string{}
	for i := range pkgs {
		if i%47 == 30 {
			pkgs[i].Name = "fail" + pkgs[i].Name
		}
	}
	// Fix up references to renamed packages and compute the wanted states.
	names := map[string]string{}
	for i := range pkgs {
		names[strings.TrimPrefix(pkgs[i].Name, "fail")] = pkgs[i].Name
	}
	for i := range pkgs {
		for k, d := range pkgs[i].Deps {
			pkgs[i].Deps[k] = names[d]
		}
		w := "done"
		if strings.HasPrefix(pkgs[i].Name, "fail") {
			w = "failed"
		}
		for _, d := range pkgs[i].Deps {
			if want[d] != "done" {
				w = "indirect-failed"
			}
		}
		want[pkgs[i].Name] = w
	}
	path := writeDB(t, pkgs)
	fake := executortest.FakePkgrun(t)
	work := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := func() *exec.Cmd {
		cmd := exec.Command(self, "run", "--db", path, "-j", "4", "--pkgrun", fake, "--work-root", work, "--env", "FAKE_SLEEP_MS=20")
		cmd.Env = append(os.Environ(), asMain+"=1")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		cmd.Stdout = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("pkgsched output:\n%s", errb.String())
			}
		})
		return cmd
	}
	killed := 0
	for k := range kills {
		cmd := start()
		wait := time.Duration(30+rng.IntN(270)) * time.Millisecond
		time.Sleep(wait)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		t.Logf("kill %d after %v: %v", k+1, wait, err)
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == -1 {
			killed++
		}
	}
	if killed < 2 {
		t.Errorf("pkgsched was killed only %d times before it finished: make the build longer", killed)
	}
	cmd := start()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("final run: %v, want exit 1 (some packages fail)", err)
	}

	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := map[string]string{}
	rows, err := d.Query(`SELECT p.pkgname, b.state FROM build_state b JOIN packages p ON p.id = b.pkg_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, s string
		rows.Scan(&n, &s)
		got[n] = s
	}
	rows.Close()
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
	restarts := map[string]int{}
	rows, err = d.Query(`SELECT p.pkgname FROM events e JOIN packages p ON p.id = e.pkg_id WHERE e.event = 'requeue' AND e.detail = 'requeued after restart'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		restarts[n]++
	}
	rows.Close()
	b, _ := os.ReadFile(filepath.Join(work, executortest.LogName))
	built := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(l, "DOUBLE") || strings.HasPrefix(l, "ORDER") {
			t.Errorf("fake builder: %s", l)
			continue
		}
		name, _, _ := strings.Cut(l, " ")
		built[name]++
	}
	again := 0
	for n, w := range want {
		c := built[n]
		switch {
		case w == "indirect-failed" && c != 0:
			t.Errorf("%s is indirect-failed but was built %d times", n, c)
		case w != "indirect-failed" && (c < 1 || c > 1+restarts[n]):
			t.Errorf("%s built %d times; in_processing at %d kills", n, c, restarts[n])
		}
		if c > 1 {
			again++
		}
	}
	var doneEvents, dupDone int
	d.QueryRow(`SELECT count(*) FROM events WHERE event = 'done'`).Scan(&doneEvents)
	d.QueryRow(`SELECT count(*) FROM (SELECT pkg_id FROM events WHERE event IN ('done', 'failed') GROUP BY pkg_id HAVING count(*) > 1)`).Scan(&dupDone)
	if dupDone != 0 {
		t.Errorf("%d packages were decided twice", dupDone)
	}
	// The builders killed with pkgsched left their job directories; the
	// next run removed them.
	if left := executortest.JobDirs(t, work); len(left) > 0 {
		t.Errorf("job directories left in the work root: %v", left)
	}
	var cleaned int
	d.QueryRow(`SELECT count(*) FROM events WHERE event = 'cleanup'`).Scan(&cleaned)
	t.Logf("%d packages, %d kills, %d packages requeued at a restart, %d built again, %d job directories cleaned up", n, kills, len(restarts), again, cleaned)
}

// TestSignals stops a real pkgsched with SIGTERM or SIGINT (Ctrl-C) in
// the middle of long builds: it must kill the builders, put their packages
// back to open, say that running it again resumes, and exit 2.
func TestSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			path := writeDB(t, schedtest.RandomDAG(4, 20))
			fake := executortest.FakePkgrun(t)
			work := t.TempDir()
			cmd, out := startSched(t, "run", "--db", path, "-j", "2", "--pkgrun", fake, "--work-root", work, "--env", "FAKE_SLEEP_MS=60000")
			pids := waitBuilders(t, work, 2)
			t0 := time.Now()
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("after %v: %v, want exit 2\n%s", sig, err, out.String())
			}
			if !strings.Contains(out.String(), "pkgsched: interrupted; run it again to resume") || strings.Contains(out.String(), "context canceled") {
				t.Errorf("after %v, pkgsched said:\n%s", sig, out.String())
			}
			if d := time.Since(t0); d > 15*time.Second {
				t.Errorf("stopping took %v", d)
			}
			for _, pid := range pids {
				if alive(pid) {
					t.Errorf("builder %d still running after pkgsched stopped", pid)
				}
			}
			d, err := db.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var inproc, requeued, attempts int
			d.QueryRow(`SELECT count(*) FROM build_state WHERE state = 'in_processing'`).Scan(&inproc)
			d.QueryRow(`SELECT count(*) FROM events WHERE event = 'requeue' AND detail = 'interrupted'`).Scan(&requeued)
			d.QueryRow(`SELECT sum(attempts) FROM build_state`).Scan(&attempts)
			if inproc != 0 || requeued != 2 || attempts != 2 {
				t.Errorf("after %v: %d in_processing, %d requeued, %d attempts; want 0, 2, 2", sig, inproc, requeued, attempts)
			}
			if left := executortest.JobDirs(t, work); len(left) > 0 {
				t.Errorf("the stopped builders left job directories: %v", left)
			}
		})
	}
}

// startSched starts a real pkgsched process (this test binary as main)
// with args; its output is logged when the test fails.
func startSched(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), asMain+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pkgsched %v:\n%s", args, out.String())
		}
	})
	return cmd, &out
}

// waitBuilders waits until n fake builders run in work and returns their
// pids.
func waitBuilders(t *testing.T, work string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var markers []string
	for time.Now().Before(deadline) {
		markers, _ = filepath.Glob(filepath.Join(work, "running.*"))
		if len(markers) == n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(markers) != n {
		t.Fatalf("%d builders running, want %d: %v", len(markers), n, markers)
	}
	var pids []int
	for _, m := range markers {
		b, _ := os.ReadFile(m)
		var pid int
		fmt.Sscan(string(b), &pid)
		pids = append(pids, pid)
	}
	return pids
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z")
}

// TestOneSchedulerPerDatabase: while a pkgsched run holds a database, a
// second run is refused (exit 2, naming the first's pid and host) without
// touching the first's builders or its settings, and pkgdag build refuses
// to replace the file; pkgsched status still reads it. Once the first run
// is gone, the second runs.
func TestOneSchedulerPerDatabase(t *testing.T) {
	path := writeDB(t, schedtest.RandomDAG(4, 10))
	fake := executortest.FakePkgrun(t)
	work := t.TempDir()
	first, out := startSched(t, "run", "--db", path, "-j", "2", "--pkgrun", fake, "--work-root", work, "--env", "FAKE_SLEEP_MS=60000")
	pids := waitBuilders(t, work, 2)
	pid := first.Process.Pid
	host, _ := os.Hostname()
	settings := fmt.Sprintf("%s.pkgrun-%d.json", path, pid)
	before, err := os.ReadFile(settings)
	if err != nil || !strings.Contains(string(before), "FAKE_SLEEP_MS=60000") {
		t.Fatalf("the first run's settings file %s: %v %s", settings, err, before)
	}

	code, stdout, errs := run(t, "run", "--db", path, "-j", "2", "--pkgrun", fake, "--work-root", work, "--env", "FAKE_SLEEP_MS=1")
	if code != 2 {
		t.Errorf("second run: exit %d, want 2\n%s\n%s", code, stdout, errs)
	}
	for _, want := range []string{path, "in use by pkgsched run", fmt.Sprintf("pid %d", pid), "host " + host} {
		if !strings.Contains(errs, want) {
			t.Errorf("second run's message %q lacks %q", errs, want)
		}
	}
	for _, p := range pids {
		if !alive(p) {
			t.Errorf("the first run's builder %d was killed by the second run", p)
		}
	}
	if after, _ := os.ReadFile(settings); !bytes.Equal(after, before) {
		t.Errorf("the first run's settings changed:\n%s", after)
	}

	// pkgdag build must not swap the database under the run.
	scanFile := filepath.Join(t.TempDir(), "pscan")
	os.WriteFile(scanFile, []byte("PKGNAME=x-1.0\nPKG_LOCATION=x/x\nALL_DEPENDS=\nPKG_SKIP_REASON=\nPKG_FAIL_REASON=\n"), 0o644)
	fi, _ := os.Stat(path)
	var dout, derr bytes.Buffer
	code = cli.Run(context.Background(), "pkgdag", dag.Description, &dag.Command{}, []string{"build", "-o", path, scanFile},
		&cli.Globals{Stdin: strings.NewReader(""), Stdout: &dout, Stderr: &derr})
	if code != 2 || !strings.Contains(derr.String(), "refusing to replace") || !strings.Contains(derr.String(), fmt.Sprintf("pid %d", pid)) {
		t.Errorf("pkgdag build over a running database: exit %d, stderr %q", code, derr.String())
	}
	if fi2, err := os.Stat(path); err != nil || !os.SameFile(fi, fi2) {
		t.Errorf("pkgdag replaced the database under a running pkgsched")
	}
	if code, stdout, errs := run(t, "status", "--db", path); code != 0 || !strings.Contains(stdout, "running:") {
		t.Errorf("status during the run: exit %d\n%s\n%s", code, stdout, errs)
	}

	first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err == nil {
		t.Errorf("the interrupted first run exited 0:\n%s", out)
	}
	if _, err := os.Stat(settings); !os.IsNotExist(err) {
		t.Errorf("the first run left its settings file: %v", err)
	}
	if _, err := os.Stat(path + db.LockSuffix); !os.IsNotExist(err) {
		t.Errorf("the first run left its lock file: %v", err)
	}
	code, stdout, errs = run(t, "run", "--db", path, "-j", "2", "--pkgrun", fake, "--work-root", work, "--env", "FAKE_SLEEP_MS=1")
	if code != 0 || !strings.Contains(stdout, "done  10") {
		t.Errorf("run after the first stopped: exit %d\n%s\n%s", code, stdout, errs)
	}
}

// TestReadOnlyDatabase: pkgsched status and report only read the
// database, so they must work where it cannot be written: a file of
// another user in a directory of theirs (as root, the commands run as
// nobody, since root may write anything), else a read-only file in a
// read-only directory. The database has been run on (WAL mode), which is
// what made opening it need to write.
func TestReadOnlyDatabase(t *testing.T) {
	dir, err := os.MkdirTemp("", "pkgsched-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755); os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "bulk.db")
	if err := schedtest.WriteDB(context.Background(), path, schedtest.RandomDAG(6, 8)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	fake := executortest.FakePkgrun(t)
	if code, out, errs := run(t, "run", "--db", path, "-j", "2", "--pkgrun", fake, "--work-root", t.TempDir()); code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errs)
	}
	out, err := os.MkdirTemp("", "pkgsched-ro-out-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	os.Chmod(out, 0o777)

	// reader runs pkgsched with args where it cannot write the database.
	reader := func(args ...string) (int, string) {
		if os.Geteuid() != 0 {
			os.Chmod(path, 0o444)
			os.Chmod(dir, 0o555)
			defer os.Chmod(dir, 0o755)
			code, stdout, errs := run(t, args...)
			return code, stdout + errs
		}
		// nobody must reach the binary: copy it where everyone can.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bindir, err := os.MkdirTemp("", "pkgsched-bin-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(bindir)
		os.Chmod(bindir, 0o755)
		bin := filepath.Join(bindir, "pkgsched")
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), asMain+"=1")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		o, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(o)
	}
	if code, o := reader("status", "--db", path); code != 0 || !strings.Contains(o, "done  8") {
		t.Errorf("status of a read-only database: exit %d\n%s", code, o)
	}
	if code, o := reader("report", "--db", path, "-o", out); code != 0 {
		t.Errorf("report of a read-only database: exit %d\n%s", code, o)
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Errorf("report: %v", err)
	}
	if code, o := reader("simulate", "--db", path, "-W", "2"); code != 0 {
		t.Errorf("simulate of a read-only database: exit %d\n%s", code, o)
	}
}
