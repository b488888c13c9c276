package sched_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

func TestMain(m *testing.M) { executortest.Main(m) }

// mixedDAG is a random DAG with some packages that fail, skew, crash once
// or are skipped, and the states pbulk's rules give them.
func mixedDAG(seed uint64, n int) ([]schedtest.Pkg, map[string]string) {
	pkgs := schedtest.RandomDAG(seed, n)
	rename := map[string]string{}
	for i := range pkgs {
		old := pkgs[i].Name
		switch {
		case i%37 == 5:
			pkgs[i].Name = "fail" + old
		case i%53 == 7:
			pkgs[i].Name = "skew" + old
		case i%41 == 3:
			pkgs[i].Name = "crashonce" + old
		case i%61 == 11:
			pkgs[i].Skip = "not here"
		}
		rename[old] = pkgs[i].Name
	}
	want := map[string]string{}
	for i := range pkgs {
		for k, d := range pkgs[i].Deps {
			pkgs[i].Deps[k] = rename[d]
		}
		p := pkgs[i]
		pre, fail := false, false
		for _, d := range p.Deps {
			switch want[d] {
			case "prefailed", "indirect-prefailed":
				pre = true
			case "failed", "indirect-failed", "skew":
				fail = true
			}
		}
		switch {
		case p.Skip != "":
			want[p.Name] = "prefailed"
		case pre:
			want[p.Name] = "indirect-prefailed"
		case fail:
			want[p.Name] = "indirect-failed"
		case strings.HasPrefix(p.Name, "fail"):
			want[p.Name] = "failed"
		case strings.HasPrefix(p.Name, "skew"):
			want[p.Name] = "skew"
		default:
			want[p.Name] = "done"
		}
	}
	return pkgs, want
}

func newDB(t *testing.T, pkgs []schedtest.Pkg) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bulk.db")
	ctx := context.Background()
	if err := schedtest.WriteDB(ctx, path, pkgs); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func newExec(t *testing.T, dir string, slots int, sleep time.Duration, env ...string) *local.Executor {
	t.Helper()
	s := executortest.Settings(dir, sleep)
	s.Environment = append(s.Environment, env...)
	e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: slots,
		Settings: s, Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func states(t *testing.T, d *sql.DB) map[string]string {
	t.Helper()
	rows, err := d.Query(`SELECT p.pkgname, b.state FROM build_state b JOIN packages p ON p.id = b.pkg_id`)
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

// builds counts the fake builder's finished runs per package and fails
// on anything it caught (double runs, wrong order).
func builds(t *testing.T, dir string) map[string]int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, executortest.LogName))
	m := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "DOUBLE") || strings.HasPrefix(l, "ORDER") {
			t.Errorf("fake builder: %s", l)
			continue
		}
		name, _, _ := strings.Cut(l, " ")
		m[name]++
	}
	return m
}

func TestRunMixedDAG(t *testing.T) {
	pkgs, want := mixedDAG(3, 150)
	d, _ := newDB(t, pkgs)
	dir := t.TempDir()
	var progress strings.Builder
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 3, time.Millisecond),
		Progress: &progress, ProgressEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "[150/150] running 0") {
		t.Errorf("progress ends with %q", progress.String()[max(0, progress.Len()-100):])
	}
	got := states(t, d)
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
	built := builds(t, dir)
	for n, w := range want {
		c := built[n]
		if (w == "done" || w == "failed" || w == "skew") && c != 1 {
			t.Errorf("%s (%s) built %d times, want once", n, w, c)
		}
		if strings.HasPrefix(w, "indirect") || w == "prefailed" {
			if c != 0 {
				t.Errorf("%s (%s) built %d times, want never", n, w, c)
			}
		}
	}
	if sum.Failures() == 0 || sum.Unfinished() != 0 || sum.Crashes == 0 {
		t.Errorf("summary %+v", sum)
	}
	var hist, events int
	d.QueryRow(`SELECT count(*) FROM history`).Scan(&hist)
	d.QueryRow(`SELECT count(*) FROM events WHERE event = 'start'`).Scan(&events)
	if hist != sum.Jobs-sum.Crashes || events != sum.Jobs {
		t.Errorf("history rows %d, start events %d; jobs %d crashes %d", hist, events, sum.Jobs, sum.Crashes)
	}
	// A second run over the finished database builds nothing.
	sum2, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 3, 0)})
	if err != nil || sum2.Jobs != 0 {
		t.Errorf("second run: %d jobs, %v", sum2.Jobs, err)
	}
}

