package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
)

// tpkg is one package of a test database.
type tpkg struct {
	name, loc, maint string
	deps             []string
	skip, fail       string
	state            sched.State
	detail           string
	result           *job.Result
	wallMS           int64 // 0: NULL
	finished         time.Time
	unselected       bool
}

var (
	tStart = time.Date(2026, 11, 20, 10, 5, 30, 0, time.UTC)
	tEnd   = time.Date(2026, 11, 20, 18, 42, 10, 0, time.UTC)
)

// phases makes a result's phases up to and including the failed one, each
// with its log in bulklog/<name>/.
func phases(name string, upTo string) []job.Phase {
	var ps []job.Phase
	for _, ph := range Phases {
		ps = append(ps, job.Phase{Name: ph, OK: ph != upTo, WallMS: 1000, Log: "bulklog/" + name + "/" + ph + ".log"})
		if ph == upTo {
			break
		}
	}
	return ps
}

// fixture covers every state, a multi-version location where one version
// failed, two root failures under one package, ties in the breaks order
// and a maintainer that needs escaping. Depths (distinct transitive
// dependents + 1) are computed by makeDB from deps.
func fixture() []tpkg {
	fin := func(h int) time.Time { return tStart.Add(time.Duration(h) * time.Hour) }
	return []tpkg{
		{name: "ok-1.0", loc: "devel/ok", maint: "pkgsrc-users@NetBSD.org", state: sched.Done, detail: "up-to-date", wallMS: 800, finished: fin(1),
			result: &job.Result{Version: 1, PkgName: "ok-1.0", Status: job.StatusUpToDate}},
		{name: "built-1.0", loc: "devel/built", maint: "pkgsrc-users@NetBSD.org", deps: []string{"ok-1.0"}, state: sched.Done, wallMS: 65000, finished: fin(3)},
		{name: "libfoo-1.0", loc: "devel/libfoo", maint: "alice@example.org", state: sched.Failed, detail: "build", wallMS: 3723000, finished: fin(2),
			result: &job.Result{Version: 1, PkgName: "libfoo-1.0", Status: job.StatusFailed, FailedPhase: "build", Message: "make all exited 2", Phases: phases("libfoo-1.0", "build")}},
		{name: "libbar-0.5", loc: "devel/libbar", maint: "<evil>&co", state: sched.Failed, detail: "configure", wallMS: 5400, finished: fin(1),
			result: &job.Result{Version: 1, PkgName: "libbar-0.5", Status: job.StatusFailed, FailedPhase: "configure", Phases: phases("libbar-0.5", "configure")}},
		{name: "app-a-2.0", loc: "www/app-a", maint: "bob@example.org", deps: []string{"libfoo-1.0"}, state: sched.IndirectFailed, detail: "libfoo-1.0"},
		{name: "app-b-1.0", loc: "www/app-b", maint: "bob@example.org", deps: []string{"libbar-0.5", "app-a-2.0"}, state: sched.IndirectFailed, detail: "libbar-0.5"},
		{name: "python311-3.11.9", loc: "lang/python", maint: "pkgsrc-users@NetBSD.org", state: sched.Failed, detail: "install", wallMS: 600000, finished: fin(4),
			result: &job.Result{Version: 1, PkgName: "python311-3.11.9", Status: job.StatusFailed, FailedPhase: "install", Phases: phases("python311-3.11.9", "install")}},
		{name: "python312-3.12.4", loc: "lang/python", maint: "pkgsrc-users@NetBSD.org", state: sched.Done, wallMS: 500000, finished: fin(2)},
		{name: "py311-x-1.0", loc: "devel/py-x", maint: "pkgsrc-users@NetBSD.org", deps: []string{"python311-3.11.9"}, state: sched.IndirectFailed, detail: "python311-3.11.9"},
		{name: "py312-x-1.0", loc: "devel/py-x", maint: "pkgsrc-users@NetBSD.org", deps: []string{"python312-3.12.4"}, state: sched.Done, wallMS: 2000, finished: fin(5)},
		{name: "skewed-1.0", loc: "misc/skewed", maint: "carol@example.org", state: sched.Skew, detail: "tree has skewed-1.1", wallMS: 300, finished: fin(5),
			result: &job.Result{Version: 1, PkgName: "skewed-1.0", Status: job.StatusSkew, Message: "tree has skewed-1.1"}},
		{name: "slow-2.0", loc: "misc/slow", maint: "dave@example.org", state: sched.Timeout, detail: "build", wallMS: 7200000, finished: fin(6),
			result: &job.Result{Version: 1, PkgName: "slow-2.0", Status: job.StatusTimeout, FailedPhase: "build", Phases: phases("slow-2.0", "build")}},
		{name: "broken-1.0", loc: "sysutils/broken", maint: "erin@example.org", fail: `"does not build with gcc 14" "see PR 12345"`, state: sched.Prefailed,
			detail: `PKG_FAIL_REASON="does not build with gcc 14" "see PR 12345"`},
		{name: "needs-broken-1.0", loc: "sysutils/needs-broken", maint: "erin@example.org", deps: []string{"broken-1.0"}, state: sched.IndirectPrefailed, detail: "broken-1.0"},
		{name: "skipped-1.0", loc: "sysutils/skipped", maint: "frank@example.org", skip: `"${PKGNAME} is not available for Linux"`, state: sched.Prefailed,
			detail: `PKG_SKIP_REASON="${PKGNAME} is not available for Linux"`},
		{name: "other-1.0", loc: "misc/other", maint: "x@example.org", state: sched.Open, unselected: true},
	}
}

