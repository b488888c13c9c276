package elastic_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// builder is one worker process the process provider recorded.
type builder struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

func builders(dir string) []builder {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var r builder
		if json.Unmarshal(b, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

var leaseLine = regexp.MustCompile(`lease (\S+) \(attempt (\d+)\): (\S+) \(`)

// building is the package a builder's worker builds now: the last lease
// its log names, when no later line says the lease ended.
func building(dir string, b builder) string {
	if !alive(b.PID) {
		return ""
	}
	log, _ := os.ReadFile(filepath.Join(dir, b.ID, "worker.log"))
	m := leaseLine.FindAllSubmatchIndex(log, -1)
	if len(m) == 0 {
		return ""
	}
	last := m[len(m)-1]
	id, pkg := string(log[last[2]:last[3]]), string(log[last[6]:last[7]])
	if bytes.Contains(log[last[1]:], []byte("lease "+id+": ")) {
		return "" // reported, dropped or released
	}
	return pkg
}

// TestElasticExampleTree builds the example tree with pkgsched run on
// elastic builders: real `pkgrun worker` processes (the process
// provider) that the autoscaler starts as spot builders and stops. While
// it builds, one builder is killed with SIGKILL mid-job (a preemption:
// with preempt=1 its job must then go to an on-demand builder), and once
// that loss is recorded pkgsched itself is killed with SIGKILL while
// builders run and started again: the builders the dead master left are
// found by their run tag and stopped, and the lost job still goes to an
// on-demand builder (the count comes from the database). The run ends with the statuses and packages of a local build,
// no package starts again before its last run ended, and no builder is
// left running.
func TestElasticExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example tree twice")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "sandbox", "pkgrun's sandbox needs root")
	}
	mk := testenv.Program(t, "bmake")
	x := executortest.NewExampleTree(t, "local.db", "elastic.db")
	bin := func(n string) string { return filepath.Join(x.Bin, n) }

	storeL := filepath.Join(x.Dir, "store-local")
	lcmd := exec.Command(bin("pkgsched"), "run", "--db", x.DB("local.db"), "-j", "2", "--store", "file://"+storeL,
		"--work-root", filepath.Join(x.Dir, "work-local"), "--pkgrun", bin("pkgrun"), "--pkgsrc", x.Tree,
		"--make", mk, "--max-time", "5m", "--json")
	outL, _ := lcmd.CombinedOutput()
	codeL := lcmd.ProcessState.ExitCode()

	dbE, storeE := x.DB("elastic.db"), filepath.Join(x.Dir, "store-elastic")
	bdir := dbE + ".builders/process"
	spec := fmt.Sprintf("elastic:process?max=2&boot=2s&idle=3s&worth=0.01&spot=true&preempt=1&ttl=5s&poll=2s&tick=200ms&list=500ms"+
		"&pkgrun=%s&arg=--make=%s&arg=--pkgsrc=%s&arg=--poll-wait=2s", bin("pkgrun"), mk, x.Tree)
	out := &testenv.Buffer{}
	var mu sync.Mutex
	var cmd *exec.Cmd
	exit := make(chan int, 1)
	start := func() {
		c := exec.Command(bin("pkgsched"), "run", "--db", dbE, "--executor", spec, "--store", "file://"+storeE,
			"--work-root", filepath.Join(x.Dir, "work-elastic"), "--pkgrun", bin("pkgrun"), "--pkgsrc", x.Tree,
			"--make", mk, "--max-time", "5m", "--max-crashes", "10", "--json")
		c.Stdout, c.Stderr = out, out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { c.Wait(); exit <- c.ProcessState.ExitCode() }()
		mu.Lock()
		cmd = c
		mu.Unlock()
	}
	t.Cleanup(func() {
		mu.Lock()
		if cmd != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
		mu.Unlock()
		for _, b := range builders(bdir) {
			syscall.Kill(-b.PID, syscall.SIGKILL)
		}
	})
	start()

	wait := func(what string, d time.Duration, cond func() bool) bool {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			if cond() {
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("%s: not within %s", what, d)
		return false
	}

	// A preemption: SIGKILL a builder mid-job.
	var preempted, preemptedBy string
	wait("a builder building", 3*time.Minute, func() bool {
		for _, b := range builders(bdir) {
			if p := building(bdir, b); p != "" {
				preempted, preemptedBy = p, b.Name
				syscall.Kill(b.PID, syscall.SIGKILL)
				return true
			}
		}
		return false
	})
	t.Logf("preempted %s on %s", preempted, preemptedBy)
	// The master dies once the lost job is recorded (before the
	// on-demand builder could build it: the rule must hold across the
	// restart, from the database), while builders run; it is started
	// again.
	var orphans []builder
	if wait("the preempted job's loss recorded", 2*time.Minute, func() bool { return lostEvents(dbE, preempted) > 0 }) {
		mu.Lock()
		cmd.Process.Kill()
		mu.Unlock()
		<-exit
		for _, b := range builders(bdir) {
			if alive(b.PID) {
				orphans = append(orphans, b)
			}
		}
		if len(orphans) == 0 {
			t.Error("no builder outlived the killed master: nothing to find again")
		}
		fmt.Fprintf(out, "=== pkgsched killed; %d builders left running; restarted\n", len(orphans))
		start()
	}
	var codeE int
	select {
	case codeE = <-exit:
	case <-time.After(8 * time.Minute):
		t.Fatalf("the elastic run did not end\n%s", out)
	}
	t.Logf("elastic run: exit %d", codeE)

	if codeE != codeL {
		t.Errorf("elastic run: exit %d, local %d\nlocal:\n%s", codeE, codeL, outL)
	}
	sl, se := executortest.States(t, x.DB("local.db")), executortest.States(t, dbE)
	for p, s := range sl {
		if se[p] != s {
			t.Errorf("%s: %s on elastic builders, %s locally", p, se[p], s)
		}
	}
	if pl, pe := executortest.Packages(storeL), executortest.Packages(storeE); strings.Join(pl, " ") != strings.Join(pe, " ") {
		t.Errorf("packages differ:\nlocal:   %v\nelastic: %v", pl, pe)
	}
	for _, b := range orphans {
		if alive(b.PID) {
			t.Errorf("builder %s (pid %d) the killed master left still runs", b.Name, b.PID)
		}
	}
	if !strings.Contains(out.String(), "machines an earlier master of this run left") && len(orphans) > 0 {
		t.Error("the restarted master did not report the builders it stopped")
	}
	if left := builders(bdir); len(left) > 0 {
		t.Errorf("builders left after the run: %v", left)
	}
	checkEvents(t, dbE, preempted)

	// pkgsched status shows what the machines cost: the last run stopped
	// them all; the machines of both runs were started and billed.
	st, err := exec.Command(bin("pkgsched"), "status", "--db", dbE, "--json").Output()
	if err != nil {
		t.Fatalf("pkgsched status: %v", err)
	}
	var status struct {
		Elastic *autoscale.Status `json:"elastic"`
	}
	if err := json.Unmarshal(st, &status); err != nil || status.Elastic == nil {
		t.Fatalf("pkgsched status --json: %v\n%s", err, st)
	}
	if es := status.Elastic; es.Provider != "process" || !es.Stopped || es.Live != 0 || es.Started < 1 || es.BilledMS <= 0 || es.Max != 2 {
		t.Errorf("elastic status after the run: %+v", *es)
	}
	if txt, _ := exec.Command(bin("pkgsched"), "status", "--db", dbE).Output(); !strings.Contains(string(txt), "elastic (process, spot): 0 machines billed now") {
		t.Errorf("pkgsched status does not show the elastic builders:\n%s", txt)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("pkgsched:\n%s", out)
	}
}

// checkEvents checks that no package started again before its last run
// ended, and that the preempted package was built at last on an
// on-demand builder.
func checkEvents(t *testing.T, path, preempted string) {
	executortest.CheckNoOverlap(t, path)
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if preempted == "" {
		return
	}
	var worker sql.NullString
	var state string
	err = d.QueryRow(`SELECT s.state, s.worker FROM build_state s JOIN packages p ON p.id = s.pkg_id WHERE p.pkgname = ?`, preempted).Scan(&state, &worker)
	if err != nil {
		t.Fatalf("%s: %v", preempted, err)
	}
	t.Logf("the preempted %s: %s on %s", preempted, state, worker.String)
	if !strings.Contains(worker.String, "-od") {
		t.Errorf("the preempted %s was built on %q, not on an on-demand builder", preempted, worker.String)
	}
}

// state is a package's build state in the database at path ("" when it
// cannot be read now).
func state(path, pkg string) string {
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		return ""
	}
	defer d.Close()
	var st string
	d.QueryRow(`SELECT s.state FROM build_state s JOIN packages p ON p.id = s.pkg_id WHERE p.pkgname = ?`, pkg).Scan(&st)
	return st
}

// lostEvents counts the events of pkg that name a lost worker.
func lostEvents(path, pkg string) int {
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		return 0
	}
	defer d.Close()
	var n int
	d.QueryRow(`SELECT COUNT(*) FROM events e JOIN packages p ON p.id = e.pkg_id WHERE p.pkgname = ? AND e.event IN ('crash', 'lost') AND e.detail LIKE '%worker lost%'`, pkg).Scan(&n)
	return n
}
