package main

import (
	"bytes"
	"fmt"
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

// TestSIGTERM runs the real pkgrun binary on a build that hangs, sends it
// SIGTERM and checks that it exits 2 quickly, prints no result and leaves
// no process of the build behind.
func TestSIGTERM(t *testing.T) {
	bmake := testenv.Program(t, "bmake")
	goTool := testenv.Program(t, "go")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "pkgrun")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.CopyFS(tree, os.DirFS(filepath.Join(root, "examples", "tree"))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(tree, "fixture"), os.DirFS(filepath.Join(root, "lib", "build", "testdata", "tree", "fixture"))); err != nil {
		t.Fatal(err)
	}
	// The build's grandchild runs in the job's sandbox: find it on the
	// host by its unique command line.
	secs := fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1000000)
	cmd := exec.Command(bin, "--pkgsrc", tree, "--store", filepath.Join(dir, "store"), "--make", bmake,
		"--work-root", filepath.Join(dir, "work"), "--env", "SLEEPER_SECONDS="+secs)
	cmd.Stdin = strings.NewReader("PKGNAME=sleeper-1.0\nPKG_LOCATION=fixture/sleeper\nDEPENDS=\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for i := 0; i < 3000 && pid == 0; i++ {
		pid = sleeper(secs)
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the build never reached its hanging step; stderr:\n%s", stderr.String())
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("pkgrun took %v to exit after SIGTERM", el)
	}
	if cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("exit %v (%v), want 2; stderr:\n%s", cmd.ProcessState.ExitCode(), err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout after SIGTERM: %q", stdout.String())
	}
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("the build's grandchild %d survived SIGTERM of pkgrun", pid)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "work")); len(left) != 0 {
		t.Errorf("job directory left behind: %v", left)
	}
}

// sleeper is the pid of the host's process running "sleep secs", or 0.
func sleeper(secs string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == "sleep\x00"+secs+"\x00" {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
