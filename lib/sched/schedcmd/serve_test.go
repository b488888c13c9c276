package schedcmd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestStatusAndServe: after a run with a failure, status lists the failed
// package and its phase and says the scheduler ended; serve answers with
// the token only, links the failure's log in the file store, and stops
// on cancel.
func TestStatusAndServe(t *testing.T) {
	dir := t.TempDir()
	pkgrun := filepath.Join(dir, "pkgrun")
	script := `#!/bin/sh
name=$(sed -n 's/^PKGNAME=//p')
case $name in
a-*) printf '{"version":1,"pkgname":"%s","pkgpath":"test/a","status":"failed","failed_phase":"build","message":"make all failed"}\n' "$name"; exit 1 ;;
esac
printf '{"version":1,"pkgname":"%s","pkgpath":"test/x","status":"done"}\n' "$name"
`
	if err := os.WriteFile(pkgrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "bulk.db")
	if err := schedtest.WriteDB(context.Background(), db, []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0", Deps: []string{"a-1.0"}}, {Name: "c-1.0"}}); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runSched(t, "run", "--db", db, "-j", "1", "--pkgrun", pkgrun, "--work-root", t.TempDir()); code != 1 {
		t.Fatalf("run: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	code, out, errs := runSched(t, "status", "--db", db)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"failed (1):\n  a-1.0  failed in build  breaks 1\n", "no scheduler running since ", "ended)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runSched(t, "status", "--db", db, "--json")
	var st struct {
		Failed []struct{ PkgName, Phase string }
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Failed) != 1 || st.Failed[0].Phase != "build" {
		t.Errorf("status --json: exit %d, %v: %s", code, err, out)
	}

	store := filepath.Join(dir, "store")
	os.MkdirAll(filepath.Join(store, "bulklog", "a-1.0"), 0o755)
	os.WriteFile(filepath.Join(store, "bulklog", "a-1.0", "build.log"), []byte("make: *** [all] Error 1\n"), 0o644)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, "pkgsched", Description, &CLI{}, []string{"serve", "--db", db, "--listen", "127.0.0.1:0",
			"--token-file", tokenFile, "--store", "file://" + store},
			&cli.Globals{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
	}()
	addr := regexp.MustCompile(`at (http://127\.0\.0\.1:[0-9]+/)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not say where it listens: %s", stderr.String())
		}
	}
	if resp, err := http.Get(base + "api/status"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("without the token: %v %v", resp, err)
	}
	req, _ := http.NewRequest("GET", base+"api/status", nil)
	req.Header.Set("Authorization", "Bearer s3cret-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var snap struct {
		Counts   struct{ Done, Failed, Indirect int }
		Failures []struct {
			PkgName, Phase string
			Logs           []struct{ URL string }
		}
	}
	if err := json.Unmarshal(body, &snap); err != nil || resp.StatusCode != 200 {
		t.Fatalf("api/status: %s %v: %s", resp.Status, err, body)
	}
	if snap.Counts.Done != 1 || snap.Counts.Failed != 1 || snap.Counts.Indirect != 1 || len(snap.Failures) != 1 ||
		len(snap.Failures[0].Logs) != 1 || snap.Failures[0].Logs[0].URL != "logs/a-1.0/build.log" {
		t.Errorf("api/status: %s", body)
	}
	if strings.Contains(string(body), store) || strings.Contains(string(body)+stderr.String(), "s3cret") {
		t.Errorf("a secret or the store's path leaked: %s\n%s", body, stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve: exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
