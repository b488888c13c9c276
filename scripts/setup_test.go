package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// common runs script with scripts/common.sh sourced, in a shell whose
// environment is only env (a fresh login has little more).
func common(t *testing.T, script string, env ...string) (code int, stdout, stderr string) {
	t.Helper()
	root := testenv.RepoRoot(t)
	cmd := exec.Command("/bin/sh", "-c", `. "$TOP/scripts/common.sh"; `+script)
	cmd.Env = append([]string{"TOP=" + root, "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// fakeGo writes an executable "go" into a new directory that answers
// "go env GOVERSION" with version and "go env GOTOOLCHAIN" with toolchain.
func fakeGo(t *testing.T, version, toolchain string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\ncase $2 in\nGOVERSION) echo " + version + " ;;\nGOTOOLCHAIN) echo " + toolchain +
		" ;;\nGOPATH) echo " + dir + "/gopath ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFindGo: setup.sh, test.sh and bulk.sh find Go the same way
// (scripts/common.sh): a shell whose PATH lacks Go still finds the one in
// /usr/local/go, a Go on PATH too old for go.mod is passed over, and a Go
// that may not download the right toolchain is refused with a message.
func TestFindGo(t *testing.T) {
	const sysPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
	local := "/usr/local/go/bin/go"
	haveLocal := false
	if out, err := exec.Command(local, "env", "GOVERSION").Output(); err == nil {
		haveLocal = goAtLeast(t, strings.TrimPrefix(strings.TrimSpace(string(out)), "go"), goModVersion(t))
	}

	t.Run("PATH without Go", func(t *testing.T) {
		if _, err := exec.LookPath("/usr/bin/go"); err == nil {
			t.Skip("/usr/bin/go exists: PATH cannot lack Go here")
		}
		code, out, errs := common(t, `find_go test "$TOP" && command -v go`, sysPath)
		if !haveLocal {
			if code != 2 || !strings.Contains(errs, "test: ") {
				t.Fatalf("no usable Go: exit %d, stderr %q; want exit 2 and a message", code, errs)
			}
			return
		}
		if code != 0 || strings.TrimSpace(out) != local {
			t.Fatalf("exit %d, go is %q, want %s (stderr %q)", code, out, local, errs)
		}
	})

	t.Run("too old on PATH", func(t *testing.T) {
		old := fakeGo(t, "go1.19.8", "local")
		code, out, errs := common(t, `find_go test "$TOP" && command -v go`, "PATH="+old+":/usr/bin:/bin")
		switch {
		case haveLocal && (code != 0 || strings.TrimSpace(out) != local):
			t.Errorf("exit %d, go is %q, want %s past the old one (stderr %q)", code, out, local, errs)
		case !haveLocal && (code != 2 || !strings.Contains(errs, "found only go1.19.8")):
			t.Errorf("exit %d, stderr %q, want 2 and the old version named", code, errs)
		}
	})

	t.Run("new enough on PATH", func(t *testing.T) {
		dir := fakeGo(t, "go1.99.1", "local")
		code, out, errs := common(t, `find_go test "$TOP" && command -v go && echo "$PATH"`, "PATH="+dir+":/usr/bin:/bin")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || lines[0] != filepath.Join(dir, "go") || !strings.HasSuffix(lines[1], ":"+dir+"/gopath/bin") {
			t.Errorf("exit %d, stdout %q (stderr %q); want %s/go and its GOPATH/bin on PATH", code, out, errs, dir)
		}
	})

	t.Run("versions", func(t *testing.T) {
		for _, c := range []struct {
			have, need string
			ok         bool
		}{
			{"1.26.8", "1.26.8", true}, {"1.26.10", "1.26.8", true}, {"1.27", "1.26.8", true},
			{"1.27rc1", "1.26.8", true}, {"1.26.7", "1.26.8", false}, {"1.26", "1.26.8", false},
			{"1.9.2", "1.21", false}, {"2.0", "1.26.8", true},
		} {
			if got := goAtLeast(t, c.have, c.need); got != c.ok {
				t.Errorf("go_version_at_least %s %s = %v, want %v", c.have, c.need, got, c.ok)
			}
		}
	})
}

func goAtLeast(t *testing.T, have, need string) bool {
	t.Helper()
	code, _, errs := common(t, `go_version_at_least "`+have+`" "`+need+`"`, "PATH=/usr/bin:/bin")
	if code > 1 || errs != "" {
		t.Fatalf("go_version_at_least %s %s: exit %d, %s", have, need, code, errs)
	}
	return code == 0
}

// goModVersion is the version on go.mod's "go" line.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// lockFile takes a write lock on path the way apt and dpkg lock theirs
// (fcntl F_SETLK), and returns its release.
func lockFile(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// TestWaitForApt: setup waits for apt's and dpkg's locks (held by
// unattended-upgrades on a fresh machine) with a message, for a bounded
// time, then fails naming the holder; once the lock is released it goes on.
func TestWaitForApt(t *testing.T) {
	dir := t.TempDir()
	free, held := filepath.Join(dir, "free"), filepath.Join(dir, "lock-frontend")
	os.WriteFile(free, nil, 0o644)
	release := lockFile(t, held)

	start := time.Now()
	code, _, errs := common(t, `wait_for_apt setup 2 "$FREE" "$HELD"`, "PATH=/usr/bin:/bin", "FREE="+free, "HELD="+held)
	if code != 2 || !strings.Contains(errs, "setup: waiting for apt/dpkg") ||
		!strings.Contains(errs, "still busy after 2s") || !strings.Contains(errs, held) ||
		!strings.Contains(errs, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("held lock: exit %d, stderr:\n%s\nwant exit 2, a waiting message, then the holder (pid %d) and %s", code, errs, os.Getpid(), held)
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("gave up after %v, want about 2s", d)
	}

	go func() {
		time.Sleep(1500 * time.Millisecond)
		release()
	}()
	code, _, errs = common(t, `wait_for_apt setup 30 "$HELD"`, "PATH=/usr/bin:/bin", "HELD="+held)
	if code != 0 || !strings.Contains(errs, "waiting for apt/dpkg") {
		t.Errorf("released lock: exit %d, stderr %q; want 0 after a waiting message", code, errs)
	}

	// Nothing held: no wait, no message.
	code, _, errs = common(t, `wait_for_apt setup 0 "$FREE"`, "PATH=/usr/bin:/bin", "FREE="+free)
	if code != 0 || errs != "" {
		t.Errorf("free lock: exit %d, stderr %q", code, errs)
	}
}