// TestRunInterrupt cancels a run in the middle: running jobs go back to
// open, nothing decided is lost, and the next run finishes the rest
// without building anything twice (except the interrupted jobs).
func TestRunInterrupt(t *testing.T) {
	pkgs := schedtest.RandomDAG(5, 120)
	d, _ := newDB(t, pkgs)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once a third of the packages are built.
		for ctx.Err() == nil {
			b, _ := os.ReadFile(filepath.Join(dir, executortest.LogName))
			if strings.Count(string(b), "\n") >= 40 {
				cancel()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	sum, err := sched.Run(ctx, d, sched.RunOptions{Exec: newExec(t, dir, 4, 3*time.Millisecond)})
	var ie *sched.InterruptedError
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) || !sum.Interrupted {
		t.Fatalf("interrupted run: %v, %+v", err, sum)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "interrupted; run it again to resume") || strings.Contains(msg, "context canceled") {
		t.Errorf("interrupted run says %q", msg)
	}
	st := states(t, d)
	done := 0
	for _, s := range st {
		if s == "in_processing" {
			t.Errorf("a package is still in_processing after an interrupt")
		}
		if s == "done" {
			done++
		}
	}
	if done < 30 || done == len(pkgs) {
		t.Errorf("%d done after the interrupt", done)
	}
	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 4, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts[sched.Done] != len(pkgs) {
		t.Errorf("after resume: %v", sum.Counts)
	}
	// A job killed by the interrupt may have finished its build but not
	// reported it: it may be built once more, nothing else may.
	requeued := map[string]int{}
	rows, err := d.Query(`SELECT p.pkgname FROM events e JOIN packages p ON p.id = e.pkg_id WHERE e.event = 'requeue' AND e.detail = 'interrupted'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		requeued[n]++
	}
	rows.Close()
	for n, c := range builds(t, dir) {
		if c < 1 || c > 1+requeued[n] {
			t.Errorf("%s built %d times, requeued by the interrupt %d times", n, c, requeued[n])
		}
	}
	t.Logf("%d done at the interrupt, %d jobs requeued", done, len(requeued))
}

func TestStatus(t *testing.T) {
	pkgs := schedtest.RandomDAG(9, 30)
	pkgs[3].Skip = "skipped"
	d, _ := newDB(t, pkgs)
	st, err := sched.ReadStatus(context.Background(), d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Started || st.Total != 30 || st.Counts[sched.Prefailed] != 1 || st.ETAMS <= 0 {
		t.Errorf("status before the run: %+v", st)
	}
	// Pretend a run was killed while building p0000.
	if _, err := d.Exec(`INSERT INTO build_state (pkg_id, state) SELECT id, initial_state FROM packages`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(`UPDATE build_state SET state = 'in_processing', worker = 'local/1', started_at = ? WHERE pkg_id = 1`, time.Now().Add(-time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	st, err = sched.ReadStatus(context.Background(), d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Started || len(st.Running) != 1 || st.Running[0].PkgName != "p0000-1.0" || st.Running[0].AgeMS < 59_000 {
		t.Errorf("status: %+v", st)
	}
}

// TestPrefailedCycle: pkgdag marks a dependency cycle prefailed instead of
// stopping; the scheduler must load it and build the rest.
func TestPrefailedCycle(t *testing.T) {
	pkgs := []schedtest.Pkg{
		{Name: "a-1.0", Deps: []string{"b-1.0"}, Fail: "dependency cycle"},
		{Name: "b-1.0", Deps: []string{"a-1.0"}, Fail: "dependency cycle"},
		{Name: "c-1.0", Deps: []string{"a-1.0"}},
		{Name: "d-1.0"},
	}
	d, _ := newDB(t, pkgs)
	dir := t.TempDir()
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 2, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts[sched.Done] != 1 || sum.Counts[sched.Prefailed] != 2 || sum.Counts[sched.IndirectPrefailed] != 1 {
		t.Errorf("counts %v", sum.Counts)
	}
	var detail string
	d.QueryRow(`SELECT detail FROM build_state WHERE pkg_id = 3`).Scan(&detail)
	if detail != "a-1.0" {
		t.Errorf("c-1.0 detail %q, want the prefailed dependency a-1.0", detail)
	}
	d.QueryRow(`SELECT detail FROM build_state WHERE pkg_id = 1`).Scan(&detail)
	if !strings.Contains(detail, "dependency cycle") {
		t.Errorf("a-1.0 detail %q, want the fail reason", detail)
	}
}

// TestCrashStreakAndRetry: builders that crash every time stop the run
// (instead of failing every package); a retry of crashed packages builds
// them once the builder works.
func TestCrashStreakAndRetry(t *testing.T) {
	var pkgs []schedtest.Pkg
	for i := range 12 {
		pkgs = append(pkgs, schedtest.Pkg{Name: fmt.Sprintf("crash%02d-1.0", i)})
	}
	d, _ := newDB(t, pkgs)
	dir := t.TempDir()
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 1, 0), CrashStreak: 5})
	if err == nil || !strings.Contains(err.Error(), "5 builder runs in a row crashed") {
		t.Fatalf("crashing builders: %v", err)
	}
	// A crashed job goes behind the ready packages of equal priority, so
	// here the streak stops the run before any package reaches its bound.
	if sum.Jobs != 5 || sum.Crashes != 5 || sum.Counts[sched.Open] != 12 {
		t.Errorf("after the streak: %d jobs, %v", sum.Jobs, sum.Counts)
	}

	// crashonce packages crash on their first run only. With a bound of
	// one crash the run stops there and fails nothing: the package stays
	// queued, and the next run builds it.
	pkgs = []schedtest.Pkg{
		{Name: "crashonce-1.0"},
		{Name: "app-1.0", Deps: []string{"crashonce-1.0"}},
		{Name: "failing-1.0"},
		{Name: "both-1.0", Deps: []string{"crashonce-1.0", "failing-1.0"}},
	}
	d, _ = newDB(t, pkgs)
	dir = t.TempDir()
	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 1, 0), MaxCrashes: 1})
	var cl *sched.CrashLimitError
	if !errors.As(err, &cl) || cl.PkgName != "crashonce-1.0" || !errors.Is(err, executor.ErrCrash) {
		t.Fatalf("first run: %v, want a crash limit of crashonce-1.0", err)
	}
	if got := states(t, d); got["crashonce-1.0"] != "open" || got["app-1.0"] != "open" || got["both-1.0"] != "open" {
		t.Errorf("after the crash limit: %v", got)
	}
	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 1, 0), MaxCrashes: 1})
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	got := states(t, d)
	want := map[string]string{"crashonce-1.0": "done", "app-1.0": "done", "failing-1.0": "failed", "both-1.0": "indirect-failed"}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("after the resumed run: %s %s, want %s", n, got[n], w)
		}
	}

	// --retry crashed reopens what a pkgsched before this one failed
	// after crashes, and the dependents that failed with it.
	if _, err := d.Exec(`UPDATE build_state SET state = 'failed', detail = 'builder crashed 3 times; last: x', crashes = 3 WHERE pkg_id = 1;
		UPDATE build_state SET state = 'indirect-failed', detail = 'crashonce-1.0' WHERE pkg_id = 2`); err != nil {
		t.Fatal(err)
	}
	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 2, 0), Retry: sched.RetryCrashed})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(t, d); got["crashonce-1.0"] != "done" || got["app-1.0"] != "done" || got["failing-1.0"] != "failed" {
		t.Errorf("after retry crashed: %v", got)
	}
	if sum.Jobs != 2 {
		t.Errorf("retry crashed ran %d jobs, want 2", sum.Jobs)
	}
	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 2, 0), Retry: sched.RetryFailed})
	if err != nil || sum.Jobs != 1 || states(t, d)["both-1.0"] != "indirect-failed" {
		t.Errorf("retry failed: %v, %d jobs, %v", err, sum.Jobs, states(t, d))
	}
}

// TestStoreOutageAtTheEnd: the store goes away when most packages are
// built, so the builders of the last ones crash (pkgrun exit 2) again and
// again, fewer times in a row than the crash streak. Those packages must
// not become failed: the run stops once one of them reached its crash
// bound, names it and its builder's stderr, leaves it queued, and the
// next run (store back) builds the rest.
func TestStoreOutageAtTheEnd(t *testing.T) {
	var pkgs []schedtest.Pkg
	for i := range 12 {
		pkgs = append(pkgs, schedtest.Pkg{Name: fmt.Sprintf("p%02d-1.0", i)})
	}
	d, _ := newDB(t, pkgs)
	dir := t.TempDir()
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 2, 0, "FAKE_OUTAGE_AFTER=10"), MaxCrashes: 3, CrashStreak: 10})
	var cl *sched.CrashLimitError
	if !errors.As(err, &cl) {
		t.Fatalf("outage: %v, want a crash limit", err)
	}
	for _, want := range []string{cl.PkgName, "crashed 3 times", "not marked failed", "run pkgsched again", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if sum.Failures() != 0 || sum.Counts[sched.Done] != 10 || sum.Counts[sched.Open] != 2 {
		t.Errorf("after the outage: %v", sum.Counts)
	}
	if got := states(t, d)[cl.PkgName]; got != "open" {
		t.Errorf("%s is %s, want open", cl.PkgName, got)
	}
	if c := column(t, d, "crashes")[cl.PkgName]; c != 3 {
		t.Errorf("%s: %d crashes recorded, want 3", cl.PkgName, c)
	}

	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 2, 0), MaxCrashes: 3})
	if err != nil || sum.Counts[sched.Done] != len(pkgs) || sum.Jobs != 2 {
		t.Fatalf("after the outage: %v, %d jobs, %v", err, sum.Jobs, sum.Counts)
	}
	for n, c := range builds(t, dir) {
		if c != 1 {
			t.Errorf("%s built %d times", n, c)
		}
	}
}

// column reads one integer column of build_state per package.
func column(t *testing.T, d *sql.DB, col string) map[string]int {
	t.Helper()
	rows, err := d.Query(`SELECT p.pkgname, b.` + col + ` FROM build_state b JOIN packages p ON p.id = b.pkg_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var n string
		var v int
		if err := rows.Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		m[n] = v
	}
	return m
}

// TestNoSpace: builders that run out of disk space (pkgrun exit 3) fail
// no package and count no crash; once every builder is out of space the
// run stops with a message that says to free space, and the next run
// builds everything.
func TestNoSpace(t *testing.T) {
	pkgs := schedtest.RandomDAG(8, 12)
	d, _ := newDB(t, pkgs)
	dir := t.TempDir()
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 3, 0, "FAKE_NOSPACE=1"), MaxCrashes: 1, CrashStreak: 1})
	if !errors.Is(err, executor.ErrNoSpace) || !strings.Contains(err.Error(), "Free disk space") || !strings.Contains(err.Error(), "run pkgsched again") {
		t.Fatalf("every builder out of space: %v", err)
	}
	if sum.NoSpace != 3 || sum.Crashes != 0 || sum.Failures() != 0 {
		t.Errorf("summary: %d out of space, %d crashes, %d failures; want 3, 0, 0", sum.NoSpace, sum.Crashes, sum.Failures())
	}
	for n, s := range states(t, d) {
		if s != "open" {
			t.Errorf("%s is %s after running out of space, want open", n, s)
		}
	}
	for n, c := range column(t, d, "crashes") {
		if c != 0 {
			t.Errorf("%s: %d crashes counted for a builder out of space", n, c)
		}
	}
	var events int
	d.QueryRow(`SELECT count(*) FROM events WHERE event = 'nospace'`).Scan(&events)
	if events != 3 {
		t.Errorf("%d nospace events, want 3", events)
	}

	sum, err = sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, dir, 3, 0)})
	if err != nil || sum.Counts[sched.Done] != len(pkgs) {
		t.Fatalf("after freeing space: %v, %v", err, sum.Counts)
	}
	for n, c := range builds(t, dir) {
		if c != 1 {
			t.Errorf("%s built %d times", n, c)
		}
	}
}

