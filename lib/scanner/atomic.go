package scanner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

func newSHA() hash.Hash { return sha256.New() }

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// AtomicFile is a file that appears at its path only when Commit succeeds:
// it is written as a temporary file in the same directory, synced, renamed
// over the path and the directory synced. Abort (or a Commit that fails)
// removes the temporary file and leaves any old file at the path untouched.
type AtomicFile struct {
	*os.File
	path string
	done bool
}

// CreateAtomic starts an AtomicFile for path.
func CreateAtomic(path string) (*AtomicFile, error) {
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
	return &AtomicFile{File: f, path: path}, nil
}

// Commit syncs, closes and renames the file into place.
func (a *AtomicFile) Commit() error {
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
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}

// WriteFileAtomic writes path atomically with the content fill produces.
func WriteFileAtomic(path string, fill func(w io.Writer) error) error {
	a, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	defer a.Abort()
	if err := fill(a); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return a.Commit()
}
