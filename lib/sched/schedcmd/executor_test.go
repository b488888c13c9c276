package schedcmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
)

// keeper writes a pkgrun that copies its job document to kept and builds
// every package; it also logs the PKGNAMEs it built to log.
func keeper(t *testing.T, dir string) (pkgrun, kept, log string) {
	kept = filepath.Join(dir, "kept.json")
	log = filepath.Join(dir, "built")
	pkgrun = filepath.Join(dir, "pkgrun")
	script := `#!/bin/sh
while [ $# -gt 0 ]; do
	if [ "$1" = --job ]; then cp "$2" '` + kept + `'; fi
	shift
done
name=$(sed -n 's/^PKGNAME=//p')
echo "$name" >> '` + log + `'
printf '{"version":1,"pkgname":"%s","pkgpath":"test/a","status":"done"}\n' "$name"
`
	if err := os.WriteFile(pkgrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return pkgrun, kept, log
}

// TestRunPkgrunFlags checks that pkgsched run takes pkgrun's own flags
// (one shared definition) and hands them to pkgrun in the job document.
func TestRunPkgrunFlags(t *testing.T) {
	dir := t.TempDir()
	pkgrun, kept, _ := keeper(t, dir)
	db := filepath.Join(dir, "bulk.db")
	if err := schedtest.WriteDB(context.Background(), db, []schedtest.Pkg{{Name: "a-1.0"}}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runSched(t, "run", "--db", db, "-j", "1", "--pkgrun", pkgrun, "--no-store-check",
		"--work-root", "/w", "--prefix", "/opt/pkg", "--network", "none", "--sandbox-hide", "/secret,x",
		"--unprivileged-user", "builder", "--env", "MAKEFLAGS=-j2,-k", "--env", "A=1", "--max-time", "2h")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	b, err := os.ReadFile(kept)
	if err != nil {
		t.Fatal(err)
	}
	var s job.Settings
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	want := job.Settings{WorkRoot: "/w", Prefix: "/opt/pkg", Network: "none", SandboxHide: []string{"/secret,x"},
		UnprivUser: "builder", Environment: []string{"MAKEFLAGS=-j2,-k", "A=1"}, MaxTime: "2h0m0s"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("job document %s\nwant %+v", b, want)
	}
}

// TestRunExecutors runs one build over two local executors joined, and
// checks the usage errors of --executor.
func TestRunExecutors(t *testing.T) {
	dir := t.TempDir()
	pkgrun, _, log := keeper(t, dir)
	db := filepath.Join(dir, "bulk.db")
	var pkgs []schedtest.Pkg
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		pkgs = append(pkgs, schedtest.Pkg{Name: n + "-1.0"})
	}
	if err := schedtest.WriteDB(context.Background(), db, pkgs); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runSched(t, "run", "--db", db, "--executor", "local:2", "--executor", "local:1", "--pkgrun", pkgrun, "--no-store-check", "--work-root", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "on 3 slots") {
		t.Errorf("summary does not say 3 slots:\n%s", out)
	}
	b, _ := os.ReadFile(log)
	if n := len(strings.Fields(string(b))); n != len(pkgs) {
		t.Errorf("%d builds, want %d:\n%s", n, len(pkgs), b)
	}
	for _, bad := range [][]string{{"-j", "2", "--executor", "local:1"}, {"--executor", "nfs://x"}, {"--executor", "ssh://host"}} {
		args := append([]string{"run", "--db", db, "--pkgrun", pkgrun, "--no-store-check", "--retry", "failed"}, bad...)
		if code, _, errs := runSched(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", bad, code, errs)
		}
	}
}
