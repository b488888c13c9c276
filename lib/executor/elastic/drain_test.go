package elastic

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/provider/process"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestDrainBusySpot: max=1, the one spot builder busy with a real build
// (pkgtools/bootstrap-mk-files of the example tree) when a job lost on
// spot builders (preempt=1) needs an on-demand builder. The spot builder
// drains: its build finishes and is reported, its next slot refuses
// every job (without the drain the scheduler would give it the next
// ready job and the on-demand one would wait for the end of the build),
// then it is retired and stopped, and the on-demand builder starts:
// never more than one machine billed at once.
func TestDrainBusySpot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a package of the example tree")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "sandbox", "pkgrun's sandbox needs root")
	}
	mk := testenv.Program(t, "bmake")
	x := executortest.NewExampleTree(t, "elastic.db")
	dbPath := x.DB("elastic.db")
	d, err := db.OpenReadOnly(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	var j executor.Job
	err = d.QueryRow(`SELECT p.pkgname, p.pkgpath, r.record FROM presolve r JOIN packages p ON p.id = r.pkg_id WHERE p.pkgbase = 'bootstrap-mk-files'`).Scan(&j.PkgName, &j.PkgPath, &j.Record)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	j.Attempt = 1
	log := &testenv.Buffer{}
	store := filepath.Join(x.Dir, "store")
	os.Mkdir(store, 0o755)
	px, err := pullexec.Open(context.Background(), "pull://127.0.0.1:0?poll=2s", job.Settings{Store: "file://" + store}, dbPath, log)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	bdir := filepath.Join(x.Dir, "builders")
	prov, err := process.New(process.Config{Dir: bdir, Pkgrun: filepath.Join(x.Bin, "pkgrun"),
		Args: []string{"--pkgsrc", x.Tree, "--make", mk, "--poll-wait", "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dbPath: dbPath, px: px, prov: prov, dir: x.Dir, log: log}
	show := func() string {
		var b strings.Builder
		b.WriteString("executor log:\n" + log.String())
		logs, _ := filepath.Glob(filepath.Join(bdir, "*", "worker.log"))
		for _, l := range logs {
			c, _ := os.ReadFile(l)
			b.WriteString("== " + l + "\n" + string(c))
		}
		return b.String()
	}
	b := &billing{Provider: prov, ids: map[string]bool{}}
	ex := e.newExecOn(b, autoscale.Policy{Max: 1, Spot: true, PreemptLimit: 1, Boot: time.Second, Idle: time.Hour}, dbPath)
	defer ex.Close()
	ex.Demand(executor.Demand{Ready: 1})
	waitFor(t, "a spot worker registered", 60*time.Second, func() bool { return len(px.Workers()) == 1 }, show)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := ex.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spot := workerOf(s.Name())
	type ran struct {
		out *executor.Outcome
		err error
	}
	done := make(chan ran, 1)
	go func() {
		out, err := s.Run(ctx, j)
		done <- ran{out, err}
	}()
	waitFor(t, "the spot worker busy", 60*time.Second, func() bool {
		ws := px.Workers()
		return len(ws) == 1 && ws[0].Busy
	}, show)
	ex.lost("lost-1.0") // preempt=1: it needs an on-demand builder now
	ex.Demand(executor.Demand{Ready: 2, Running: 1})
	waitFor(t, "the spot builder draining while it builds", 30*time.Second, func() bool {
		ex.mu.Lock()
		defer ex.mu.Unlock()
		return ex.draining[spot]
	}, show)
	if !strings.Contains(log.String(), spot+" takes no new job") {
		t.Errorf("no word of the drain in the log:\n%s", log)
	}
	r := <-done
	if r.err != nil || r.out == nil || r.out.Result == nil {
		t.Fatalf("the drained builder's build: %+v, %v\n%s", r.out, r.err, show())
	}
	if r.out.Result.Status != "done" {
		t.Errorf("the drained builder's build: status %q", r.out.Result.Status)
	}
	// The scheduler's next slot is the drained worker's, which takes no
	// job; or, when the drained builder was stopped before its next poll
	// came in, already the on-demand builder's.
	next, err := ex.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after the build: %v\n%s", err, show())
	}
	switch w := workerOf(next.Name()); {
	case w == spot:
		if next.(executor.Accepter).Accepts("misc/other", "other-1.0") {
			t.Errorf("the drained spot builder's slot takes the next ready job")
		}
	case strings.Contains(w, "-od"):
		for _, ws := range px.Workers() {
			if ws.Name == "pull:"+spot {
				t.Errorf("the on-demand builder %s polls while the drained %s is still connected", w, spot)
			}
		}
	default:
		t.Fatalf("next slot %s, want one of %s or of an on-demand builder", next.Name(), spot)
	}
	waitFor(t, "an on-demand worker registered", 60*time.Second, func() bool {
		ws := px.Workers()
		return len(ws) == 1 && strings.Contains(ws[0].Name, "-od")
	}, show)
	next.Release()
	if _, peak := b.counts(); peak > 1 {
		t.Errorf("%d machines billed at once; max 1\n%s", peak, show())
	}
	if l, _ := e.builders(dbPath); len(l) != 1 || !strings.Contains(l[0].Name, "-od") {
		t.Errorf("machines now %+v; want the on-demand one only", l)
	}
}
