package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// inUse reads /proc: the working directory, root and open files of every
// process it may look at, and this mount namespace's mount points.
// Processes that end while it reads, or that it may not inspect, are
// skipped.
func inUse() (*usage, error) {
	u := &usage{paths: map[string]string{}}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		// id parent major:minor root MOUNT-POINT options ...
		f := strings.Fields(line)
		if len(f) > 4 {
			u.mounts = append(u.mounts, unescapeMount(f[4]))
		}
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		pid := filepath.Base(d)
		who := "pid " + pid
		if comm, err := os.ReadFile(filepath.Join(d, "comm")); err == nil {
			who += " (" + strings.TrimSpace(string(comm)) + ")"
		}
		links := []string{filepath.Join(d, "cwd"), filepath.Join(d, "root")}
		if fds, err := os.ReadDir(filepath.Join(d, "fd")); err == nil {
			for _, fd := range fds {
				links = append(links, filepath.Join(d, "fd", fd.Name()))
			}
		}
		for _, l := range links {
			t, err := os.Readlink(l)
			if err != nil || !strings.HasPrefix(t, "/") {
				continue // gone, not ours, or a socket, pipe...
			}
			u.paths[strings.TrimSuffix(t, " (deleted)")] = who
		}
	}
	return u, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
