// Package qemutest runs what the VM tests of the qemu and EC2 providers
// share: a pkgsched master with the pull executor on loopback, serving
// (part of) the example tree, and a reference local build of it.
package qemutest

import (
	"context"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// SyncBuf is testenv.Buffer (the name the VM tests use).
type SyncBuf = testenv.Buffer

// Limited are the example tree's packages the VM tests build (with their
// dependencies): C libraries and programs in a chain, a C library whose
// build fails and two packages that depend on it, and a diamond. The
// whole tree takes about five minutes on two VMs under TCG on two cores:
// TestElasticQemu builds all of it only when FullTree says so.
var Limited = []string{"misc/exreport", "misc/exbroken-user2", "misc/diamond-d"}

// FullTree reports whether TestElasticQemu builds the whole example tree:
// in CI (PKGBULK_TEST_REQUIRE=all or naming vm-full),
// or when PKGBULK_TEST_VM_FULL=1 asks for it.
func FullTree() bool {
	return os.Getenv("PKGBULK_TEST_VM_FULL") == "1" || testenv.Required("vm-full")
}

// Master is a pkgsched run with the pull executor on loopback.
type Master struct {
	T     testing.TB
	X     *executortest.ExampleTree
	Make  string
	DB    string
	Store string
	Port  int
	FP    string // the certificate's pin, sha256:HEX
	Out   *SyncBuf

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan int
}

// FreePort returns a free loopback TCP port.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NewMaster sets up the example tree with the databases local.db (for
// LocalBuild) and vm.db (the master's), both limited to the packages of
// list (and their dependencies) unless list is nil (the whole tree).
func NewMaster(t testing.TB, list []string) *Master {
	t.Helper()
	m := &Master{T: t, Make: testenv.Program(t, "bmake"), Out: &SyncBuf{}}
	m.X = exampleTree(t)
	args := []string{"build", "-q"}
	if list != nil {
		f := filepath.Join(m.X.Dir, "vm-limited")
		if err := os.WriteFile(f, []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--limited", f)
	}
	for _, n := range []string{"local.db", "vm.db"} {
		a := append(append([]string{}, args...), "-o", m.X.DB(n), filepath.Join(m.X.Dir, "scan"))
		if out, err := exec.Command(m.Bin("pkgdag"), a...).CombinedOutput(); err != nil {
			t.Fatalf("pkgdag %s: %v\n%s", strings.Join(a, " "), err, out)
		}
	}
	m.DB, m.Store, m.Port = m.X.DB("vm.db"), filepath.Join(m.X.Dir, "store-vm"), FreePort(t)
	return m
}

// exampleTree is executortest.NewExampleTree for benchmarks too: the
// tools built into Bin, a copy of examples/tree at Tree, its scan.
func exampleTree(t testing.TB) *executortest.ExampleTree {
	t.Helper()
	root := testenv.RepoRoot(t)
	x := &executortest.ExampleTree{Dir: t.TempDir()}
	x.Bin, x.Tree = filepath.Join(x.Dir, "bin"), filepath.Join(x.Dir, "tree")
	build := exec.Command("go", "build", "-o", x.Bin+"/", "./cmd/pkgscan", "./cmd/pkgdag", "./cmd/pkgrun", "./cmd/pkgsched")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.CopyFS(x.Tree, os.DirFS(filepath.Join(root, "examples", "tree"))); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(x.Bin, "pkgscan"), "-C", x.Tree, "-j", "2", "-o", filepath.Join(x.Dir, "scan")).CombinedOutput(); err != nil {
		t.Fatalf("pkgscan: %v\n%s", err, out)
	}
	return x
}

// Bin is the path of a tool built for the test.
func (m *Master) Bin(n string) string { return filepath.Join(m.X.Bin, n) }

// URL is the pull server's URL on the host.
func (m *Master) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", m.Port) }

// LocalBuild builds local.db with the local executor and returns its
// exit status, output and store.
func (m *Master) LocalBuild() (int, string, string) {
	store := filepath.Join(m.X.Dir, "store-local")
	start := time.Now()
	cmd := exec.Command(m.Bin("pkgsched"), "run", "--db", m.X.DB("local.db"), "-j", "2", "--store", "file://"+store,
		"--work-root", filepath.Join(m.X.Dir, "work-local"), "--pkgrun", m.Bin("pkgrun"), "--pkgsrc", m.X.Tree,
		"--make", m.Make, "--max-time", "5m", "--json")
	out, _ := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	m.T.Logf("local run: exit %d in %v", code, time.Since(start).Round(time.Second))
	return code, string(out), store
}

var tokenRE = regexp.MustCompile(regexp.QuoteMeta(pull.TokenPrefix) + `[A-Za-z0-9_-]+`)

// Token adds a registration token for name and returns it.
func (m *Master) Token(name string) string {
	out, err := exec.Command(m.Bin("pkgsched"), "token", "add", "--db", m.DB, name).CombinedOutput()
	if err != nil {
		m.T.Fatalf("pkgsched token add: %v\n%s", err, out)
	}
	tok := tokenRE.FindString(string(out))
	if tok == "" {
		m.T.Fatalf("pkgsched token add %s printed no token", name)
	}
	return tok
}

// Start runs pkgsched run on vm.db with the given executor spec ("" :
// the pull executor on Port with the lease TTL ttl) and waits for the
// pull server's certificate.
func (m *Master) Start(spec string, ttl time.Duration) {
	if spec == "" {
		spec = fmt.Sprintf("pull://127.0.0.1:%d?ttl=%v&poll=5s", m.Port, ttl)
	}
	cmd := exec.Command(m.Bin("pkgsched"), "run", "--db", m.DB, "--executor", spec,
		"--store", "file://"+m.Store, "--pkgrun", m.Bin("pkgrun"), "--pkgsrc", m.X.Tree, "--make", m.Make,
		"--max-time", "10m", "--max-crashes", "20", "--json", "--work-root", filepath.Join(m.X.Dir, "work-sched"))
	fmt.Fprintf(m.Out, "=== pkgsched run --executor %s\n", spec)
	cmd.Stdout, cmd.Stderr = m.Out, m.Out
	if err := cmd.Start(); err != nil {
		m.T.Fatal(err)
	}
	exit := make(chan int, 1)
	go func() {
		cmd.Wait()
		exit <- cmd.ProcessState.ExitCode()
	}()
	m.mu.Lock()
	m.cmd, m.exit = cmd, exit
	m.mu.Unlock()
	m.T.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(m.DB + ".pull-cert.pem"); err == nil {
			if blk, _ := pem.Decode(b); blk != nil {
				m.FP = fmt.Sprintf("sha256:%x", sha256.Sum256(blk.Bytes))
				return
			}
		}
		if time.Now().After(deadline) {
			m.T.Fatalf("no certificate beside %s; pkgsched:\n%s", m.DB, m.Out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Process is the running pkgsched and the channel of its exit status.
func (m *Master) Process() (*exec.Cmd, chan int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd, m.exit
}

// Wait waits for pkgsched to exit and returns its status (-1 when ctx
// ends first).
func (m *Master) Wait(ctx context.Context) int {
	_, exit := m.Process()
	select {
	case code := <-exit:
		exit <- code
		return code
	case <-ctx.Done():
		return -1
	}
}

// LeaseRE matches a worker's log line for a lease it took.
var LeaseRE = regexp.MustCompile(`lease \S+ \(attempt \d+\): \S+`)

// WaitConsole waits until the file (a VM's console log) matches re.
func WaitConsole(ctx context.Context, file string, re *regexp.Regexp) error {
	for {
		if b, _ := os.ReadFile(file); re.Match(b) {
			return nil
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(file)
			return fmt.Errorf("%s never matched %s: %w\n%s", file, re, ctx.Err(), b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Compare fails t unless the master's database and store have the
// statuses and packages of the local build.
func (m *Master) Compare(t *testing.T, storeL string, dump func()) {
	t.Helper()
	sl, sv := executortest.States(t, m.X.DB("local.db")), executortest.States(t, m.DB)
	if len(sl) == 0 {
		t.Fatal("the local build has no packages")
	}
	if !reflect.DeepEqual(sl, sv) {
		for k, v := range sl {
			if sv[k] != v {
				t.Errorf("%s: %s on the VMs, %s locally", k, sv[k], v)
			}
		}
		dump()
		t.Logf("pkgsched:\n%s", m.Out)
	}
	if pl, pv := executortest.Packages(storeL), executortest.Packages(m.Store); !reflect.DeepEqual(pl, pv) || len(pl) == 0 {
		t.Errorf("packages differ:\nlocal %v\nVMs   %v", pl, pv)
	}
}

// PullServer opens a pull executor on an empty database (no jobs) on
// loopback, closed when the test ends.
func PullServer(t testing.TB, dir string) *pullexec.Executor {
	dbPath := filepath.Join(dir, "bulk.db")
	d, err := db.Create(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	px, err := pullexec.Open(context.Background(), "pull://127.0.0.1:0?poll=2s", job.Settings{Store: "file://" + store}, dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}

// CheckEvents fails t when a package of the master's database started
// again before its last run ended (built twice at once), and returns the
// worker that built each package at last.
func (m *Master) CheckEvents(t *testing.T) map[string]string {
	t.Helper()
	d, err := db.OpenReadOnly(context.Background(), m.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	starts := executortest.CheckNoOverlap(t, m.DB)
	if starts == 0 {
		t.Error("the database has no start events")
	}
	by := map[string]string{}
	rows, err := d.Query(`SELECT p.pkgname, COALESCE(s.worker, '') FROM build_state s JOIN packages p ON p.id = s.pkg_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var pkg, w string
		if err := rows.Scan(&pkg, &w); err != nil {
			t.Fatal(err)
		}
		by[pkg] = w
	}
	return by
}

// BenchJoins starts one VM a benchmark iteration through p, each for one
// of workers (registered with m), and reports the mean time from Start
// to the worker's first lease on its console as s/join (qemu start to
// first lease). Each VM is stopped outside the clock.
func BenchJoins(b *testing.B, p *qemu.Provider, m *Master, workers []provider.Worker) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ins, err := p.Start(ctx, provider.StartRequest{Workers: workers[i : i+1], Tags: map[string]string{provider.TagRun: m.DB},
			Config: provider.WorkerConfig{ServerURL: m.URL(), Fingerprint: m.FP}})
		if err != nil {
			b.Fatal(err)
		}
		err = WaitConsole(ctx, p.SerialLog(ins[0].ID), LeaseRE)
		d := time.Since(t0)
		b.StopTimer()
		p.Stop(context.Background(), provider.IDs(ins))
		if err != nil {
			con, _ := os.ReadFile(p.SerialLog(ins[0].ID))
			b.Fatalf("%s: %v; console:\n%s", workers[i].Name, err, con)
		}
		total += d
		b.Logf("%s: %.2fs", workers[i].Name, d.Seconds())
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/join")
}
