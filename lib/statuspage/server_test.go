package statuspage_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/statuspage"
)

func get(t *testing.T, h http.Handler, target string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	r.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestServerAccess(t *testing.T) {
	path := newBuild(t, []schedtest.Pkg{{Name: "a-1.0"}}, "")
	store := t.TempDir()
	os.MkdirAll(filepath.Join(store, "bulklog", "a-1.0"), 0o755)
	os.WriteFile(filepath.Join(store, "bulklog", "a-1.0", "build.log"), []byte("<script>x</script>\n"), 0o644)
	os.WriteFile(filepath.Join(store, "secret"), []byte("s3cr3t"), 0o644)
	os.Symlink(filepath.Join(store, "secret"), filepath.Join(store, "bulklog", "a-1.0", "link.log"))
	h := statuspage.New(statuspage.Options{DB: openRO(t, path), Database: path, Token: "tok3n", LoopbackOnly: true,
		Sources: func() statuspage.Sources { return statuspage.Sources{StoreDir: store} }})
	bearer := map[string]string{"Authorization": "Bearer tok3n"}
	for _, tc := range []struct {
		name, target string
		hdr          map[string]string
		code         int
		ctype        string
	}{
		{"no token", "/", nil, 401, ""},
		{"wrong token", "/api/status", map[string]string{"Authorization": "Bearer nope"}, 401, ""},
		{"wrong cookie", "/api/status", map[string]string{"Cookie": "pkgbulk_status_token=nope"}, 401, ""},
		{"token in the URL sets a cookie", "/?token=tok3n", nil, 303, ""},
		{"wrong token in the URL", "/?token=tok3", nil, 401, ""},
		{"page", "/", bearer, 200, "text/html; charset=utf-8"},
		{"cookie", "/app.js", map[string]string{"Cookie": "pkgbulk_status_token=tok3n"}, 200, "text/javascript; charset=utf-8"},
		{"api", "/api/status", bearer, 200, "application/json"},
		{"log", "/logs/a-1.0/build.log", bearer, 200, "text/plain; charset=utf-8"},
		{"log through a link", "/logs/a-1.0/link.log", bearer, 404, ""},
		{"log outside", "/logs/..%2fsecret/x", bearer, 404, ""},
		{"log outside 2", "/logs/a-1.0/..%2f..%2fsecret", bearer, 404, ""},
		{"no listing", "/logs/", bearer, 404, ""},
		{"rebinding", "/", map[string]string{"Authorization": "Bearer tok3n", "Host": "evil.example:8080"}, 421, ""},
		{"localhost", "/", map[string]string{"Authorization": "Bearer tok3n", "Host": "localhost:8080"}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, h, tc.target, tc.hdr)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s: %s, want %d: %s", tc.target, resp.Status, tc.code, body)
			}
			if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q", csp)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
			if strings.Contains(string(body), "s3cr3t") || strings.Contains(string(body), "tok3n") {
				t.Errorf("a secret in the response: %s", body)
			}
			if tc.code == 303 {
				c := resp.Cookies()
				if len(c) != 1 || c[0].Value != "tok3n" || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
					t.Errorf("cookie %v", c)
				}
				if loc := resp.Header.Get("Location"); strings.Contains(loc, "tok3n") {
					t.Errorf("redirect keeps the token: %s", loc)
				}
			}
		})
	}
	if resp := get(t, h, "/", map[string]string{"Authorization": "Bearer tok3n"}); resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Error("no X-Frame-Options")
	}
	r := httptest.NewRequest("POST", "/api/status", nil)
	r.Header.Set("Authorization", "Bearer tok3n")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 405 {
		t.Errorf("POST: %d", w.Code)
	}
}

