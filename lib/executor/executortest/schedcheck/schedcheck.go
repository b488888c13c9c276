// Package schedcheck runs an executor under the real scheduler
// (lib/sched), apart from lib/executor/executortest so that the
// conformance suite itself does not depend on the scheduler.
package schedcheck

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// Requeue runs the executor under the real scheduler on small databases:
// a crashed builder's job is requeued exactly once per crash, never runs
// twice at once, and after the bound stops the run instead of failing.
func Requeue(t *testing.T, newExec executortest.Factory) {
	type row struct {
		state             string
		attempts, crashes int
	}
	for _, tc := range []struct {
		name  string
		pkgs  []schedtest.Pkg
		want  map[string]row
		limit string // the package whose crashes stop the run, "" for none
	}{
		{
			name: "crash once",
			pkgs: []schedtest.Pkg{
				{Name: "crashonce-1.0"},
				{Name: "app-1.0", Deps: []string{"crashonce-1.0"}},
				{Name: "other-1.0"},
			},
			want: map[string]row{
				"crashonce-1.0": {"done", 2, 1},
				"app-1.0":       {"done", 1, 0},
				"other-1.0":     {"done", 1, 0},
			},
		},
		{
			name: "crash always",
			pkgs: []schedtest.Pkg{
				{Name: "crash-1.0"},
				{Name: "victim-1.0", Deps: []string{"crash-1.0"}},
			},
			want: map[string]row{
				"crash-1.0":  {"open", 3, 3},
				"victim-1.0": {"open", 0, 0},
			},
			limit: "crash-1.0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := newExec(t, executortest.Settings(dir, 5*time.Millisecond), 2)
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "bulk.db")
			if err := schedtest.WriteDB(ctx, path, tc.pkgs); err != nil {
				t.Fatal(err)
			}
			d, err := db.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			sum, err := sched.Run(ctx, d, sched.RunOptions{Exec: e, MaxCrashes: 3})
			var cl *sched.CrashLimitError
			switch {
			case tc.limit == "" && err != nil:
				t.Fatal(err)
			case tc.limit != "" && (!errors.As(err, &cl) || cl.PkgName != tc.limit || !errors.Is(err, executor.ErrCrash)):
				t.Fatalf("run: %v, want the crash limit of %s", err, tc.limit)
			}
			if sum.Failures() != 0 {
				t.Errorf("crashes failed packages: %v", sum.Counts)
			}
			rows, err := d.Query(`SELECT p.pkgname, b.state, b.detail, b.attempts, b.crashes,
				(SELECT count(*) FROM events e WHERE e.pkg_id = b.pkg_id AND e.event = 'crash'),
				(SELECT count(*) FROM events e WHERE e.pkg_id = b.pkg_id AND e.event = 'requeue')
				FROM build_state b JOIN packages p ON p.id = b.pkg_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var name, state, detail string
				var att, cr, crashEvents, requeues int
				if err := rows.Scan(&name, &state, &detail, &att, &cr, &crashEvents, &requeues); err != nil {
					t.Fatal(err)
				}
				w := tc.want[name]
				if state != w.state || att != w.attempts || cr != w.crashes {
					t.Errorf("%s: state %s attempts %d crashes %d, want %s %d %d (detail %q)", name, state, att, cr, w.state, w.attempts, w.crashes, detail)
				}
				if crashEvents != cr || requeues != cr {
					t.Errorf("%s: %d crash events and %d requeues for %d crashes", name, crashEvents, requeues, cr)
				}
			}
			log, _ := os.ReadFile(filepath.Join(dir, executortest.LogName))
			for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
				if strings.HasPrefix(l, "DOUBLE") || strings.HasPrefix(l, "ORDER") {
					t.Errorf("fake builder saw: %s", l)
				}
			}
			for n, w := range tc.want {
				if c := strings.Count(string(log), n+" done\n"); w.state == "done" && c != 1 {
					t.Errorf("%q built %d times, want once:\n%s", n, c, log)
				}
			}
		})
	}
}
