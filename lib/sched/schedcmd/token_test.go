package schedcmd

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// TestTokenCommands: token add prints a token once (the database keeps its
// hash), list shows names and labels without secrets, revoke marks it.
func TestTokenCommands(t *testing.T) {
	dbp := filepath.Join(t.TempDir(), "bulk.db")
	if err := schedtest.WriteDB(context.Background(), dbp, []schedtest.Pkg{{Name: "a-1.0"}}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runSched(t, "token", "add", "--db", dbp, "alice", "--labels", "os=netbsd,big=yes")
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, pull.TokenPrefix) || strings.Count(out, "\n") != 1 {
		t.Fatalf("token add: exit %d, %q %s", code, out, errs)
	}
	if code, _, errs := runSched(t, "token", "add", "--db", dbp, "alice"); code != 2 || !strings.Contains(errs, "exists") {
		t.Errorf("second token add: exit %d %s", code, errs)
	}
	if code, _, errs := runSched(t, "token", "add", "--db", dbp, "bad name"); code != 2 || !strings.Contains(errs, "worker name") {
		t.Errorf("token add with a bad name: exit %d %s", code, errs)
	}
	if code, _, errs := runSched(t, "token", "add", "--db", dbp, "bob", "--labels", "novalue"); code != 2 || !strings.Contains(errs, "--labels") {
		t.Errorf("token add with bad labels: exit %d %s", code, errs)
	}
	code, out, _ = runSched(t, "token", "list", "--db", dbp, "--json")
	var toks []pull.TokenInfo
	if code != 0 || json.Unmarshal([]byte(out), &toks) != nil || len(toks) != 1 || toks[0].Labels["big"] != "yes" || toks[0].Revoked != nil {
		t.Errorf("token list --json: exit %d %s", code, out)
	}
	if strings.Contains(out, tok) || strings.Contains(out, tok[len(pull.TokenPrefix):]) {
		t.Errorf("token list shows the token")
	}
	if code, _, errs := runSched(t, "token", "revoke", "--db", dbp, "nobody"); code != 2 || !strings.Contains(errs, "no such token") {
		t.Errorf("revoke of an unknown token: exit %d %s", code, errs)
	}
	if code, _, errs := runSched(t, "token", "revoke", "--db", dbp, "alice"); code != 0 {
		t.Errorf("revoke: exit %d %s", code, errs)
	}
	code, out, _ = runSched(t, "token", "list", "--db", dbp)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "revoked") {
		t.Errorf("token list after revoke: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(dbp)
	w, _ := os.ReadFile(dbp + "-wal")
	if bytes.Contains(append(b, w...), []byte(tok[len(pull.TokenPrefix):])) {
		t.Errorf("the token is in the database in clear")
	}
}

// TestRunPullWorkers runs pkgsched run with a pull:// executor (a
// self-signed certificate beside the database) and two in-process workers
// that pin its fingerprint and "build" by uploading a package, a fragment
// and a log: every package is done, its objects promoted into the file
// store, and pkgsched status shows the workers.
func TestRunPullWorkers(t *testing.T) {
	dir := t.TempDir()
	dbp := filepath.Join(dir, "bulk.db")
	storeDir := filepath.Join(dir, "store")
	os.MkdirAll(storeDir, 0o755)
	pkgs := []schedtest.Pkg{{Name: "base-1.0"}, {Name: "mid-1.0", Deps: []string{"base-1.0"}}, {Name: "top-2.0", Deps: []string{"mid-1.0"}},
		{Name: "side-1.0"}, {Name: "other-1.0"}}
	if err := schedtest.WriteDB(context.Background(), dbp, pkgs); err != nil {
		t.Fatal(err)
	}
	var toks []string
	for _, n := range []string{"w1", "w2"} {
		code, out, errs := runSched(t, "token", "add", "--db", dbp, n)
		if code != 0 {
			t.Fatalf("token add: %s", errs)
		}
		toks = append(toks, strings.TrimSpace(out))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ran struct {
		code      int
		out, errs string
	}
	runDone := make(chan ran, 1)
	go func() {
		code, out, errs := runSched(t, "run", "--db", dbp, "--executor", "pull://127.0.0.1:0?ttl=20s&poll=2s",
			"--store", "file://"+storeDir, "--no-store-check")
		runDone <- ran{code, out, errs}
	}()
	// The server's address and fingerprint are in the database's meta.
	var url, fp string
	for deadline := time.Now().Add(20 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d, err := db.OpenReadOnly(ctx, dbp)
		if err != nil {
			continue
		}
		d.QueryRow(`SELECT value FROM meta WHERE key = 'pull.url'`).Scan(&url)
		d.QueryRow(`SELECT value FROM meta WHERE key = 'pull.fingerprint'`).Scan(&fp)
		d.Close()
	}
	if url == "" || !strings.HasPrefix(fp, "sha256:") {
		select {
		case r := <-runDone:
			t.Fatalf("pkgsched run ended: %d\n%s\n%s", r.code, r.out, r.errs)
		default:
		}
		t.Fatalf("no pull server address in the database (url %q fingerprint %q)", url, fp)
	}
	if _, err := os.Stat(dbp + ".pull-key.pem"); err != nil {
		t.Errorf("no self-signed key beside the database: %v", err)
	}
	// A client that pins another fingerprint does not talk to it.
	bad, _ := pull.NewClient(pull.ClientConfig{URL: url, Fingerprint: strings.Repeat("00", 32)})
	if _, err := bad.Register(ctx, pull.RegisterRequest{Token: toks[0], Cores: 1}); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("register with a wrong pin: %v", err)
	}
	var mu sync.Mutex
	built := map[string]string{}
	var wg sync.WaitGroup
	for _, tok := range toks {
		c, err := pull.NewClient(pull.ClientConfig{URL: url, Fingerprint: fp})
		if err != nil {
			t.Fatal(err)
		}
		req := pull.RegisterRequest{Token: tok, Host: "h" + tok[len(tok)-3:], Cores: 2, Platform: pull.Platform{OpSys: "Linux", Arch: "x86_64"}}
		if _, err := c.Register(ctx, req); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l, err := c.Poll(ctx, pull.LeaseRequest{Wait: pull.Duration(time.Second)})
				if err != nil || l == nil {
					if err != nil {
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				mu.Lock()
				built[l.PkgName] = req.Host
				mu.Unlock()
				for _, n := range []string{l.Objects.Package, l.Objects.Fragment, l.Objects.LogDir + "pkg.log"} {
					body := "built " + n
					if err := c.Upload(ctx, l.Ref(), n, strings.NewReader(body), int64(len(body)), ""); err != nil {
						t.Errorf("upload %s: %v", n, err)
					}
				}
				res := job.Result{PkgName: l.PkgName, PkgPath: l.PkgPath, Status: job.StatusDone, Package: l.Objects.Package,
					Fragment: l.Objects.Fragment, LogDir: l.Objects.LogDir}
				var b bytes.Buffer
				res.Encode(&b)
				if _, err := c.Report(ctx, l.Ref(), pull.ResultReport{Stdout: b.String()}); err != nil {
					t.Errorf("report %s: %v", l.PkgName, err)
				}
			}
		}()
	}
	// Status while the workers are connected.
	var r ran
	select {
	case r = <-runDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("pkgsched run did not finish")
	}
	code, out, errs := runSched(t, "status", "--db", dbp)
	cancel()
	wg.Wait()
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", r.code, r.out, r.errs)
	}
	if !strings.Contains(r.errs, "certificate fingerprint "+fp) {
		t.Errorf("run's stderr does not name the fingerprint:\n%s", r.errs)
	}
	for _, p := range pkgs {
		if got, _ := os.ReadFile(filepath.Join(storeDir, "All", p.Name+".tgz")); string(got) != "built All/"+p.Name+".tgz" {
			t.Errorf("%s: package %q", p.Name, got)
		}
	}
	if code != 0 || !strings.Contains(out, "pull workers: 2") || !strings.Contains(out, "pull:w1") {
		t.Errorf("status: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runSched(t, "status", "--db", dbp, "--json")
	var st struct {
		Total int          `json:"total"`
		Pull  *pull.Status `json:"pull"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Total != len(pkgs) || st.Pull == nil || len(st.Pull.Workers) != 2 || st.Pull.Fingerprint != fp {
		t.Errorf("status --json: exit %d\n%s", code, out)
	}
	var n int
	d, _ := sql.Open("sqlite3", dbp+"?mode=ro")
	defer d.Close()
	d.QueryRow(`SELECT COUNT(*) FROM pull_leases WHERE state = 'done'`).Scan(&n)
	if n != len(pkgs) {
		t.Errorf("%d leases done, want %d", n, len(pkgs))
	}
}
