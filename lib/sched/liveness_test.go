package sched_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

func TestLiveness(t *testing.T) {
	now := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		beat  *sched.Heartbeat // nil: no row
		alive bool
		want  string // in Message
	}{
		{"never", nil, false, ""},
		{"fresh", &sched.Heartbeat{AtMS: now.Add(-3 * time.Second).UnixMilli(), PID: 42, Host: "b1"}, true, "scheduler running: pid 42 on b1"},
		{"killed", &sched.Heartbeat{AtMS: now.Add(-time.Minute).UnixMilli(), PID: 42, Host: "b1"}, false, "no scheduler running since 2026-12-04T19:59:00Z (pid 42 on b1 is gone: killed, or its host is down)"},
		{"killed here", &sched.Heartbeat{AtMS: now.Add(-time.Second).UnixMilli(), PID: deadPID(t), Host: hostname(t)}, false, "no scheduler running since 2026-12-04T19:59:59Z"},
		{"alive here", &sched.Heartbeat{AtMS: now.Add(-time.Second).UnixMilli(), PID: os.Getpid(), Host: hostname(t)}, true, "scheduler running"},
		{"ended", &sched.Heartbeat{AtMS: now.Add(-time.Second).UnixMilli(), PID: 7, Host: "b2", Ended: true}, false, "no scheduler running since 2026-12-04T19:59:59Z (pid 7 on b2 ended)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDB(t, []schedtest.Pkg{{Name: "a-1.0"}})
			if tc.beat != nil {
				b, _ := json.Marshal(tc.beat)
				if _, err := d.Exec(`INSERT INTO meta (key, value) VALUES ('pkgsched.heartbeat', ?)`, string(b)); err != nil {
					t.Fatal(err)
				}
			}
			l, err := sched.ReadLiveness(context.Background(), d, now)
			if err != nil {
				t.Fatal(err)
			}
			if l.Alive != tc.alive || l.Known != (tc.beat != nil) {
				t.Errorf("liveness %+v, want alive %v", l, tc.alive)
			}
			if m := l.Message(); (tc.want == "") != (m == "") || !strings.Contains(m, tc.want) {
				t.Errorf("message %q, want %q", m, tc.want)
			}
		})
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// deadPID returns the pid of a process that ended.
func deadPID(t *testing.T) int {
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}

// TestStatusAfterKill: a run that stopped beating with jobs in_processing
// (kill -9) shows as no scheduler running, how to resume, and the failed
// packages with their phase and what they break.
func TestStatusAfterKill(t *testing.T) {
	d, path := newDB(t, []schedtest.Pkg{
		{Name: "a-1.0"}, {Name: "f-1.0"}, {Name: "g-1.0", Deps: []string{"f-1.0"}}, {Name: "h-1.0", Deps: []string{"g-1.0"}},
		{Name: "s-1.0", Skip: "not here"},
	})
	killed := time.Now().Add(-time.Hour)
	for _, q := range []string{
		`INSERT INTO build_state (pkg_id, state, detail) SELECT id, initial_state, initial_detail FROM packages`,
		`UPDATE build_state SET state = 'in_processing', worker = 'local/1', started_at = 1 WHERE pkg_id = 1`,
		`UPDATE build_state SET state = 'failed', detail = 'configure: exit status 1' WHERE pkg_id = 2`,
		`UPDATE build_state SET state = 'indirect-failed', detail = 'f-1.0' WHERE pkg_id IN (3, 4)`,
	} {
		if _, err := d.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(sched.Heartbeat{AtMS: killed.UnixMilli(), PID: 99, Host: "h"})
	if _, err := d.Exec(`INSERT INTO meta (key, value) VALUES ('pkgsched.heartbeat', ?)`, string(b)); err != nil {
		t.Fatal(err)
	}
	st, err := sched.ReadStatus(context.Background(), d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Failed) != 2 || st.Failed[0].PkgName != "f-1.0" || st.Failed[0].Phase != "configure" || st.Failed[0].Breaks != 2 ||
		st.Failed[1].PkgName != "s-1.0" || st.Failed[1].State != sched.Prefailed {
		t.Errorf("failed: %+v", st.Failed)
	}
	if st.Scheduler.Alive || st.Scheduler.Resume == "" {
		t.Errorf("scheduler: %+v", st.Scheduler)
	}
	var out bytes.Buffer
	st.WriteFailures(&out)
	st.WriteLiveness(&out, path)
	for _, want := range []string{"failed (2):", "f-1.0  failed in configure  breaks 2", "s-1.0  prefailed",
		"no scheduler running since " + time.UnixMilli(killed.UnixMilli()).UTC().Format(time.RFC3339),
		"the 1 jobs shown as running are not", "to resume (1 packages left): pkgsched run --db " + path + ", with the options"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunHeartbeat: a run beats while it builds and records its end.
func TestRunHeartbeat(t *testing.T) {
	d, _ := newDB(t, []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0", Deps: []string{"a-1.0"}}})
	dir := t.TempDir()
	ex := newExec(t, dir, 1, 300*time.Millisecond)
	if _, err := sched.Run(context.Background(), d, sched.RunOptions{Exec: ex, HeartbeatEvery: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.QueryRow(`SELECT COUNT(*) FROM meta WHERE key = 'pkgsched.heartbeat'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("heartbeat rows %d (%v)", n, err)
	}
	l, err := sched.ReadLiveness(context.Background(), d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !l.Ended || l.Alive || time.Since(time.UnixMilli(l.AtMS)) > 10*time.Second {
		t.Errorf("after the run: %+v", l)
	}
}
