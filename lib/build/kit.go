package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/beneath"
)

// A bootstrap kit is pbulk's: a tarball of a bootstrapped prefix and its
// pkgdb (and VARBASE, when it holds anything), with paths relative to /
// (usr/pkg/bin/bmake, usr/pkg/pkgdb/..., or /usr/pkg/... with a leading
// slash). pbulk unpacks it at / before each build; pkgrun unpacks it once
// per work root into <work root>/.kits/<sha256 of the kit>/ and gives
// every job an overlay of each of the kit's roots, with a private upper
// directory: the job sees the kit at the paths it was made for, installs
// its dependencies over it, and the next job starts from the kit again.
//
// The roots are the kit's directories (or files) at the first level below
// the usual system directories: with /, /usr, /usr/local, /var, /var/db,
// /var/lib, /opt and /etc taken as system directories, a kit of usr/pkg/...
// and var/db/pkg/... has the roots /usr/pkg and /var/db/pkg, and an
// etc/mk.conf is a file root. Whatever the host has at a root is not seen.

// systemDirs are the directories a kit's roots lie in, never roots
// themselves.
var systemDirs = map[string]bool{
	"usr": true, "usr/local": true, "var": true, "var/db": true, "var/lib": true,
	"opt": true, "etc": true,
}

// kitLimit bounds what a kit may unpack to (a decompression bomb is an
// error, not a full disk).
const kitLimit = 8 << 30

// kit is an unpacked bootstrap kit.
type kit struct {
	dir   string    // host directory holding the unpacked tree
	roots []kitRoot // where its parts go in a sandbox
	// The kit's pkg_install and make, as sandbox paths ("" when absent).
	pkgAdd, pkgDelete, make string
}

type kitRoot struct {
	path string // absolute path in the sandbox, e.g. /usr/pkg
	dir  bool
}

// openKit unpacks the kit file into workRoot/.kits/ unless it is there
// already, and describes it.
func openKit(file, workRoot string) (*kit, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	cache := filepath.Join(workRoot, ".kits")
	dir := filepath.Join(cache, sum)
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(cache, "unpack.")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := os.Chmod(tmp, 0o755); err != nil {
			return nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if err := unpackKit(f, tmp); err != nil {
			return nil, err
		}
		// Another job may have unpacked the same kit meanwhile: either
		// copy is complete, so keep whichever is there.
		if err := os.Rename(tmp, dir); err != nil {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, err
			}
		}
	}
	k := &kit{dir: dir}
	if err := k.findRoots(""); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(k.roots) == 0 {
		return nil, fmt.Errorf("%s: the kit is empty", file)
	}
	for _, r := range k.roots {
		if !r.dir {
			continue
		}
		for _, tool := range []struct {
			dst  *string
			name string
		}{{&k.pkgAdd, "sbin/pkg_add"}, {&k.pkgDelete, "sbin/pkg_delete"}, {&k.make, "bin/bmake"}} {
			if *tool.dst != "" {
				continue
			}
			if fi, err := os.Stat(filepath.Join(dir, r.path, tool.name)); err == nil && fi.Mode().IsRegular() {
				*tool.dst = path.Join(r.path, tool.name)
			}
		}
	}
	return k, nil
}

// findRoots walks the system directories of the unpacked kit below rel.
func (k *kit) findRoots(rel string) error {
	ents, err := os.ReadDir(filepath.Join(k.dir, rel))
	if err != nil {
		return err
	}
	for _, e := range ents {
		r := path.Join(rel, e.Name())
		switch {
		case e.IsDir() && systemDirs[r]:
			if err := k.findRoots(r); err != nil {
				return err
			}
		case e.IsDir() || e.Type().IsRegular():
			k.roots = append(k.roots, kitRoot{path: "/" + r, dir: e.IsDir()})
		default:
			return fmt.Errorf("/%s is a %v, not a directory or a file: it cannot be a root of the kit", r, e.Type())
		}
	}
	return nil
}

// unpackKit extracts the tar (optionally compressed) r into dir. Every
// entry is written beneath dir, never through a link (see lib/beneath):
// a kit that would write outside is refused.
func unpackKit(r io.Reader, dir string) error {
	tr, closer, err := openTar(r)
	if err != nil {
		return err
	}
	defer closer()
	d, err := beneath.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	var total int64
	placed := map[string]string{} // archive name -> where it went, for hard links
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimLeft(h.Name, "/"))
		if name == "." {
			continue
		}
		if name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q is outside the kit", h.Name)
		}
		total += h.Size
		if total > kitLimit {
			return fmt.Errorf("the kit unpacks to more than %d bytes", int64(kitLimit))
		}
		if h.Typeflag == tar.TypeLink {
			// Kits made by tar -czf /usr/pkg name link targets from /.
			h.Linkname = path.Clean(strings.TrimLeft(h.Linkname, "/"))
		}
		if err := writeEntry(d, tr, h, name, placed); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		placed[name] = name
	}
}
