package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr {
	// Pdeathsig: a kill -9 of pkgsched takes its pkgrun children along.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillOrphans kills every process whose environment carries
// PKGSCHED_TAG=tag: builders (and their children) left behind by a
// scheduler that was killed. It returns how many it killed. The tag, not
// a recorded pid, identifies them, so a reused pid is never hit.
func KillOrphans(tag string) (int, error) {
	want := []byte(TagVar + "=" + tag + "\x00")
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	n := 0
	var killed []int
	defer func() { waitGone(killed, 10*time.Second) }()
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		if bytes.HasPrefix(env, want) || bytes.Contains(env, append([]byte{0}, want...)) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
				killed = append(killed, pid)
			}
		}
	}
	return n, nil
}

// waitGone waits until every pid has exited (is gone or a zombie), so no
// orphan can still touch its work when the job starts again.
func waitGone(pids []int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil {
				break
			}
			if k := bytes.LastIndexByte(b, ')'); k >= 0 && k+2 < len(b) && (b[k+2] == 'Z' || b[k+2] == 'X') {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
