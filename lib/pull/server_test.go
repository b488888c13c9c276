package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
)

// testEnv is a server on a real database and a file store, served over
// real TLS on loopback.
type testEnv struct {
	t      testing.TB
	dbPath string
	d      *sql.DB
	stDir  string
	st     store.Store
	srv    *Server
	hs     *httptest.Server
	fp     string
}

func newEnv(t testing.TB, tune func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dbPath: filepath.Join(dir, "bulk.db"), stDir: filepath.Join(dir, "store")}
	d, err := db.Create(context.Background(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := os.MkdirAll(e.stDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.start(tune)
	return e
}

// start opens the database and the store and starts a server (again,
// after stop: a pkgsched restart).
func (e *testEnv) start(tune func(*Config)) {
	t := e.t
	t.Helper()
	d, err := db.Open(context.Background(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := filestore.New(e.stDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DB: d, Store: st, LeaseTTL: 30 * time.Second, PollWait: 2 * time.Second, Sweep: 50 * time.Millisecond,
		Settings: job.Settings{Store: "file://" + e.stDir, WorkRoot: "/secret/work", MaxTime: "1h"}}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := NewServer(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d, e.st, e.srv = d, st, srv
	e.hs = httptest.NewTLSServer(srv.Handler())
	e.fp = Fingerprint(e.hs.Certificate().Raw)
	t.Cleanup(e.stop)
}

func (e *testEnv) stop() {
	if e.srv == nil {
		return
	}
	e.srv.Close()
	e.hs.Close()
	e.d.Close()
	e.srv = nil
}

// keepAlive heartbeats l every 100ms until the returned func is called
// (a lease of a short TTL must outlive a slow test machine).
func keepAlive(c *Client, l *Lease) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				c.Heartbeat(context.Background(), l.Ref(), HeartbeatRequest{})
			}
		}
	}()
	return func() { close(stop); <-done }
}

// kill stops the server as kill -9 would: nothing is revoked or fenced
// on the way out.
func (e *testEnv) kill() {
	close(e.srv.stop)
	e.srv.wg.Wait()
	e.hs.Close()
	e.d.Close()
	e.srv = nil
}

// staged lists the files under staging/.
func (e *testEnv) staged() []string {
	var out []string
	filepath.Walk(filepath.Join(e.stDir, "staging"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func (e *testEnv) client() *Client {
	e.t.Helper()
	c, err := NewClient(ClientConfig{URL: e.hs.URL, Fingerprint: e.fp, Timeout: 10 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.CloseIdle)
	return c
}

func (e *testEnv) token(name string) string {
	e.t.Helper()
	tok, err := AddToken(context.Background(), e.d, name, map[string]string{"site": "test"}, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func regReq(tok string) RegisterRequest {
	return RegisterRequest{Token: tok, Host: "box", Platform: Platform{OpSys: "NetBSD", OSVersion: "10.0", Arch: "x86_64"}, Cores: 2}
}

// worker registers a worker NAME and returns its client.
func (e *testEnv) worker(name string) *Client {
	e.t.Helper()
	c := e.client()
	if _, err := c.Register(context.Background(), regReq(e.token(name))); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// acquireFor polls with c until the server hands out c's slot; it returns
// the slot and a channel that gets the poll's lease.
func (e *testEnv) acquire(c *Client) (*Slot, chan *Lease) {
	e.t.Helper()
	leases := make(chan *Lease, 1)
	go func() {
		for range 50 {
			l, err := c.Poll(context.Background(), LeaseRequest{Wait: Duration(time.Second)})
			if err != nil {
				close(leases)
				return
			}
			if l != nil {
				leases <- l
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sl, err := e.srv.Acquire(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return sl, leases
}

// run starts sl.Run of pkgname in the background.
func run(sl *Slot, pkgname string) chan result {
	done := make(chan result, 1)
	go func() {
		out, err := sl.Run(context.Background(), executor.Job{PkgName: pkgname, PkgPath: "cat/" + strings.Split(pkgname, "-")[0],
			Record: []byte("PKGNAME=" + pkgname + "\n"), Attempt: 1})
		done <- result{out, err}
	}()
	return done
}

func waitResult(t testing.TB, done chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	return result{}
}

func getLease(t testing.TB, leases chan *Lease) *Lease {
	t.Helper()
	select {
	case l, ok := <-leases:
		if !ok || l == nil {
			t.Fatal("the worker's poll failed")
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("no lease")
	}
	return nil
}

func doneResult(pkgname string) ResultReport {
	r := job.Result{PkgName: pkgname, PkgPath: "cat/x", Status: job.StatusDone, Package: "All/" + pkgname + ".tgz",
		Fragment: "index/" + pkgname + ".pkginfo", LogDir: "bulklog/" + pkgname + "/"}
	var b bytes.Buffer
	r.Encode(&b)
	return ResultReport{Exit: Exit{Code: 0}, Stdout: b.String()}
}

func upload(c *Client, l *Lease, name, body string) error {
	s := sha256.Sum256([]byte(body))
	return c.Upload(context.Background(), l.Ref(), name, strings.NewReader(body), int64(len(body)), hex.EncodeToString(s[:]))
}

// uploadAll uploads a package, a fragment and a log for l.
func uploadAll(t testing.TB, c *Client, l *Lease, tag string) {
	t.Helper()
	for _, n := range []string{l.Objects.Package, l.Objects.Fragment, l.Objects.LogDir + "build.log"} {
		if err := upload(c, l, n, tag+" "+n); err != nil {
			t.Fatalf("upload %s: %v", n, err)
		}
	}
}

// snapshot is the store's objects and contents and the pull tables.
func (e *testEnv) snapshot() string {
	e.t.Helper()
	var lines []string
	filepath.Walk(e.stDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			lines = append(lines, strings.TrimPrefix(p, e.stDir)+"="+string(b))
		}
		return nil
	})
	d, err := db.Open(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT id, pkgname, attempt, state, COALESCE(ended_at, 0) FROM pull_leases UNION ALL
		SELECT name, labels, sessions, COALESCE(revoked_at, 0), 0 FROM pull_tokens UNION ALL
		SELECT hash, worker, 0, COALESCE(ended_at, 0), 0 FROM pull_sessions`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var a, b, c, dd, f string
		rows.Scan(&a, &b, &c, &dd, &f)
		lines = append(lines, strings.Join([]string{a, b, c, dd, f}, "|"))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (e *testEnv) object(name string) string {
	b, err := os.ReadFile(filepath.Join(e.stDir, name))
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func (e *testEnv) leaseState(id string) string {
	e.t.Helper()
	d, err := db.Open(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer d.Close()
	var st string
	if err := d.QueryRow(`SELECT state FROM pull_leases WHERE id = ?`, id).Scan(&st); err != nil {
		e.t.Fatalf("lease %s: %v", id, err)
	}
	return st
}

// TestLeaseRoundTrip: a registered worker gets a lease with the job and
// the settings without anything of the server's own, uploads its
// objects into staging, reports, and the objects are promoted.
func TestLeaseRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	c := e.worker("alice")
	if e.srv.Capacity() != 0 {
		// Not polling yet: no slot.
	}
	sl, leases := e.acquire(c)
	if sl.Name() != "pull:alice" || sl.Cores() != 2 {
		t.Errorf("slot %s with %d cores, want pull:alice with 2", sl.Name(), sl.Cores())
	}
	// An old log of the package is replaced by the staged ones.
	os.MkdirAll(filepath.Join(e.stDir, "bulklog/foo-1.0"), 0o755)
	os.WriteFile(filepath.Join(e.stDir, "bulklog/foo-1.0/old.log"), []byte("old"), 0o644)
	done := run(sl, "foo-1.0")
	l := getLease(t, leases)
	if l.PkgName != "foo-1.0" || l.Attempt != 1 || l.Record != "PKGNAME=foo-1.0\n" || len(l.ID) != 32 {
		t.Errorf("lease %+v", l)
	}
	if l.Settings.Store != "" || l.Settings.WorkRoot != "" || l.Settings.MaxTime != "1h" {
		t.Errorf("lease settings %+v: want the server's store and work root out, max_time in", l.Settings)
	}
	if _, err := c.Heartbeat(context.Background(), l.Ref(), HeartbeatRequest{Phase: "build"}); err != nil {
		t.Fatal(err)
	}
	uploadAll(t, c, l, "v1")
	if err := upload(c, l, l.Objects.LogDir+"empty.log", ""); err != nil {
		t.Fatalf("upload of an empty log: %v", err)
	}
	if got := e.object(l.Objects.Package); got != "<missing>" {
		t.Errorf("the package is in place before the result: %q", got)
	}
	resp, err := c.Report(context.Background(), l.Ref(), doneResult("foo-1.0"))
	if err != nil {
		t.Fatal(err)
	}
	r := waitResult(t, done)
	if r.err != nil || r.out.Result.Status != job.StatusDone || r.out.Result.Host != "pull:alice" && r.out.Result.Host != "" {
		t.Fatalf("Run: %+v %v", r.out, r.err)
	}
	if len(resp.Promoted) != 4 || e.object(l.Objects.LogDir+"empty.log") != "" {
		t.Errorf("promoted %v", resp.Promoted)
	}
	for _, n := range []string{l.Objects.Package, l.Objects.Fragment, l.Objects.LogDir + "build.log"} {
		if got := e.object(n); got != "v1 "+n {
			t.Errorf("%s = %q after promotion", n, got)
		}
	}
	if got := e.object("bulklog/foo-1.0/old.log"); got != "<missing>" {
		t.Errorf("the old log survived the promotion: %q", got)
	}
	if left := e.staged(); len(left) != 0 {
		t.Errorf("staging not emptied: %v", left)
	}
	if st := e.leaseState(l.ID); st != "done" {
		t.Errorf("lease state %s, want done", st)
	}
	// Replayed: the same result again changes nothing.
	before := e.snapshot()
	if _, err := c.Report(context.Background(), l.Ref(), doneResult("foo-1.0")); !IsFenced(err) {
		t.Errorf("replayed result: %v, want 409 fenced", err)
	}
	if err := upload(c, l, l.Objects.Package, "replayed"); !IsFenced(err) {
		t.Errorf("replayed upload: %v, want 409 fenced", err)
	}
	if after := e.snapshot(); after != before {
		t.Errorf("a replayed request changed the server:\n%s\n---\n%s", before, after)
	}
	// The worker reads finished objects, and nothing else.
	rc, _, err := c.Fetch(context.Background(), l.Objects.Package)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "v1 "+l.Objects.Package {
		t.Errorf("fetched %q", b)
	}
	if info, err := c.Stat(context.Background(), l.Objects.Package); err != nil || info.Size != int64(len(b)) || info.ModTime.IsZero() {
		t.Errorf("stat: %+v %v", info, err)
	}
	if _, err := c.Stat(context.Background(), "All/none-1.0.tgz"); !IsNotExist(err) {
		t.Errorf("stat of a missing package: %v", err)
	}
	objs, err := c.List(context.Background(), "All/")
	if err != nil || len(objs) != 1 || objs[0].Name != l.Objects.Package {
		t.Errorf("list All/: %+v %v", objs, err)
	}
	for _, n := range []string{"bulklog/foo-1.0/build.log", "staging/x/All/foo-1.0.tgz", "pkg_summary.gz", "All/../bulk.db"} {
		if _, _, err := c.Fetch(context.Background(), n); err == nil {
			t.Errorf("fetched %s", n)
		}
	}
	if _, err := c.List(context.Background(), "staging/"); !IsForbidden(err) {
		t.Errorf("list staging/: %v", err)
	}
}

// TestSecretsNotStored: neither a token nor a session appears in the
// database file in clear.
func TestSecretsNotStored(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token("bob")
	c := e.client()
	if _, err := c.Register(context.Background(), regReq(tok)); err != nil {
		t.Fatal(err)
	}
	e.stop()
	var all []byte
	for _, f := range []string{e.dbPath, e.dbPath + "-wal"} {
		b, _ := os.ReadFile(f)
		all = append(all, b...)
	}
	for what, s := range map[string]string{"token": tok, "session": c.Session()} {
		if len(s) < 40 || bytes.Contains(all, []byte(s)) || bytes.Contains(all, []byte(strings.SplitN(s, "-", 3)[2])) {
			t.Errorf("the %s is in the database in clear", what)
		}
	}
	if !bytes.Contains(all, []byte(hashSecret(tok))) {
		t.Errorf("the token's hash is not in the database")
	}
}

// TestBadRequests: garbage, oversized, forged and unauthenticated requests
// get a 4xx and change nothing.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxLog = 100 })
	c := e.worker("carol")
	sl, leases := e.acquire(c)
	done := run(sl, "bar-2.0")
	l := getLease(t, leases)
	hc := &http.Client{Transport: e.hs.Client().Transport}
	sess := c.Session()
	type req struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
	}
	lh := func(id, attempt string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + sess, HeaderLease: id, HeaderAttempt: attempt}
	}
	forged := strings.Repeat("ab", 16)
	big := strings.Repeat("x", MaxJSONBody+10)
	for _, tc := range []req{
		{"garbage register", "POST", PathRegister, "{not json", nil, 400},
		{"register with trailing data", "POST", PathRegister, `{"version":1} {}`, nil, 400},
		{"register unknown field", "POST", PathRegister, `{"version":1,"evil":true}`, nil, 400},
		{"oversized register", "POST", PathRegister, `{"token":"` + big + `"}`, nil, 413},
		{"unknown token", "POST", PathRegister, `{"version":1,"token":"pkgbulk-token-forged","cores":1}`, nil, 401},
		{"no token", "POST", PathRegister, `{"version":1,"cores":1}`, nil, 401},
		{"old protocol", "POST", PathRegister, `{"version":0,"token":"x"}`, nil, 412},
		{"poll without session", "POST", PathLease, `{}`, nil, 401},
		{"poll with forged session", "POST", PathLease, `{}`, map[string]string{"Authorization": "Bearer " + SessionPrefix + "forged"}, 401},
		{"garbage poll", "POST", PathLease, `[1,2`, map[string]string{"Authorization": "Bearer " + sess}, 400},
		{"heartbeat without lease", "POST", PathHeartbeat, `{}`, map[string]string{"Authorization": "Bearer " + sess}, 400},
		{"heartbeat with malformed lease", "POST", PathHeartbeat, `{}`, lh("zz", "1"), 400},
		{"heartbeat with forged lease", "POST", PathHeartbeat, `{}`, lh(forged, "1"), 409},
		{"heartbeat with wrong attempt", "POST", PathHeartbeat, `{}`, lh(l.ID, "2"), 409},
		{"heartbeat without session", "POST", PathHeartbeat, `{}`, map[string]string{HeaderLease: l.ID, HeaderAttempt: "1"}, 401},
		{"result with forged lease", "POST", PathResult, `{"exit":{"code":0}}`, lh(forged, "1"), 409},
		{"garbage result", "POST", PathResult, `{"exit":`, lh(l.ID, "1"), 400},
		{"result for another package", "POST", PathResult, mustJSON(doneResult("other-1.0")), lh(l.ID, "1"), 403},
		{"done result naming a package not uploaded", "POST", PathResult, mustJSON(doneResult("bar-2.0")), lh(l.ID, "1"), 400},
		{"release with forged lease", "POST", PathRelease, `{}`, lh(forged, "1"), 409},
		{"upload of another package", "PUT", PathObject + "All/other-1.0.tgz", "x", lh(l.ID, "1"), 403},
		{"upload of pkg_summary", "PUT", PathObject + "All/pkg_summary.gz", "x", lh(l.ID, "1"), 403},
		{"upload of a signature", "PUT", PathObject + "All/bar-2.0.tgz.asc", "x", lh(l.ID, "1"), 403},
		{"upload of another log", "PUT", PathObject + "bulklog/other-1.0/build.log", "x", lh(l.ID, "1"), 403},
		{"upload into a log subdirectory", "PUT", PathObject + "bulklog/bar-2.0/a/b.log", "x", lh(l.ID, "1"), 403},
		{"upload into staging", "PUT", PathObject + "staging/" + l.ID + "/All/bar-2.0.tgz", "x", lh(l.ID, "1"), 403},
		{"upload of a temp name", "PUT", PathObject + "bulklog/bar-2.0/" + store.TempPrefix + "x", "x", lh(l.ID, "1"), 403},
		{"oversized log", "PUT", PathObject + "bulklog/bar-2.0/build.log", strings.Repeat("y", 101), lh(l.ID, "1"), 413},
		{"upload with a wrong checksum", "PUT", PathObject + "bulklog/bar-2.0/build.log", "z", map[string]string{"Authorization": "Bearer " + sess, HeaderLease: l.ID, HeaderAttempt: "1", HeaderSHA256: strings.Repeat("0", 64)}, 400},
		{"upload with forged lease", "PUT", PathObject + "All/bar-2.0.tgz", "x", lh(forged, "1"), 409},
		{"read a log", "GET", PathObject + "bulklog/bar-2.0/build.log", "", map[string]string{"Authorization": "Bearer " + sess}, 403},
		{"read without session", "GET", PathObject + "All/bar-2.0.tgz", "", nil, 401},
		{"unknown endpoint", "POST", "/v1/admin", "{}", nil, 404},
	} {
		before := e.snapshot()
		rq, _ := http.NewRequest(tc.method, e.hs.URL+tc.path, strings.NewReader(tc.body))
		for k, v := range tc.hdr {
			rq.Header.Set(k, v)
		}
		resp, err := hc.Do(rq)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.name, resp.StatusCode, b, tc.status)
		}
		if tc.method != "HEAD" && !bytes.Contains(b, []byte(`"code"`)) {
			t.Errorf("%s: no error document: %s", tc.name, b)
		}
		if after := e.snapshot(); after != before {
			t.Errorf("%s changed the server:\n%s\n---\n%s", tc.name, before, after)
		}
	}
	// The lease survived all that: the real worker finishes its job.
	uploadAll(t, c, l, "real")
	if _, err := c.Report(context.Background(), l.Ref(), doneResult("bar-2.0")); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, done); r.err != nil || r.out.Result.Status != job.StatusDone {
		t.Fatalf("Run: %v", r.err)
	}
	if got := e.object("All/bar-2.0.tgz"); got != "real All/bar-2.0.tgz" {
		t.Errorf("package %q", got)
	}
}

func mustJSON(r ResultReport) string {
	var b bytes.Buffer
	encodeJSON(&b, r)
	return b.String()
}

// TestFencing: a worker frozen past its lease loses the job; the job's
// next lease goes to another worker; the frozen worker's late heartbeat,
// upload and result are refused and change nothing, also after the
// server restarts on the same database.
func TestFencing(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LeaseTTL = 700 * time.Millisecond })
	a := e.worker("frozen")
	sl, leases := e.acquire(a)
	done := run(sl, "baz-1.0")
	la := getLease(t, leases)
	if err := upload(a, la, la.Objects.LogDir+"early.log", "early"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := waitResult(t, done)
	if !errors.Is(r.err, executor.ErrLost) {
		t.Fatalf("Run of an expired lease: %v, want ErrLost", r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("requeued after %v with a 700ms TTL", d)
	}
	if st := e.leaseState(la.ID); st != "expired" {
		t.Errorf("expired lease is %s in the database", st)
	}
	// The requeued job goes to worker b, attempt 2.
	b := e.worker("fresh")
	sl2, leases2 := e.acquire(b)
	done2 := run(sl2, "baz-1.0")
	lb := getLease(t, leases2)
	stopB := keepAlive(b, lb)
	if lb.Attempt != 2 || lb.ID == la.ID {
		t.Errorf("second lease attempt %d id %s", lb.Attempt, lb.ID)
	}
	uploadAll(t, b, lb, "fresh")
	late := func(stage string) {
		t.Helper()
		before := e.snapshot()
		if _, err := a.Heartbeat(context.Background(), la.Ref(), HeartbeatRequest{}); !IsFenced(err) {
			t.Errorf("%s: late heartbeat: %v, want fenced", stage, err)
		}
		if err := upload(a, la, la.Objects.Package, "stale"); !IsFenced(err) {
			t.Errorf("%s: late upload: %v, want fenced", stage, err)
		}
		if _, err := a.Report(context.Background(), la.Ref(), doneResult("baz-1.0")); !IsFenced(err) {
			t.Errorf("%s: late result: %v, want fenced", stage, err)
		}
		// Worker b's lease headers from worker a's session are not a's.
		if _, err := a.Report(context.Background(), lb.Ref(), doneResult("baz-1.0")); !IsFenced(err) {
			t.Errorf("%s: result for another session's lease: %v, want fenced", stage, err)
		}
		if after := e.snapshot(); after != before {
			t.Errorf("%s: the late worker changed the server:\n%s\n---\n%s", stage, before, after)
		}
	}
	late("running")
	if _, err := b.Report(context.Background(), lb.Ref(), doneResult("baz-1.0")); err != nil {
		t.Fatal(err)
	}
	stopB()
	if r := waitResult(t, done2); r.err != nil {
		t.Fatal(r.err)
	}
	late("after the result")
	if got := e.object("All/baz-1.0.tgz"); got != "fresh All/baz-1.0.tgz" {
		t.Errorf("package %q", got)
	}
	if got := e.object("bulklog/baz-1.0/early.log"); got != "<missing>" {
		t.Errorf("the stale worker's log was promoted: %q", got)
	}

	// A restart of pkgsched: a lease active at the time is fenced, and
	// the sessions survive (the workers need not register again).
	sl3, leases3 := e.acquire(b)
	run(sl3, "qux-1.0") // never finishes: pkgsched dies
	lq := getLease(t, leases3)
	stopQ := keepAlive(b, lq)
	uploadAll(t, b, lq, "before restart")
	stopQ()
	// Another worker holds zap-1.0 and is never heard of again.
	z := e.worker("zapper")
	slz, leasesZ := e.acquire(z)
	run(slz, "zap-1.0")
	lz := getLease(t, leasesZ)
	if len(e.staged()) != 3 {
		t.Errorf("staged before the restart: %v", e.staged())
	}
	e.kill()
	e.start(func(c *Config) { c.LeaseTTL = 700 * time.Millisecond })
	b2, a2 := e.client(), e.client()
	b2.session, a2.session = b.Session(), a.Session()
	if st := e.leaseState(lq.ID); st != "expired" {
		t.Errorf("a lease active when pkgsched stopped is %s after the restart", st)
	}
	if left := e.staged(); len(left) != 0 {
		t.Errorf("staging of the earlier run not emptied: %v", left)
	}
	before := e.snapshot()
	if _, err := b2.Heartbeat(context.Background(), lq.Ref(), HeartbeatRequest{}); !IsFenced(err) {
		t.Errorf("heartbeat of a lease of the earlier run: %v, want fenced", err)
	}
	if _, err := b2.Report(context.Background(), lq.Ref(), doneResult("qux-1.0")); !IsFenced(err) {
		t.Errorf("result of a lease of the earlier run: %v, want fenced", err)
	}
	if _, err := a2.Report(context.Background(), la.Ref(), doneResult("baz-1.0")); !IsFenced(err) {
		t.Errorf("the frozen worker's result after the restart: %v, want fenced", err)
	}
	if after := e.snapshot(); after != before {
		t.Errorf("stale requests after the restart changed the server:\n%s\n---\n%s", before, after)
	}
	// The job's next lease after the restart is attempt 2.
	sl4, leases4 := e.acquire(b2)
	done4 := run(sl4, "qux-1.0")
	l4 := getLease(t, leases4)
	if l4.Attempt != 2 {
		t.Errorf("lease after the restart: attempt %d, want 2", l4.Attempt)
	}
	b2.Release(context.Background(), l4.Ref(), "test over")
	if r := waitResult(t, done4); !errors.Is(r.err, executor.ErrLost) {
		t.Errorf("released lease: %v, want ErrLost", r.err)
	}
	// zap-1.0's worker never came back: its job is not handed out again
	// before its old lease would have expired (it may still be building).
	sl5, leases5 := e.acquire(b2)
	done5 := run(sl5, "zap-1.0")
	l5 := getLease(t, leases5)
	if granted := time.Now(); granted.Before(lz.Expires) || l5.Attempt != 2 {
		t.Errorf("zap-1.0 handed out again at %v (attempt %d), before its old lease expired at %v", granted, l5.Attempt, lz.Expires)
	}
	b2.Release(context.Background(), l5.Ref(), "test over")
	waitResult(t, done5)
}

// TestRevokeMidLease: revoking the token (from another process, as
// pkgsched token revoke does) ends the session and requeues its job; the
// worker's heartbeat is refused and the token no longer registers.
func TestRevokeMidLease(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LeaseTTL = time.Minute })
	tok := e.token("dave")
	c := e.client()
	if _, err := c.Register(context.Background(), regReq(tok)); err != nil {
		t.Fatal(err)
	}
	sl, leases := e.acquire(c)
	done := run(sl, "big-1.0")
	l := getLease(t, leases)
	other, err := db.Open(context.Background(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	start := time.Now()
	if err := RevokeToken(context.Background(), other, "dave"); err != nil {
		t.Fatal(err)
	}
	// The job is not requeued before the worker was told (it may still
	// be building): its next heartbeat is refused, then Run returns.
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("Run returned before the revoked worker was told: %v", r.err)
	default:
	}
	if _, err := c.Heartbeat(context.Background(), l.Ref(), HeartbeatRequest{}); !IsUnauthorized(err) {
		t.Errorf("heartbeat after revoke: %v", err)
	}
	r := waitResult(t, done)
	if !errors.Is(r.err, executor.ErrLost) || !strings.Contains(r.err.Error(), "revoked") {
		t.Errorf("Run after revoke: %v, want ErrLost naming the revocation", r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("revocation took %v with a 1m TTL", d)
	}
	if st := e.leaseState(l.ID); st != "revoked" {
		t.Errorf("lease state %s, want revoked", st)
	}
	if _, err := c.Heartbeat(context.Background(), l.Ref(), HeartbeatRequest{}); !IsUnauthorized(err) {
		t.Errorf("heartbeat after revoke: %v", err)
	}
	if err := upload(c, l, l.Objects.Package, "x"); !IsUnauthorized(err) {
		t.Errorf("upload after revoke: %v", err)
	}
	if _, err := e.client().Register(context.Background(), regReq(tok)); !IsUnauthorized(err) {
		t.Errorf("register with a revoked token: %v", err)
	}
	if n := len(e.srv.Workers()); n != 0 {
		t.Errorf("%d workers after the revoke", n)
	}
}

// TestSkewAndTokens: a worker of another tree or platform is refused at
// registration with a message naming both; one-session tokens register
// once; a second registration replaces the first session.
func TestSkewAndTokens(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Tree = "abc123"; c.Platform = Platform{OpSys: "NetBSD", Arch: "x86_64"} })
	req := regReq(e.token("erin"))
	req.TreeRevision = "def456"
	_, err := e.client().Register(context.Background(), req)
	if !IsSkew(err) || !strings.Contains(err.Error(), "def456") || !strings.Contains(err.Error(), "abc123") {
		t.Errorf("register with another tree: %v", err)
	}
	req.TreeRevision, req.Platform.Arch = "abc123", "aarch64"
	if _, err := e.client().Register(context.Background(), req); !IsSkew(err) || !strings.Contains(err.Error(), "aarch64") {
		t.Errorf("register with another arch: %v", err)
	}
	req.Platform.Arch = "x86_64"
	c := e.client()
	if _, err := c.Register(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background(), LeaseRequest{TreeRevision: "updated", Wait: Duration(time.Second)}); !IsSkew(err) {
		t.Errorf("poll after the worker's tree moved: %v", err)
	}
	// The same token again: the older session ends.
	c2 := e.client()
	if _, err := c2.Register(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background(), LeaseRequest{TreeRevision: "abc123", Wait: Duration(time.Second)}); !IsUnauthorized(err) {
		t.Errorf("poll of a replaced session: %v", err)
	}
	// One-session token.
	one, err := e.srv.MintToken(context.Background(), "vm-1", map[string]string{"spot": "yes"}, true)
	if err != nil {
		t.Fatal(err)
	}
	req.Token = one
	c3 := e.client()
	resp, err := c3.Register(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Labels["spot"] != "yes" || resp.Worker != "pull:vm-1" {
		t.Errorf("register response %+v", resp)
	}
	if _, err := e.client().Register(context.Background(), req); !IsUnauthorized(err) {
		t.Errorf("second registration of a one-session token: %v", err)
	}
	if _, err := AddToken(context.Background(), e.d, "vm-1", nil, false); !errors.Is(err, ErrTokenExists) {
		t.Errorf("add of an existing token: %v", err)
	}
	if !e.srv.Retire("vm-1") {
		t.Errorf("could not retire an idle worker")
	}
	if _, err := c3.Poll(context.Background(), LeaseRequest{TreeRevision: "abc123"}); !IsUnauthorized(err) {
		t.Errorf("poll of a retired worker: %v", err)
	}
	toks, err := ListTokens(context.Background(), e.d)
	if err != nil || len(toks) != 2 || toks[1].Name != "vm-1" || !toks[1].OneSession || toks[1].Sessions != 1 {
		t.Errorf("tokens %+v %v", toks, err)
	}
}

// TestNoWay: the worker's no-way list keeps jobs off its slot.
func TestNoWay(t *testing.T) {
	nw, err := CompileNoWay([]string{"lang/rust", "www/firefox*", "gcc1[0-3]", "qt5-qtbase>=5.15"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, name string
		refuse     bool
	}{
		{"lang/rust", "rust-1.80.0", true},
		{"lang/rust-bin", "rust-bin-1.80.0", false},
		{"www/firefox115", "firefox115-115.1", true},
		{"lang/gcc12", "gcc12-12.3.0", true},
		{"lang/gcc14", "gcc14-14.1.0", false},
		{"x11/qt5-qtbase", "qt5-qtbase-5.15.12", true},
		{"x11/qt5-qtbase", "qt5-qtbase-5.12.0", false},
		{"devel/gmake", "gmake-4.4", false},
	} {
		if got := nw.Refuses(tc.path, tc.name); got != tc.refuse {
			t.Errorf("%s %s: refused %v, want %v", tc.path, tc.name, got, tc.refuse)
		}
	}
	if _, err := CompileNoWay([]string{"{a,b"}); err == nil {
		t.Errorf("a bad pattern compiled")
	}
}

// TestSlotsAndCores: a worker of two slots and four cores gets two slots
// with distinct names; growing one takes cores from both.
func TestSlotsAndCores(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	req := regReq(e.token("frank"))
	req.Cores, req.Slots = 4, 2
	if _, err := c.Register(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Poll(context.Background(), LeaseRequest{Wait: Duration(time.Second)}) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := e.srv.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.srv.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() == b.Name() {
		t.Errorf("two slots named %s", a.Name())
	}
	if got := a.Grow(5); got != 2 || b.FreeCores() != 0 {
		t.Errorf("grow got %d, free %d; want 2 and 0", got, b.FreeCores())
	}
	if e.srv.Capacity() != 2 {
		t.Errorf("capacity %d, want 2", e.srv.Capacity())
	}
	a.Release()
	if b.FreeCores() != 3 {
		t.Errorf("free cores %d after a release, want 3", b.FreeCores())
	}
	b.Release()
	wg.Wait()
}

// TestNoWayGuard: a job on the worker's no-way list is never handed to
// it, even by a scheduler that did not ask Accepts.
func TestNoWayGuard(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	req := regReq(e.token("gina"))
	req.NoWay = []string{"lang/rust"}
	if _, err := c.Register(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	sl, _ := e.acquire(c)
	if sl.Accepts("lang/rust", "rust-1.0") || !sl.Accepts("devel/gmake", "gmake-4.4") {
		t.Errorf("Accepts does not follow the no-way list")
	}
	_, err := sl.Run(context.Background(), executor.Job{PkgName: "rust-1.0", PkgPath: "lang/rust", Record: []byte("PKGNAME=rust-1.0\n")})
	if !errors.Is(err, executor.ErrLost) || !strings.Contains(err.Error(), "no-way") {
		t.Errorf("Run of a refused job: %v", err)
	}
	var n int
	e.d.QueryRow(`SELECT COUNT(*) FROM pull_leases`).Scan(&n)
	if n != 0 {
		t.Errorf("%d leases granted for a refused job", n)
	}
}

// TestGone: a worker whose machine the caller stopped loses its job at
// once, without being told.
func TestGone(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LeaseTTL = time.Minute })
	c := e.worker("vm-9")
	sl, leases := e.acquire(c)
	done := run(sl, "gone-1.0")
	l := getLease(t, leases)
	e.srv.Gone("vm-9", "machine stopped")
	if r := waitResult(t, done); !errors.Is(r.err, executor.ErrLost) || !strings.Contains(r.err.Error(), "machine stopped") {
		t.Errorf("Run: %v", r.err)
	}
	if _, err := c.Heartbeat(context.Background(), l.Ref(), HeartbeatRequest{}); !IsUnauthorized(err) {
		t.Errorf("heartbeat of a gone worker: %v", err)
	}
}