// TestCleanupAfterKill: a run killed with -9 leaves its jobs in_processing
// and their job directories in the work root. The next run removes the
// directories of those jobs (only those made since the job started) and
// records it, then builds the jobs again.
func TestCleanupAfterKill(t *testing.T) {
	pkgs := []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0"}, {Name: "c-1.0", Deps: []string{"a-1.0"}}}
	d, _ := newDB(t, pkgs)
	work := t.TempDir()
	if _, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, work, 2, 0)}); err != nil {
		t.Fatal(err)
	}
	// What kill -9 of the scheduler leaves: a-1.0 and c-1.0 in_processing,
	// their builders dead, their job directories still there.
	started := time.Now().Add(-time.Minute)
	if _, err := d.Exec(`UPDATE build_state SET state = 'in_processing', started_at = ? WHERE pkg_id IN (1, 3)`, started.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Join(p, "work"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
		return p
	}
	now := time.Now()
	stale := []string{mk("a-1.0.1234", now), mk("c-1.0.99", now)}
	keep := []string{
		mk("a-1.0.77", started.Add(-time.Hour)), // an older attempt's: not this job's
		mk("b-1.0.555", now),                    // b-1.0 was not running
	}
	var log strings.Builder
	sum, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: newExec(t, work, 2, 0), Log: &log})
	if err != nil || sum.Counts[sched.Done] != 3 || sum.Jobs != 2 {
		t.Fatalf("resumed run: %v, %d jobs, %v", err, sum.Jobs, sum.Counts)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s of a killed job is still there", p)
		}
		if !strings.Contains(log.String(), "removed "+p) {
			t.Errorf("log lacks the removal of %s:\n%s", p, log.String())
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	var events int
	d.QueryRow(`SELECT count(*) FROM events WHERE event = 'cleanup'`).Scan(&events)
	if events != 2 {
		t.Errorf("%d cleanup events, want 2", events)
	}
}
