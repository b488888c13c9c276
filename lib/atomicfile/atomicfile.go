// Package atomicfile writes files that appear at their path whole or not
// at all: the content goes to a temporary file in the same directory,
// which is synced, renamed over the path, and the directory synced. A
// crash at any point leaves either the old file or the new one. pkgscan's
// output and cache and pkgdag's presolve output are written this way.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// File is a file that appears at its path only when Commit succeeds:
// it is written as a temporary file in the same directory, synced, renamed
// over the path and the directory synced. Abort (or a Commit that fails)
// removes the temporary file and leaves any old file at the path untouched.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts an File for path.
func Create(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	// pbulk creates its output 0666 & umask; CreateTemp uses 0600.
	mask := umask()
	_ = f.Chmod(os.FileMode(0o666 &^ mask))
	return &File{File: f, path: path}, nil
}

// Commit syncs, closes and renames the file into place.
func (a *File) Commit() error {
	if a.done {
		return fmt.Errorf("write %s: already finished", a.path)
	}
	a.done = true
	tmp := a.File.Name()
	if err := a.File.Sync(); err != nil {
		a.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if err := a.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if err := os.Rename(tmp, a.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if d, err := os.Open(filepath.Dir(a.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("sync directory of %s: %w", a.path, err)
		}
	}
	return nil
}

// Abort discards the file. It is safe to call after Commit (it does
// nothing then), so callers can defer it.
func (a *File) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}

// WriteFile writes path atomically with the content fill produces.
func WriteFile(path string, fill func(w io.Writer) error) error {
	a, err := Create(path)
	if err != nil {
		return err
	}
	defer a.Abort()
	if err := fill(a); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return a.Commit()
}

// umask reads the process umask (there is no way to read it without
// setting it; writers are not the place for concurrent umask changes).
func umask() uint32 {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return uint32(m)
}
