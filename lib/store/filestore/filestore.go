// Package filestore keeps a store in a local directory: object "All/x.tgz"
// is the file <root>/All/x.tgz, so the directory is directly usable as a
// pkgsrc PACKAGES tree.
//
// Put is atomic: it writes a temporary file (store.TempPrefix...) in the
// object's own directory, fsyncs it, renames it over the object and
// fsyncs the directory. A reader therefore sees the old or the new
// object, never a part, and a crash leaves at worst a stray temporary
// file, which List ignores.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Store is a store.Store over a local directory.
type Store struct {
	root string // absolute, cleaned
}

var _ store.Store = (*Store)(nil)

// New returns the store rooted at dir, creating dir if needed.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	return &Store{root: abs}, nil
}

// Root returns the directory holding the store.
func (s *Store) Root() string { return s.root }

// String returns the file:// URL of the store.
func (s *Store) String() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(s.root)}).String()
}

// Close does nothing: a directory holds no connection.
func (s *Store) Close() error { return nil }

func (s *Store) path(name string) string {
	return filepath.Join(s.root, filepath.FromSlash(name))
}

func (s *Store) wrap(op, name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = fmt.Errorf("%w (%v)", store.ErrNotExist, err)
	case errors.Is(err, fs.ErrPermission):
		err = store.Permanent(err)
	}
	return fmt.Errorf("%s %s in %s: %w", op, name, s, err)
}

// Put stores r under name atomically (see the package comment).
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("put to %s: %w", s, err)
	}
	p := s.path(name)
	dir := filepath.Dir(p)
	if err := s.mkdirs(dir); err != nil {
		return s.wrap("put", name, err)
	}
	f, err := os.CreateTemp(dir, store.TempPrefix+"*")
	if err != nil {
		return s.wrap("put", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, store.CtxReader(ctx, r))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return s.wrap("put", name, err)
	}
	if size >= 0 && n != size {
		return s.wrap("put", name, fmt.Errorf("reader yielded %d bytes, expected %d", n, size))
	}
	// CreateTemp makes 0600 files; packages are meant to be served.
	if err := f.Chmod(0o644); err != nil {
		return s.wrap("put", name, err)
	}
	if err := f.Sync(); err != nil {
		return s.wrap("put", name, err)
	}
	if err := f.Close(); err != nil {
		return s.wrap("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return s.wrap("put", name, err)
	}
	return syncDir(dir)
}

// mkdirs creates dir and the missing directories above it, fsyncing the
// parent of each one it creates so that a crash cannot lose the new
// object's directory entry.
func (s *Store) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var created []string
	for d := dir; d != s.root && len(d) > len(s.root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Get opens name for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckName(name); err != nil {
		return nil, fmt.Errorf("get from %s: %w", s, err)
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, s.wrap("get", name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%w: not a regular file", store.ErrNotExist)
		}
		return nil, s.wrap("get", name, err)
	}
	return f, nil
}

// Stat describes name.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := ctx.Err(); err != nil {
		return store.Info{}, err
	}
	if err := store.CheckName(name); err != nil {
		return store.Info{}, fmt.Errorf("stat in %s: %w", s, err)
	}
	fi, err := os.Stat(s.path(name))
	if err != nil {
		return store.Info{}, s.wrap("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return store.Info{}, s.wrap("stat", name, fmt.Errorf("%w: not a regular file", store.ErrNotExist))
	}
	return store.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List reports every regular file whose name starts with prefix, and
// every symlink to one (pkgsrc's category directories hold symlinks to
// ../All; Get and Stat follow them, so List reports them too).
//
// A pkgsrc All/ directory holds tens of thousands of files and pkgindex
// lists it (and index/) on every merge, so List reads each directory
// unsorted and lstats its entries relative to the open directory, on
// several goroutines when there are many; fn is still called from one
// goroutine at a time.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list in %s: %w", s, err)
	}
	// Walk only the deepest directory the prefix names.
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = path.Clean(prefix[:i])
	}
	err := s.listDir(ctx, start, prefix, fn)
	var stop stopErr
	switch {
	case err == nil:
		return nil
	case errors.As(err, &stop):
		return stop.err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("list %q in %s: %w", prefix, s, err)
}

// stopErr carries an error returned by List's fn, which List returns as
// is.
type stopErr struct{ err error }

