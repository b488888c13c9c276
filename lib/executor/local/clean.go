package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// clockSlack is how much earlier than its job's recorded start a job
// directory may seem to be made (file system timestamps run on a coarser
// clock than the scheduler's).
const clockSlack = 2 * time.Second

var _ executor.Cleaner = (*Executor)(nil)

// WorkRoot is where pkgrun makes its job directories
// (<work root>/<PKGNAME>.<random>): the settings' work_root, else pkgrun's
// default $TMPDIR/pkgrun, made absolute against this process's directory,
// which is pkgrun's too.
func (e *Executor) WorkRoot() string {
	root := e.cfg.Settings.WorkRoot
	if root == "" {
		root = filepath.Join(os.TempDir(), "pkgrun")
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	return root
}

// CleanStale removes the job directories that pkgrun processes of stale
// jobs left in the work root when their scheduler was killed (pkgrun dies
// with it and never cleans up). A directory is removed only when all of
// this holds: it is a directory (not a symbolic link) directly inside the
// work root, named <PKGNAME>.<suffix> (no dot in the suffix) after one of
// jobs, modified no earlier than that job's start, and no live process
// has its working directory, root or an open file under it, nor is
// anything mounted under it. Everything else is left alone; directories
// of the jobs that are kept are reported with the reason.
//
// Jobs of workers that are not local slots (see Owns) are left alone.
func (e *Executor) CleanStale(ctx context.Context, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	mine := executor.Owned(jobs, e.Owns)
	return cleanJobDirs(ctx, e.WorkRoot(), mine)
}

// Owns reports whether worker is one of this executor's slots
// ("local/N"); a job recorded without a worker is taken to be local too.
func (e *Executor) Owns(worker string) bool {
	return worker == "" || strings.HasPrefix(worker, e.cfg.Name+"/")
}

func cleanJobDirs(ctx context.Context, root string, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	started := make(map[string]time.Time, len(jobs))
	for _, j := range jobs {
		started[j.PkgName] = j.Started
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clean up stale jobs: %w", err)
	}
	// /proc shows resolved paths.
	real := root
	if r, err := filepath.EvalSymlinks(root); err == nil {
		real = r
	}
	var users *usage
	var out []executor.Cleaned
	for _, ent := range entries {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		name := ent.Name()
		k := strings.LastIndexByte(name, '.')
		if k <= 0 || k == len(name)-1 {
			continue
		}
		pkg := name[:k]
		since, ok := started[pkg]
		if !ok {
			continue
		}
		path := filepath.Join(root, name)
		keep := func(format string, args ...any) {
			out = append(out, executor.Cleaned{PkgName: pkg, Path: path, Err: fmt.Errorf(format, args...)})
		}
		fi, err := os.Lstat(path)
		switch {
		case err != nil:
			keep("%w", err)
			continue
		case !fi.IsDir():
			keep("not a directory (%s)", fi.Mode().Type())
			continue
		case fi.ModTime().Before(since.Add(-clockSlack)):
			continue // older than the job: not its directory
		}
		if users == nil {
			if users, err = inUse(); err != nil {
				return out, fmt.Errorf("clean up stale jobs: cannot tell which processes use %s: %w", root, err)
			}
		}
		if who := users.under(filepath.Join(real, name)); who != "" {
			keep("in use: %s", who)
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			keep("remove: %w", err)
			continue
		}
		out = append(out, executor.Cleaned{PkgName: pkg, Path: path})
	}
	return out, nil
}

// usage is what live processes use: paths of their working directories,
// roots and open files (with the pid), and the mount points.
type usage struct {
	paths  map[string]string // path -> "pid N (comm)"
	mounts []string
}

// under names a user of dir or of anything below it, "" when none.
func (u *usage) under(dir string) string {
	inside := func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for _, m := range u.mounts {
		if inside(m) {
			return "mount point " + m
		}
	}
	for p, who := range u.paths {
		if inside(p) {
			return who + " uses " + p
		}
	}
	return ""
}
