package statuspage_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// hostile is what a package's COMMENT and a log line hold in these tests:
// markup that runs script when a page puts it in as HTML.
const hostile = `<script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">`

// newBuild writes a build database of pkgs, gives the package named evil
// the hostile COMMENT, and returns its path.
func newBuild(t *testing.T, pkgs []schedtest.Pkg, evil string) string {
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
	defer d.Close()
	if evil != "" {
		if _, err := d.Exec(`UPDATE scan_records SET record = record || ? WHERE pkg_id = (SELECT id FROM packages WHERE pkgname = ?)`,
			"COMMENT="+hostile+"\n", evil); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func openRO(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// gated is an executor whose jobs run until the test ends them: each job
// writes a job directory with a phase log as pkgrun does
// (<work root>/<PKGNAME>.<n>/logs/<phase>.log), and on failure the logs
// to a file store's bulklog/<PKGNAME>/.
type gated struct {
	workRoot, store string
	slots           chan int
	started         chan string // a job's PKGNAME when it starts

	mu    sync.Mutex
	gates map[string]chan job.Status
	n     int
}

func newGated(workRoot, store string, slots int) *gated {
	g := &gated{workRoot: workRoot, store: store, slots: make(chan int, slots), started: make(chan string, 100), gates: map[string]chan job.Status{}}
	for i := 1; i <= slots; i++ {
		g.slots <- i
	}
	return g
}

func (g *gated) gate(pkg string) chan job.Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.gates[pkg]
	if !ok {
		c = make(chan job.Status, 1)
		g.gates[pkg] = c
	}
	return c
}

// finish ends pkg's job with st (now or once it starts).
func (g *gated) finish(pkg string, st job.Status) { g.gate(pkg) <- st }

func (g *gated) Acquire(ctx context.Context) (executor.Slot, error) {
	select {
	case n := <-g.slots:
		return &gslot{g: g, n: n}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (g *gated) Capacity() int { return cap(g.slots) }
func (g *gated) Close() error  { return nil }

type gslot struct {
	g *gated
	n int
}

func (s *gslot) Name() string { return fmt.Sprintf("local/%d", s.n) }
func (s *gslot) Release()     { s.g.slots <- s.n }

func (s *gslot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	defer s.Release()
	s.g.mu.Lock()
	s.g.n++
	dir := filepath.Join(s.g.workRoot, fmt.Sprintf("%s.%d", j.PkgName, s.g.n), "logs")
	s.g.mu.Unlock()
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "depends.log"), []byte("===> depends of "+j.PkgName+"\n"), 0o644)
	phase := "build"
	if strings.HasPrefix(j.PkgName, "evil") {
		phase = "configure"
	}
	logText := fmt.Sprintf("===> %s of %s\ncc -O2 -c main.c\nchecking for %s... yes\n", phase, j.PkgName, hostile)
	os.WriteFile(filepath.Join(dir, phase+".log"), []byte(logText), 0o644)
	s.g.started <- j.PkgName
	var st job.Status
	select {
	case st = <-s.g.gate(j.PkgName):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	os.RemoveAll(filepath.Dir(dir))
	res := &job.Result{PkgName: j.PkgName, PkgPath: j.PkgPath, Status: st, WallMS: 1}
	if st == job.StatusFailed {
		res.FailedPhase, res.Message = phase, "exit status 1"
		logs := filepath.Join(s.g.store, "bulklog", j.PkgName)
		os.MkdirAll(logs, 0o755)
		os.WriteFile(filepath.Join(logs, phase+".log"), []byte(logText), 0o644)
		res.Phases = []job.Phase{{Name: phase, Log: "bulklog/" + j.PkgName + "/" + phase + ".log"}}
	}
	return &executor.Outcome{Result: res}, nil
}

func openRW(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
