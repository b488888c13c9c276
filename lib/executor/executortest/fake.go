package executortest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/version"
)

// FakeEnv makes a test binary act as the fake pkgrun (see Main).
const FakeEnv = "PKGBULK_FAKE_PKGRUN"

// Main is a TestMain for packages that use the fake builder: it runs the
// test binary as the fake pkgrun when FakeEnv is set, else the tests.
func Main(m *testing.M) {
	if os.Getenv(FakeEnv) == "1" {
		os.Exit(Fake(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// FakePkgrun writes a pkgrun program into a temporary directory that runs
// the current test binary as the fake builder, and returns its path. The
// test package's TestMain must call Main.
func FakePkgrun(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pkgrun")
	script := fmt.Sprintf("#!/bin/sh\n%s=1 exec '%s' \"$@\"\n", FakeEnv, self)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Settings returns job settings for the fake: its log and markers go to
// dir (WorkRoot); every job sleeps sleep first.
func Settings(dir string, sleep time.Duration) job.Settings {
	return job.Settings{
		WorkRoot:    dir,
		Environment: []string{"FAKE_SLEEP_MS=" + strconv.FormatInt(sleep.Milliseconds(), 10)},
	}
}

// LogName is the fake's log inside WorkRoot: one line per finished job,
// "PKGNAME STATUS", and "DOUBLE PKGNAME" or "ORDER PKGNAME DEP" when it
// caught the scheduler running a package twice at once or before a
// dependency was built.
const LogName = "built.log"

// Fake is the fake pkgrun. It reads the record on stdin (or from --input
// FILE) and the settings from --job FILE, and behaves according to the PKGBASE's prefix:
//
//	fail     result failed (exit 1)      skew     result skew (exit 1)
//	timeout  result timeout (exit 1)     crash    exit 2, no result
//	crashonce  crash the first time, then build
//	garbage  prints junk (exit 0)        signal   kills itself with SIGKILL
//	hang     sleeps until killed         nospace  exit 3 (job.ExitNoSpace)
//	anything else: done
//
// Every job makes a job directory in the work root as pkgrun does, works
// in it and removes it at the end (unless it is killed). It first sleeps
// FAKE_SLEEP_MS (from the settings' environment)
// and checks that no other fake is building the same package and that
// every DEPENDS package was logged as done before. Two more settings
// break every job: FAKE_NOSPACE=1 makes it run out of disk space (exit
// 3), and FAKE_OUTAGE_AFTER=N makes it crash (exit 2, like pkgrun when the
// store is unreachable) once N jobs were logged as done.
func Fake(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var set job.Settings
	if len(args) > 0 && args[0] == "version" {
		// What executors ask at connect (lib/version).
		if err := version.Current().Write(stdout, slices.Contains(args, "--json")); err != nil {
			return 2
		}
		return 0
	}
	for _, a := range args {
		if a == "--help" {
			// What an executor checks at connect (see lib/executor/sshexec).
			fmt.Fprintf(stdout, "fake pkgrun\nOutput: one JSON object on stdout (lib/job Result, \"version\": %d):\n", job.ResultVersion)
			return 0
		}
	}
	for i := 0; i < len(args); i++ {
		if args[i] == "--job" && i+1 < len(args) {
			b, err := os.ReadFile(args[i+1])
			if err != nil {
				fmt.Fprintln(stderr, "fake pkgrun:", err)
				return 2
			}
			if err := json.Unmarshal(b, &set); err != nil {
				fmt.Fprintln(stderr, "fake pkgrun:", err)
				return 2
			}
			i++
		}
		if args[i] == "--input" && i+1 < len(args) {
			f, err := os.Open(args[i+1])
			if err != nil {
				fmt.Fprintln(stderr, "fake pkgrun:", err)
				return 2
			}
			defer f.Close()
			stdin = f
			i++
		}
	}
	rec, err := io.ReadAll(stdin)
	if err != nil {
		fmt.Fprintln(stderr, "fake pkgrun: read record:", err)
		return 2
	}
	var name, path string
	var deps []string
	sc := bufio.NewScanner(bytes.NewReader(rec))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "PKGNAME":
			name = v
		case "PKG_LOCATION":
			path = v
		case "DEPENDS":
			deps = strings.Fields(v)
		}
	}
	if name == "" {
		fmt.Fprintln(stderr, "fake pkgrun: no PKGNAME in the record")
		return 2
	}
	env := map[string]string{}
	for _, kv := range set.Environment {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	dir := set.WorkRoot
	if dir == "" {
		dir = os.TempDir()
	}
	logf := filepath.Join(dir, LogName)
	appendLog := func(line string) {
		f, err := os.OpenFile(logf, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "fake pkgrun:", err)
			return
		}
		f.Write([]byte(line + "\n"))
		f.Close()
	}

	// A job directory, as pkgrun makes one (<work root>/<PKGNAME>.<random>),
	// removed when the job ends unless the fake is killed; it works in
	// there, so the directory is in use while it runs.
	jobDir, err := os.MkdirTemp(dir, name+".")
	if err != nil {
		fmt.Fprintln(stderr, "fake pkgrun:", err)
		return 2
	}
	defer os.RemoveAll(jobDir)
	os.WriteFile(filepath.Join(jobDir, "work.log"), []byte("building "+name+"\n"), 0o644)
	if err := os.Chdir(jobDir); err != nil {
		fmt.Fprintln(stderr, "fake pkgrun:", err)
		return 2
	}

	// Running marker: a live fake for the same package means a double run.
	running := filepath.Join(dir, "running."+name)
	if b, err := os.ReadFile(running); err == nil {
		if pid, err := strconv.Atoi(string(b)); err == nil && pid != os.Getpid() && alive(pid) {
			appendLog("DOUBLE " + name)
		}
	}
	os.WriteFile(running, []byte(strconv.Itoa(os.Getpid())), 0o644)
	defer os.Remove(running)

	if len(deps) > 0 {
		logged, _ := os.ReadFile(logf)
		done := map[string]bool{}
		for _, l := range strings.Split(string(logged), "\n") {
			if n, st, ok := strings.Cut(l, " "); ok && (st == "done" || st == "up-to-date") {
				done[n] = true
			}
		}
		for _, d := range deps {
			if !done[d] {
				appendLog("ORDER " + name + " " + d)
			}
		}
	}
	if ms, err := strconv.Atoi(env["FAKE_SLEEP_MS"]); err == nil && ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}

	if env["FAKE_NOSPACE"] == "1" {
		fmt.Fprintln(stderr, "fake pkgrun: write work/foo.o: no space left on device")
		return job.ExitNoSpace
	}
	if n, err := strconv.Atoi(env["FAKE_OUTAGE_AFTER"]); err == nil {
		logged, _ := os.ReadFile(logf)
		if strings.Count(string(logged), " done\n") >= n {
			fmt.Fprintln(stderr, "fake pkgrun: store file:///fake: connection refused")
			return 2
		}
	}
	base := name
	if k := strings.LastIndexByte(name, '-'); k > 0 {
		base = name[:k]
	}
	res := job.Result{PkgName: name, PkgPath: path, Status: job.StatusDone, WallMS: 1, Host: "fake"}
	code := 0
	switch {
	case strings.HasPrefix(base, "fail"):
		res.Status, res.FailedPhase, res.Message, code = job.StatusFailed, "build", "fake build failure", 1
	case strings.HasPrefix(base, "skew"):
		res.Status, res.Message, code = job.StatusSkew, "tree has "+name+"nb1", 1
	case strings.HasPrefix(base, "timeout"):
		res.Status, res.FailedPhase, code = job.StatusTimeout, "build", 1
	case strings.HasPrefix(base, "crashonce"):
		marker := filepath.Join(dir, "crashed."+name)
		if _, err := os.Stat(marker); err != nil {
			os.WriteFile(marker, nil, 0o644)
			fmt.Fprintln(stderr, "fake pkgrun: crashing once")
			return 2
		}
	case strings.HasPrefix(base, "crash"):
		fmt.Fprintln(stderr, "fake pkgrun: crashing as asked")
		return 2
	case strings.HasPrefix(base, "garbage"):
		fmt.Fprintln(stdout, "this is not a result")
		return 0
	case strings.HasPrefix(base, "signal"):
		os.Remove(running)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour)
	case strings.HasPrefix(base, "hang"):
		time.Sleep(time.Hour)
	case strings.HasPrefix(base, "nospace"):
		fmt.Fprintln(stderr, "fake pkgrun: write work/foo.o: no space left on device")
		return job.ExitNoSpace
	}
	appendLog(name + " " + string(res.Status))
	if err := res.Encode(stdout); err != nil {
		return 2
	}
	return code
}

// alive reports whether pid runs: a zombie (killed, not yet reaped) does
// not count, it can do nothing more.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err) // no /proc: trust kill(2)
	}
	// The state follows the parenthesised command name.
	if k := bytes.LastIndexByte(b, ')'); k >= 0 && k+2 < len(b) && (b[k+2] == 'Z' || b[k+2] == 'X') {
		return false
	}
	// A process killed but still tearing down has released its memory
	// already (empty cmdline): it runs no more code.
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(cmd) > 0
}
