// Package beneath creates, links, reads and removes files inside one
// directory tree without ever leaving it, whatever symbolic links the tree
// holds: what a package's payload or a bootstrap kit puts into a prefix
// (a link "lib -> /etc" followed by "lib/passwd", a relative link that
// climbs out, a hard link to a file reached through a link) cannot make it
// write, link or remove anything outside.
//
// Every path is resolved by openat2(2) against the tree's directory with
// RESOLVE_BENEATH and RESOLVE_NO_MAGICLINKS: a symbolic link inside the
// tree is followed only while it stays inside (absolute links are
// refused), ".." may not climb above the tree, and /proc's magic links are
// never followed. The last component of a path is never followed: a
// file is created with O_EXCL|O_NOFOLLOW, a link replaces nothing, and
// Remove removes the link itself. A refusal is an error wrapping
// ErrOutside.
package beneath

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrOutside is wrapped by the errors of operations whose path leads out
// of the tree.
var ErrOutside = errors.New("path leads outside the tree")

const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// Dir is an open directory tree.
type Dir struct {
	fd   int
	name string
}

// Open opens the tree at dir.
func Open(dir string) (*Dir, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Dir{fd: fd, name: dir}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// Name is the tree's path as opened.
func (d *Dir) Name() string { return d.name }

// clean checks a relative path and returns it cleaned.
func clean(rel string) (string, error) {
	c := path.Clean(rel)
	if path.IsAbs(rel) || c == ".." || strings.HasPrefix(c, "../") || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%q: %w", rel, ErrOutside)
	}
	return c, nil
}

func (d *Dir) err(op, rel string, err error) error {
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w (%v)", ErrOutside, err)
	}
	return &os.PathError{Op: op, Path: path.Join(d.name, rel), Err: err}
}

// parent opens the directory holding rel and returns it with rel's last
// component. The caller closes the descriptor (unless it is d.fd).
func (d *Dir) parent(rel string) (int, string, error) {
	c, err := clean(rel)
	if err != nil {
		return -1, "", err
	}
	if c == "." {
		return -1, "", fmt.Errorf("%q: the tree's own directory", rel)
	}
	dir, base := path.Split(c)
	if dir == "" {
		return d.fd, base, nil
	}
	fd, err := unix.Openat2(d.fd, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolve})
	if err != nil {
		return -1, "", d.err("open", dir, err)
	}
	return fd, base, nil
}

func (d *Dir) release(fd int) {
	if fd != d.fd && fd >= 0 {
		unix.Close(fd)
	}
}

// MkdirAll makes rel and its missing parents, each with perm.
func (d *Dir) MkdirAll(rel string, perm os.FileMode) error {
	c, err := clean(rel)
	if err != nil {
		return err
	}
	if c == "." {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(c, "/") {
		cur = path.Join(cur, part)
		fd, base, err := d.parent(cur)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(fd, base, uint32(perm.Perm()))
		if errors.Is(err, unix.EEXIST) {
			// It must be a directory beneath the tree (a link to one
			// inside is fine; a link out is refused here).
			var dfd int
			dfd, err = unix.Openat2(d.fd, cur, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolve})
			if err == nil {
				unix.Close(dfd)
			}
		}
		d.release(fd)
		if err != nil {
			return d.err("mkdir", cur, err)
		}
	}
	return nil
}

// Create makes the new file rel (which must not exist) with perm, its
// parents first.
func (d *Dir) Create(rel string, perm os.FileMode) (*os.File, error) {
	if err := d.MkdirAll(path.Dir(rel), 0o755); err != nil {
		return nil, err
	}
	fd, base, err := d.parent(rel)
	if err != nil {
		return nil, err
	}
	defer d.release(fd)
	f, err := unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, d.err("create", rel, err)
	}
	return os.NewFile(uintptr(f), path.Join(d.name, rel)), nil
}

// WriteFile writes data to rel, replacing a file (or link) of that name,
// and sets mode (with setuid/setgid/sticky bits as given).
func (d *Dir) WriteFile(rel string, data io.Reader, mode os.FileMode) error {
	if err := d.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := d.Create(rel, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Symlink makes rel a symbolic link to target (any text: it is never
// followed by this package out of the tree), replacing a file of that
// name.
func (d *Dir) Symlink(target, rel string) error {
	if err := d.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := d.MkdirAll(path.Dir(rel), 0o755); err != nil {
		return err
	}
	fd, base, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer d.release(fd)
	if err := unix.Symlinkat(target, fd, base); err != nil {
		return d.err("symlink", rel, err)
	}
	return nil
}

// Link makes newrel a hard link to the file oldrel (the link itself when
// oldrel is one), both beneath the tree, replacing a file named newrel.
func (d *Dir) Link(oldrel, newrel string) error {
	ofd, obase, err := d.parent(oldrel)
	if err != nil {
		return err
	}
	defer d.release(ofd)
	if err := d.Remove(newrel); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := d.MkdirAll(path.Dir(newrel), 0o755); err != nil {
		return err
	}
	nfd, nbase, err := d.parent(newrel)
	if err != nil {
		return err
	}
	defer d.release(nfd)
	if err := unix.Linkat(ofd, obase, nfd, nbase, 0); err != nil {
		return d.err("link", newrel, err)
	}
	return nil
}

// Remove removes the file, link or empty directory rel.
func (d *Dir) Remove(rel string) error {
	fd, base, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer d.release(fd)
	err = unix.Unlinkat(fd, base, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		if err2 := unix.Unlinkat(fd, base, unix.AT_REMOVEDIR); err2 == nil || !errors.Is(err2, unix.ENOTDIR) {
			err = err2
		}
	}
	if err != nil {
		return d.err("remove", rel, err)
	}
	return nil
}

// ReadFile reads the file rel (following links only beneath the tree).
func (d *Dir) ReadFile(rel string, limit int64) ([]byte, error) {
	c, err := clean(rel)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat2(d.fd, c, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: resolve})
	if err != nil {
		return nil, d.err("open", rel, err)
	}
	f := os.NewFile(uintptr(fd), path.Join(d.name, rel))
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", f.Name(), limit)
	}
	return b, nil
}

// Lstat describes rel without following its last component.
func (d *Dir) Lstat(rel string) (os.FileInfo, error) {
	fd, base, err := d.parent(rel)
	if err != nil {
		return nil, err
	}
	defer d.release(fd)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, d.err("lstat", rel, err)
	}
	return fileInfo{name: base, st: st}, nil
}

// fileInfo is the little of os.FileInfo the callers need.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func (fi fileInfo) Name() string { return fi.name }
func (fi fileInfo) Size() int64  { return fi.st.Size }
func (fi fileInfo) Mode() os.FileMode {
	m := os.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= os.ModeDir
	case syscall.S_IFLNK:
		m |= os.ModeSymlink
	case syscall.S_IFREG:
	default:
		m |= os.ModeIrregular
	}
	return m
}
func (fi fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi fileInfo) Sys() any           { return &fi.st }
