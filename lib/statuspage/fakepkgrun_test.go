package statuspage_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/statuspage"
)

func TestMain(m *testing.M) { executortest.Main(m) }

// TestBrowserFakePkgrun watches a build by the local executor and the fake
// pkgrun that the scheduler's tests use (separate processes, real job
// directories): the page's counts move on as jobs finish, without a
// reload, and end equal to the database's.
func TestBrowserFakePkgrun(t *testing.T) {
	pkgs := schedtest.RandomDAG(5, 24)
	for _, i := range []int{4, 11} {
		old := pkgs[i].Name
		pkgs[i].Name = "fail" + old
		for k := range pkgs {
			for j, d := range pkgs[k].Deps {
				if d == old {
					pkgs[k].Deps[j] = pkgs[i].Name
				}
			}
		}
	}
	path := newBuild(t, pkgs, "")
	work := t.TempDir()
	ex, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: 2,
		Settings: executortest.Settings(work, time.Second), Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	ro := openRO(t, path)
	srv := httptest.NewServer(statuspage.New(statuspage.Options{DB: ro, Database: path,
		Sources:  func() statuspage.Sources { return statuspage.Sources{WorkRoot: work} },
		CacheFor: 50 * time.Millisecond}))
	defer srv.Close()
	b := startChromium(t, srv.URL+"/")
	b.waitFor("the page", `!!document.querySelector("#count-total b")`)
	b.waitFor("no build started yet", `document.getElementById("scheduler").textContent === "no build started yet"`)
	b.eval(`window.loadedOnce = true`)
	rw := openRW(t, path)
	runDone := make(chan error, 1)
	go func() {
		_, err := sched.Run(context.Background(), rw, sched.RunOptions{Exec: ex, HeartbeatEvery: 200 * time.Millisecond})
		runDone <- err
	}()
	seen := map[string]bool{}
	var finished bool
	for deadline := time.Now().Add(60 * time.Second); !finished; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the build did not end")
		}
		seen[b.eval(count("done"))] = true
		select {
		case err := <-runDone:
			finished = true
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		default:
		}
	}
	t.Logf("done counts the page showed while the build ran: %v", seen)
	if len(seen) < 2 {
		t.Errorf("the page showed only these done counts while the build ran: %v", seen)
	}
	st, err := sched.ReadStatus(context.Background(), ro, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"done":     st.Counts[sched.Done],
		"failed":   st.Counts[sched.Failed] + st.Counts[sched.Prefailed],
		"indirect": st.Counts[sched.IndirectFailed] + st.Counts[sched.IndirectPrefailed],
		"running":  0, "queued": 0, "total": 24,
	}
	if want["failed"] != 2 || want["done"]+want["indirect"] != 22 {
		t.Fatalf("the build ended as %v", st.Counts)
	}
	for k, n := range want {
		b.waitFor(k+" = "+strconv.Itoa(n), count(k)+` === "`+strconv.Itoa(n)+`"`)
	}
	b.waitFor("the scheduler's end", `document.getElementById("scheduler").textContent.startsWith("no scheduler running since")`)
	if b.eval(`window.loadedOnce === true`) != "true" {
		t.Error("the page was reloaded")
	}
	if b.eval(`document.getElementById("eta").textContent`) != `"Every package is decided."` {
		t.Errorf("eta: %s", b.eval(`document.getElementById("eta").textContent`))
	}
}
