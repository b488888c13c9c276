package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		deadline time.Duration
		noOutput time.Duration
		why      Why
		exit     int
		output   string
	}{
		{name: "success", script: "echo hello; echo err >&2", why: Finished, exit: 0, output: "hello\nerr\n"},
		{name: "failure", script: "echo failing; exit 3", why: Finished, exit: 3, output: "failing\n"},
		{name: "wall", script: "echo start; sleep 30", deadline: 500 * time.Millisecond, why: WallTime, exit: -1, output: "start\n"},
		{name: "silent", script: "echo start; sleep 30", noOutput: 400 * time.Millisecond, why: NoOutput, exit: -1, output: "start\n"},
		// Output every 100ms keeps the no-output limit away; the wall
		// limit still ends it.
		{name: "chatty", script: "while :; do echo x; sleep 0.1; done", deadline: 1500 * time.Millisecond, noOutput: 600 * time.Millisecond, why: WallTime, exit: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "phase.log")
			f, err := os.Create(log)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c := Cmd{Path: "/bin/sh", Args: []string{"-c", tt.script}, Output: f, NoOutput: tt.noOutput, Watch: []string{log}}
			if tt.deadline > 0 {
				c.Deadline = time.Now().Add(tt.deadline)
			}
			start := time.Now()
			res, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if res.Why != tt.why || res.ExitCode != tt.exit {
				t.Errorf("got %v exit %d, want %v exit %d", res.Why, res.ExitCode, tt.why, tt.exit)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("took %v: the limit did not stop the command", el)
			}
			got, _ := os.ReadFile(log)
			if tt.output != "" && string(got) != tt.output {
				t.Errorf("log = %q, want %q", got, tt.output)
			}
			if tt.name == "chatty" && strings.Count(string(got), "x\n") < 5 {
				t.Errorf("log = %q, want several lines of output", got)
			}
			if res.OK() != (tt.why == Finished && tt.exit == 0) {
				t.Errorf("OK() = %v", res.OK())
			}
		})
	}
}

// TestKillReachesGrandchildren checks that a limit kills the whole process
// group, including a background grandchild of the command.
func TestKillReachesGrandchildren(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	f, _ := os.Create(filepath.Join(dir, "log"))
	defer f.Close()
	script := "sh -c 'sleep 60' & echo $! > " + pidfile + "; wait"
	res, err := Run(context.Background(), Cmd{Path: "/bin/sh", Args: []string{"-c", script}, Output: f,
		Deadline: time.Now().Add(700 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Why != WallTime {
		t.Fatalf("why = %v, want wall-time limit", res.Why)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for i := 0; i < 50 && alive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("grandchild %d still alive after the group was killed", pid)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	res, err := Run(ctx, Cmd{Path: "/bin/sh", Args: []string{"-c", "sleep 60"}, Output: f})
	if err != nil {
		t.Fatal(err)
	}
	if res.Why != Canceled || res.Wall > 10*time.Second {
		t.Errorf("got %v after %v, want cancelled quickly", res.Why, res.Wall)
	}
}

// TestCPU checks that CPU time of a waited-for grandchild is counted.
func TestCPU(t *testing.T) {
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	script := `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'`
	res, err := Run(context.Background(), Cmd{Path: "/bin/sh", Args: []string{"-c", script}, Output: f})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("result %+v", res)
	}
	if res.CPU < 10*time.Millisecond {
		t.Errorf("CPU = %v for a busy loop, want the grandchild's time counted", res.CPU)
	}
}

func TestStartError(t *testing.T) {
	if _, err := Run(context.Background(), Cmd{Path: "/nonexistent/prog", Output: os.Stderr}); err == nil {
		t.Error("no error for a missing program")
	}
}

// TestWaitGroup: a command that exits is waited for; one still running
// when the context ends gets SIGTERM and, if it ignores it, SIGKILL after
// the grace; a grandchild left in the group never outlives the call.
func TestWaitGroup(t *testing.T) {
	for _, c := range []struct {
		name, script string
		cancel       bool
		termLeader   bool
		wantStopped  bool
		maxWall      time.Duration
	}{
		{"exits", "exit 3", false, false, false, 5 * time.Second},
		{"obeys SIGTERM", "sleep 30 & wait", true, false, true, 5 * time.Second},
		{"ignores SIGTERM", "trap '' TERM; sleep 30 & wait; sleep 30", true, false, true, 5 * time.Second},
		{"leader only", "trap 'exit 0' TERM; sleep 30 & wait", true, true, true, 5 * time.Second},
		{"leaves a grandchild", "sleep 30 >/dev/null 2>&1 & echo $! > $PIDFILE; exit 0", false, false, false, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			cmd := exec.Command("/bin/sh", "-c", c.script)
			cmd.Env = append(os.Environ(), "PIDFILE="+pidFile)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel {
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			start := time.Now()
			stopped, err := WaitGroup(ctx, cmd, 300*time.Millisecond, c.termLeader)
			if stopped != c.wantStopped {
				t.Errorf("stopped %v, want %v (err %v)", stopped, c.wantStopped, err)
			}
			if d := time.Since(start); d > c.maxWall {
				t.Errorf("took %v", d)
			}
			if !c.cancel && c.name == "exits" && cmd.ProcessState.ExitCode() != 3 {
				t.Errorf("exit %d, want 3", cmd.ProcessState.ExitCode())
			}
			// No member of the group runs any more (a killed one may be
			// a zombie until its new parent reaps it).
			pgid := cmd.Process.Pid
			deadline := time.Now().Add(2 * time.Second)
			for groupRuns(pgid) {
				if time.Now().After(deadline) {
					t.Fatalf("process group %d still has running members", pgid)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := os.Stat(pidFile); c.name == "leaves a grandchild" && err != nil {
				t.Errorf("the grandchild was not started: %v", err)
			}
		})
	}
}

// groupRuns reports whether a process of group pgid runs (is not a zombie).
func groupRuns(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b)[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == fmt.Sprint(pgid) {
			return true
		}
	}
	return false
}
