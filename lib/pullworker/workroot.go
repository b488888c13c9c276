package pullworker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The worker's own part of its work root: <work root>/leases/<lease>/,
// holding the lease's staging store (store/) and the name of its package
// (pkgname), so that a worker started after one that was killed knows
// which job directories (<work root>/<PKGNAME>.<random>, lib/build's)
// are left over.
const (
	leasesDir   = "leases"
	lockFile    = ".pkgrun-worker.lock"
	pkgnameFile = "pkgname"
)

// lockWorkRoot makes the work root and takes its lock for this process's
// life: one worker per work root, so that what a killed one left there
// can be removed.
func lockWorkRoot(root string) (*os.File, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("work root: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("work root: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("work root %s: another pkgrun worker uses it (give each worker its own --work-root)", root)
		}
		return nil, fmt.Errorf("work root %s: lock: %w", root, err)
	}
	return f, nil
}

// cleanLeftovers removes what a killed worker left in the work root:
// every lease directory, and the job directories of those leases'
// packages (directly in the work root, named <PKGNAME>.<random> with no
// dot in the random part, not symbolic links). The caller holds the work
// root's lock, so no build of this work root runs.
func cleanLeftovers(root string) ([]string, error) {
	dir := filepath.Join(root, leasesDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pkgs := map[string]bool{}
	var removed []string
	for _, e := range ents {
		ld := filepath.Join(dir, e.Name())
		if b, err := os.ReadFile(filepath.Join(ld, pkgnameFile)); err == nil {
			if p := strings.TrimSpace(string(b)); p != "" && !strings.ContainsAny(p, "/\x00") {
				pkgs[p] = true
			}
		}
		if err := os.RemoveAll(ld); err != nil {
			return removed, fmt.Errorf("remove the leftover %s: %w", ld, err)
		}
		removed = append(removed, ld)
	}
	if len(pkgs) == 0 {
		return removed, nil
	}
	jobs, err := os.ReadDir(root)
	if err != nil {
		return removed, err
	}
	for _, e := range jobs {
		name := e.Name()
		i := strings.LastIndexByte(name, '.')
		if i <= 0 || !pkgs[name[:i]] || i == len(name)-1 || e.Type()&os.ModeType != os.ModeDir {
			continue
		}
		p := filepath.Join(root, name)
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("remove the leftover job directory %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}
