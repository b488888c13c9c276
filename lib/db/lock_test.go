package db

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTryLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bulk.db")
	os.WriteFile(path, nil, 0o644)
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()

	l, err := TryLock(path, "pkgsched run")
	if err != nil {
		t.Fatal(err)
	}
	if l.Path() != path+LockSuffix {
		t.Errorf("lock file %s, want %s", l.Path(), path+LockSuffix)
	}
	b, _ := os.ReadFile(l.Path())
	if !strings.Contains(string(b), fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Errorf("lock file holds %q, want this pid", b)
	}
	// A second holder, by either name of the database, is refused with
	// the holder named: flock(2) locks conflict between two opens even in
	// one process.
	for _, p := range []string{path, link} {
		_, err := TryLock(p, "pkgdag build")
		var le *LockedError
		if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
			t.Fatalf("second lock of %s: %v, want a LockedError", p, err)
		}
		for _, want := range []string{p, "pkgsched run", fmt.Sprintf("pid %d", os.Getpid()), "host " + host} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + LockSuffix); !os.IsNotExist(err) {
		t.Errorf("lock file left after release: %v", err)
	}
	l2, err := TryLock(link, "pkgdag build")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	defer l2.Release()
	if l2.Path() != path+LockSuffix {
		t.Errorf("lock through the symlink at %s, want %s", l2.Path(), path+LockSuffix)
	}

	// A stale lock file (its holder was killed) locks at once; a database
	// that does not exist yet (pkgdag's first build) can be locked.
	other := filepath.Join(dir, "new.db")
	os.WriteFile(other+LockSuffix, []byte(`{"tool":"pkgsched run","pid":1}`), 0o644)
	l3, err := TryLock(other, "pkgdag build")
	if err != nil {
		t.Fatalf("stale lock file: %v", err)
	}
	l3.Release()
}

// TestTryLockDeadHolder: the holder the lock file names is gone, but the
// lock is still held for a moment (by its child between fork and exec):
// TryLock waits for it instead of failing.
func TestTryLockDeadHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	f, err := os.OpenFile(path+LockSuffix, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(f); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `{"tool":"pkgsched run","pid":%d,"host":%q}`+"\n", dead.Process.Pid, host)
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.Close()
	}()
	start := time.Now()
	l, err := TryLock(path, "pkgsched run")
	if err != nil {
		t.Fatalf("lock of a dead holder: %v", err)
	}
	l.Release()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("locked after %v, while the lock was still held", d)
	}
}