// makeDB writes a build database holding pkgs: packages with presolve
// records and pbulk's depth, depends edges, build_state rows (unless
// noState) and events at tStart and tEnd.
func makeDB(t *testing.T, pkgs []tpkg, noState bool) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bulk.db")
	d, err := db.Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	idx := map[string]int{}
	for i, p := range pkgs {
		idx[p.name] = i
	}
	dependents := make([][]int, len(pkgs))
	for i, p := range pkgs {
		for _, dn := range p.deps {
			dependents[idx[dn]] = append(dependents[idx[dn]], i)
		}
	}
	depth := func(i int) int {
		seen := map[int]bool{i: true}
		stack := []int{i}
		for len(stack) > 0 {
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, dd := range dependents[k] {
				if !seen[dd] {
					seen[dd] = true
					stack = append(stack, dd)
				}
			}
		}
		return len(seen)
	}
	tx := func(q string, args ...any) {
		t.Helper()
		if _, err := d.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, p := range pkgs {
		base, version, _ := strings.Cut(p.name, "-")
		var rec strings.Builder
		fmt.Fprintf(&rec, "PKGNAME=%s\nPKG_LOCATION=%s\nALL_DEPENDS=\nPKG_SKIP_REASON=%s\nPKG_FAIL_REASON=%s\nNO_BIN_ON_FTP=\nRESTRICTED=\nCATEGORIES=%s\nMAINTAINER=%s\nUSE_DESTDIR=user-destdir\nBOOTSTRAP_PKG=\nUSERGROUP_PHASE=\nSCAN_DEPENDS=\n",
			p.name, p.loc, p.skip, p.fail, strings.Split(p.loc, "/")[0], p.maint)
		// The presolve view appends DEPENDS=depends to the scanned record.
		var depends any
		if len(p.deps) > 0 {
			depends = strings.Join(p.deps, " ")
		}
		initial := "open"
		if p.state == sched.Prefailed || p.state == sched.IndirectPrefailed {
			initial = string(p.state)
		}
		sel := 1
		if p.unselected {
			sel = 0
		}
		initialDetail := ""
		if initial != "open" {
			initialDetail = p.detail
		}
		tx(`INSERT INTO packages (id, pkgname, pkgbase, version, pkgpath, all_depends, skip_reason, fail_reason,
			no_bin_on_ftp, restricted, categories, maintainer, use_destdir, bootstrap_pkg, usergroup_phase,
			pbulk_weight, depends, depth, weight, selected, initial_state, initial_detail)
			VALUES (?, ?, ?, ?, ?, '', ?, ?, '', '', ?, ?, 'user-destdir', '', '', 100, ?, ?, ?, ?, ?, ?)`,
			i+1, p.name, base, version, p.loc, p.skip, p.fail, strings.Split(p.loc, "/")[0], p.maint,
			depends, depth(i), 100*depth(i), sel, initial, initialDetail)
		tx(`INSERT INTO scan_records (pkg_id, record) VALUES (?, ?)`, i+1, rec.String())
		for ord, dn := range p.deps {
			tx(`INSERT INTO depends (pkg_id, dep_id, pattern, ord) VALUES (?, ?, ?, ?)`, i+1, idx[dn]+1, dn, ord)
		}
	}
	tx(`INSERT INTO meta (key, value) VALUES ('created', ?)`, tStart.Add(-time.Hour).Format(time.RFC3339))
	if noState {
		return path
	}
	tx(`INSERT INTO events (at, pkg_id, event, detail) VALUES (?, NULL, 'init', '')`, tStart.UnixMilli())
	for i, p := range pkgs {
		if p.unselected {
			continue
		}
		var res, wall, fin, started any
		if p.result != nil {
			b, err := json.Marshal(p.result)
			if err != nil {
				t.Fatal(err)
			}
			res = string(b)
		}
		if p.wallMS > 0 {
			wall = p.wallMS
		}
		if !p.finished.IsZero() {
			fin = p.finished.UnixMilli()
			started = p.finished.UnixMilli() - p.wallMS
		}
		tx(`INSERT INTO build_state (pkg_id, state, detail, attempts, started_at, finished_at, wall_ms, result)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?)`, i+1, string(p.state), p.detail, started, fin, wall, res)
	}
	tx(`INSERT INTO events (at, pkg_id, event, detail) VALUES (?, NULL, 'done', '')`, tEnd.UnixMilli())
	return path
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	d, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func loadFixture(t *testing.T) (*sql.DB, *Build) {
	t.Helper()
	d := openDB(t, makeDB(t, fixture(), false))
	b, err := Load(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	b.Platform, b.Compiler, b.BaseURL = "NetBSD 10.0/x86_64", "gcc", "https://bulk.example.org/reports"
	return d, b
}
