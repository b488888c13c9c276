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
	"strings"

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

// List reports every regular file whose name starts with prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list in %s: %w", s, err)
	}
	// Walk only the deepest directory the prefix names.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = s.path(prefix[:i])
	}
	var fnErr error
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a missing directory lists as empty
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), store.TempPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			// Prune directories that cannot hold a match.
			if name != "." && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		var fi fs.FileInfo
		switch {
		case d.Type().IsRegular():
			fi, err = d.Info()
		case d.Type()&fs.ModeSymlink != 0:
			// pkgsrc's category directories hold symlinks to ../All;
			// Get and Stat follow them, so List reports them too.
			fi, err = os.Stat(p)
			if err == nil && !fi.Mode().IsRegular() {
				return nil
			}
		default:
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while listing, or a dangling symlink
		}
		if err != nil {
			return err
		}
		fnErr = fn(store.Info{Name: path.Clean(name), Size: fi.Size(), ModTime: fi.ModTime()})
		return fnErr
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case fnErr != nil:
		return fnErr
	}
	return fmt.Errorf("list %q in %s: %w", prefix, s, err)
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