// TestSnapshot: the JSON holds the counts, the failures with their logs
// and phase, the running job's tail from its job directory (missing
// directories give none, not an error), and nothing of the store's URL.
func TestSnapshot(t *testing.T) {
	path := newBuild(t, []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0"}, {Name: "c-1.0", Deps: []string{"b-1.0"}}, {Name: "d-1.0"}}, "b-1.0")
	rw := openRW(t, path)
	for _, q := range []string{
		`INSERT INTO build_state (pkg_id, state, detail) SELECT id, initial_state, initial_detail FROM packages`,
		`INSERT INTO events (at, pkg_id, event, detail) VALUES (1000, NULL, 'init', '4 packages')`,
		`INSERT INTO events (at, pkg_id, event, detail) VALUES (1000, 1, 'start', 'local/1'), (1000, 2, 'start', 'local/2'), (2000, 2, 'failed', 'build: oops'), (2000, 3, 'indirect-failed', 'b-1.0'), (2500, 4, 'start', 'local/2')`,
		`UPDATE build_state SET state = 'in_processing', worker = 'local/1', started_at = 1000 WHERE pkg_id = 1`,
		`UPDATE build_state SET state = 'in_processing', worker = 'local/2', started_at = 2500 WHERE pkg_id = 4`,
		`UPDATE build_state SET state = 'failed', detail = 'build: oops' WHERE pkg_id = 2`,
		`UPDATE build_state SET state = 'indirect-failed', detail = 'b-1.0' WHERE pkg_id = 3`,
	} {
		if _, err := rw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	work, store := t.TempDir(), t.TempDir()
	logs := filepath.Join(work, "a-1.0.x1y2", "logs")
	os.MkdirAll(logs, 0o755)
	os.WriteFile(filepath.Join(logs, "configure.log"), []byte("old phase\n"), 0o644)
	os.Chtimes(filepath.Join(logs, "configure.log"), time.Now().Add(-time.Minute), time.Now().Add(-time.Minute))
	os.WriteFile(filepath.Join(logs, "build.log"), []byte("line 1\n\x1b[31mred\x1b[0m\r\nprogress 10%\rprogress 100%\n"), 0o644)
	os.WriteFile(filepath.Join(logs, "work.log"), []byte("wrklog\n"), 0o644)
	os.MkdirAll(filepath.Join(work, "a-1.0.1.zz", "logs"), 0o755) // a-1.0.1's job, not a-1.0's
	os.WriteFile(filepath.Join(work, "a-1.0.1.zz", "logs", "install.log"), []byte("not mine\n"), 0o644)
	os.MkdirAll(filepath.Join(store, "bulklog", "b-1.0"), 0o755)
	os.WriteFile(filepath.Join(store, "bulklog", "b-1.0", "build.log"), []byte("x"), 0o644)

	h := statuspage.New(statuspage.Options{DB: openRO(t, path), Database: path,
		Sources: func() statuspage.Sources {
			return statuspage.Sources{WorkRoot: work, StoreDir: store, StoreKind: "file"}
		}})
	snap, err := h.Snapshot(context.Background(), time.UnixMilli(3000))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(snap)
	if strings.Contains(string(b), store) || strings.Contains(string(b), work) {
		t.Errorf("the snapshot names a directory of the store or work root: %s", b)
	}
	want := statuspage.Counts{Failed: 1, Indirect: 1, Running: 2}
	if snap.Counts != want || snap.Total != 4 {
		t.Errorf("counts %+v", snap.Counts)
	}
	if len(snap.Running) != 2 {
		t.Fatalf("running %+v", snap.Running)
	}
	a := snap.Running[0]
	if a.PkgName != "a-1.0" || a.Phase != "build" || strings.Join(a.Tail, "|") != "line 1|red|progress 100%" {
		t.Errorf("a-1.0: %+v", a)
	}
	if d := snap.Running[1]; d.PkgName != "d-1.0" || d.Phase != "" || len(d.Tail) != 0 {
		t.Errorf("d-1.0 (no job directory): %+v", d)
	}
	if len(snap.Failures) != 1 || snap.Failures[0].Phase != "build" || snap.Failures[0].Breaks != 1 || snap.Failures[0].Comment != hostile ||
		len(snap.Failures[0].Logs) != 1 || snap.Failures[0].Logs[0].URL != "logs/b-1.0/build.log" {
		t.Errorf("failures %+v", snap.Failures)
	}
	if len(snap.Timeline) != 3 || snap.Timeline[1].State != "failed" || snap.Timeline[1].End != 2000 || snap.Timeline[0].End != 0 {
		t.Errorf("timeline %+v", snap.Timeline)
	}
	if n := len(snap.Progress); n < 2 || snap.Progress[n-1].Failed != 2 || snap.Progress[n-1].At != 3000 {
		t.Errorf("progress %+v", snap.Progress)
	}
	if len(snap.Builders) != 2 || snap.Builders[0].Worker != "local/1" || snap.Builders[0].PkgName != "a-1.0" {
		t.Errorf("builders %+v", snap.Builders)
	}
	if snap.Scheduler == nil || snap.Scheduler.Known {
		t.Errorf("scheduler %+v", snap.Scheduler)
	}
}

// TestDatabaseReplaced: a server left running follows the database that
// pkgdag build renames over the old one.
func TestDatabaseReplaced(t *testing.T) {
	path := newBuild(t, []schedtest.Pkg{{Name: "a-1.0"}}, "")
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	h := statuspage.New(statuspage.Options{DB: d, Database: path,
		Open: func(ctx context.Context) (*sql.DB, error) { return db.OpenReadOnly(ctx, path) }})
	defer h.Close()
	total := func() int {
		snap, err := h.Snapshot(context.Background(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return snap.Total
	}
	if n := total(); n != 1 {
		t.Fatalf("total %d", n)
	}
	next := newBuild(t, []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0"}}, "")
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	if n := total(); n != 2 {
		t.Errorf("total after the database was replaced: %d", n)
	}
}
