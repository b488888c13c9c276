package report

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// TestBuilders: each start is counted for its builder and ended by the
// next event of its package (done, failed, lost, crash, requeue); a start
// that another start follows, or that never ends, counts as other; busy
// time sums start-to-end. The HTML lists the builders, and a failed
// package's note names its builder and MAKE_JOBS.
func TestBuilders(t *testing.T) {
	d, _ := loadFixture(t)
	id := func(name string) int64 {
		var n int64
		if err := d.QueryRow(`SELECT id FROM packages WHERE pkgname = ?`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ok, lib, built := id("ok-1.0"), id("libfoo-1.0"), id("built-1.0")
	at := tStart.UnixMilli()
	for _, e := range []struct {
		ms     int64
		pkg    int64
		ev, on string
	}{
		{0, lib, "start", "pull:alice"},
		{1000, lib, "lost", "lease expired"},
		{2000, lib, "start", "ssh:b1/1"},
		{2500, ok, "start", "ssh:b1/2"},
		{3000, ok, "done", "up-to-date"},
		{7000, lib, "failed", "build"},
		{8000, built, "start", "pull:alice"},
		{8100, built, "crash", "exit 3"},
		{9000, built, "start", "local/1"},
		{9500, built, "requeue", "interrupted"},
		{9600, built, "start", "local/1"},
		{9700, built, "start", "local/1"},   // a restart after a killed run: the first never ended
		{9800, lib, "indirect-failed", "x"}, // not a run's end: no start open
	} {
		if _, err := d.Exec(`INSERT INTO events (at, pkg_id, event, detail) VALUES (?, ?, ?, ?)`, at+e.ms, e.pkg, e.ev, e.on); err != nil {
			t.Fatal(err)
		}
	}
	res := job.Result{Version: 1, PkgName: "libfoo-1.0", Status: job.StatusFailed, FailedPhase: "build", Message: "make all exited 2", MakeJobs: 4}
	rb, _ := json.Marshal(res)
	if _, err := d.Exec(`UPDATE build_state SET worker = 'ssh:b1/1', result = ? WHERE pkg_id = ?`, string(rb), lib); err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	want := []BuilderStats{
		{Worker: "local/1", Jobs: 3, Other: 3, BusyMS: 500},
		{Worker: "pull:alice", Jobs: 2, Lost: 1, Crashed: 1, BusyMS: 1100},
		{Worker: "ssh:b1/1", Jobs: 1, Failed: 1, BusyMS: 5000},
		{Worker: "ssh:b1/2", Jobs: 1, Done: 1, BusyMS: 500},
	}
	if len(b.Builders) != len(want) {
		t.Fatalf("builders %+v, want %+v", b.Builders, want)
	}
	for i := range want {
		if b.Builders[i] != want[i] {
			t.Errorf("builder %d: %+v, want %+v", i, b.Builders[i], want[i])
		}
	}
	var out bytes.Buffer
	if err := WriteHTML(&out, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	html := out.String()
	for _, s := range []string{
		`<tr><td>pull:alice</td><td class="n">2</td><td class="n">0</td><td class="n">0</td><td class="n">1</td><td class="n">1</td><td class="n">0</td><td class="n">1.1s</td></tr>`,
		`failed in build: make all exited 2 (on ssh:b1/1, MAKE_JOBS=4)`,
	} {
		if !strings.Contains(html, s) {
			t.Errorf("report.html lacks %s", s)
		}
	}
}