func (e stopErr) Error() string { return e.err.Error() }

// listParallel is the number of entries from which a directory's entries
// are lstat'ed on more than one goroutine.
const listParallel = 512

// listDir lists the directory holding objects dir+"/..." ("" is the
// root) and recurses into the subdirectories that can hold a match.
func (s *Store) listDir(ctx context.Context, dir, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	objPrefix := ""
	if dir != "" && dir != "." {
		objPrefix = dir + "/"
	}
	// An os.Root: its Lstat is an fstatat relative to the open directory,
	// where DirEntry.Info resolves the whole path again for each entry.
	root, err := os.OpenRoot(s.path(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // a missing directory lists as empty
		}
		return err
	}
	defer root.Close()
	// Read the names through a plain open: a directory opened through the
	// Root lstats every entry in ReadDir, serially.
	d, err := os.Open(s.path(dir))
	if err != nil {
		return err
	}
	ents, err := d.ReadDir(-1) // unsorted, unlike os.ReadDir
	d.Close()
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	// Keep the entries that may be, or lead to, a match.
	var files []fs.DirEntry
	var dirs []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, store.TempPrefix) {
			continue
		}
		obj := objPrefix + name
		if e.IsDir() {
			if strings.HasPrefix(obj+"/", prefix) || strings.HasPrefix(prefix, obj+"/") {
				dirs = append(dirs, obj)
			}
			continue
		}
		if strings.HasPrefix(obj, prefix) {
			files = append(files, e)
		}
	}
	infos := make([]store.Info, len(files))
	ok := make([]bool, len(files))
	stat := func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			e := files[i]
			var fi fs.FileInfo
			var err error
			switch {
			case e.Type().IsRegular():
				fi, err = root.Lstat(e.Name())
				if err == nil && !fi.Mode().IsRegular() {
					continue // replaced since the directory was read
				}
			case e.Type()&fs.ModeSymlink != 0:
				fi, err = os.Stat(s.path(objPrefix + e.Name()))
				if err == nil && !fi.Mode().IsRegular() {
					continue
				}
			default:
				continue
			}
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing, or a dangling symlink
			}
			if err != nil {
				return err
			}
			infos[i] = store.Info{Name: objPrefix + e.Name(), Size: fi.Size(), ModTime: fi.ModTime()}
			ok[i] = true
		}
		return nil
	}
	if n := runtime.GOMAXPROCS(0); len(files) >= listParallel && n > 1 {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for k := range n {
			wg.Go(func() { errs[k] = stat(k*len(files)/n, (k+1)*len(files)/n) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	} else if err := stat(0, len(files)); err != nil {
		return err
	}
	for i, info := range infos {
		if ok[i] {
			if err := fn(info); err != nil {
				return stopErr{err}
			}
		}
	}
	for _, sub := range dirs {
		if err := s.listDir(ctx, sub, prefix, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadFileInfo returns the whole of a small object in one buffer and
// describes it as Stat does, from the same open file. It is an optional
// fast path beside Get and List: lib/summary/merge reads the 30,000
// fragments of a repository with it, without listing index/.
func (s *Store) ReadFileInfo(ctx context.Context, name string) ([]byte, store.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Info{}, err
	}
	if err := store.CheckName(name); err != nil {
		return nil, store.Info{}, fmt.Errorf("get from %s: %w", s, err)
	}
	b, size, mtime, err := readFile(s.path(name))
	if err != nil {
		return nil, store.Info{}, s.wrap("get", name, err)
	}
	return b, store.Info{Name: name, Size: size, ModTime: mtime}, nil
}

// Chtimes sets the modification time of an object, as os.Chtimes does
// (the access time is left alone). It is an optional capability beside
// the store interface: pkgsign keeps the time of a package it rewrites,
// so that signing does not change what pkgrun's age check considers up
// to date.
func (s *Store) Chtimes(ctx context.Context, name string, mtime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("chtimes in %s: %w", s, err)
	}
	if err := os.Chtimes(s.path(name), time.Time{}, mtime); err != nil {
		return s.wrap("chtimes", name, err)
	}
	return nil
}

// Delete removes name; a missing name is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("delete in %s: %w", s, err)
	}
	p := s.path(name)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil // a directory is not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.wrap("delete", name, err)
	}
	return nil
}
