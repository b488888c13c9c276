package db

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// LockSuffix names a database's lock file: bulk.db is locked through
// bulk.db.lock beside it. The lock is on this separate file, not on the
// database, because pkgdag replaces the database file by a rename.
const LockSuffix = ".lock"

// ErrLocked is wrapped by the error of TryLock when another process holds
// the database's lock.
var ErrLocked = errors.New("database in use")

// Holder says who holds a database's lock; it is what the lock file
// contains while the lock is held (one JSON line, for cat(1) too).
type Holder struct {
	Tool  string    `json:"tool"` // "pkgsched run", "pkgdag build"
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process"
	}
	s := fmt.Sprintf("%s (pid %d on host %s", h.Tool, h.PID, h.Host)
	if !h.Since.IsZero() {
		s += ", since " + h.Since.Format(time.RFC3339)
	}
	return s + ")"
}

// LockedError is TryLock's error when the database is in use.
type LockedError struct {
	DB     string // the database
	File   string // its lock file
	Holder Holder // who holds it; zero when the lock file did not say
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("database %s is in use by %s (lock file %s)", e.DB, e.Holder, e.File)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is an exclusive claim on a build database, held until Release (or
// until the process dies: the kernel drops the lock of a killed holder, so
// a lock is never stale). pkgsched run holds it for the whole run, pkgdag
// build while it writes and renames a new database over the old one.
type Lock struct {
	f    *os.File
	path string
}

// LockFile returns the lock file of the database at path: beside the file
// path resolves to (through symlinks), so that every name of one database
// shares one lock.
func LockFile(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real + LockSuffix, nil
	}
	// The database does not exist yet (pkgdag's first build): resolve
	// its directory.
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)) + LockSuffix, nil
}

// TryLock takes the lock of the database at path for tool, or returns at
// once an error wrapping ErrLocked (a *LockedError naming the holder's
// tool, pid and host) when another process holds it. The lock is flock(2)
// on LockFile(path), which works between processes of one host and, on
// Linux NFS clients, between hosts.
func TryLock(path, tool string) (*Lock, error) {
	lf, err := LockFile(path)
	if err != nil {
		return nil, fmt.Errorf("lock database %s: %w", path, err)
	}
	host, _ := os.Hostname()
	deadline := time.Now().Add(deadHolderWait)
	for range 1000 {
		f, err := os.OpenFile(lf, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock database %s: %w", path, err)
		}
		if err := flock(f); err != nil {
			if !errors.Is(err, unix.EWOULDBLOCK) {
				f.Close()
				return nil, fmt.Errorf("lock database %s: flock %s: %w", path, lf, err)
			}
			h := readHolder(f)
			f.Close()
			// A holder that just died may still share its lock with a
			// child between fork and exec; the lock goes with it.
			if h.Host == host && h.PID != 0 && !alive(h.PID) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			return nil, &LockedError{DB: path, File: lf, Holder: h}
		}
		// A holder removes the file before it unlocks: a lock taken on a
		// file that is no longer at lf is no lock; open lf again.
		if same(f, lf) {
			h := Holder{Tool: tool, PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second)}
			b, _ := json.Marshal(h)
			if err := f.Truncate(0); err == nil {
				_, err = f.WriteAt(append(b, '\n'), 0)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lock database %s: write %s: %w", path, lf, err)
			}
			return &Lock{f: f, path: lf}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock database %s: %s keeps being replaced", path, lf)
}

// Release gives the lock up and removes the lock file (before unlocking,
// so no other process can hold a lock on a file that is gone).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("release database lock %s: %w", l.path, err)
	}
	return nil
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// deadHolderWait is how long TryLock waits for the lock of a holder that
// is gone (see TryLock).
const deadHolderWait = 5 * time.Second

// alive reports whether a process pid exists on this host.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}

// same reports whether f is still the file at path.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// readHolder reads the holder from a lock file held by someone else. The
// holder writes it just after taking the lock: a reader that comes in
// between sees an empty file, so it looks again a few times.
func readHolder(f *os.File) Holder {
	var h Holder
	for range 20 {
		b := make([]byte, 4096)
		n, _ := f.ReadAt(b, 0)
		if n > 0 && json.Unmarshal(b[:n], &h) == nil && h.PID != 0 {
			return h
		}
		time.Sleep(5 * time.Millisecond)
	}
	return Holder{}
}
