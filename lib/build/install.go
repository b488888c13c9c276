package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/beneath"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
)

// installer puts binary packages into a job's prefix and takes them out
// again the way pkg_add -K pkgdb -p prefix and pkg_delete -K pkgdb do, for
// hosts without pkgsrc's pkg_install (such as a Debian build host):
//
//   - the first @cwd of the packing list is replaced by the prefix
//     (pkg_add -p); a later @cwd inside the original prefix is moved along
//     with it, one outside it is refused, since a job must never write
//     outside its own directories;
//   - each payload entry goes to the @cwd in effect where the packing list
//     names it; an entry the packing list does not name is an error;
//   - the metadata files are registered in <pkgdb>/<PKGNAME>/, with the
//     +CONTENTS rewritten to the prefix it was installed into, which is
//     what the deinstall reads back;
//   - +INSTALL runs with PRE-INSTALL and POST-INSTALL, +DEINSTALL with
//     DEINSTALL and POST-DEINSTALL, as pkg_install runs them.
//
// Every file operation stays beneath the prefix and the pkgdb (lib/beneath):
// a package whose payload or packing list would write, link or remove
// through a symbolic link or a ".." path out of them is refused, with an
// error that names the entry. pkgrun runs it inside the job's sandbox.
//
// Owners, groups and @exec/@unexec commands are not applied.
type installer struct {
	prefix string
	pkgdb  string
	log    io.Writer
	// script runs an install script (argv[0] is the script path) in dir
	// with the extra environment; nil skips scripts.
	script func(ctx context.Context, dir string, env []string, argv ...string) error
}

// install installs the package file at file.
func (in *installer) install(ctx context.Context, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	meta, err := readMeta(file, f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	pl := parsePlist(meta["+CONTENTS"])
	names := plistValues(pl, "name")
	if len(names) == 0 || names[0] == "" || strings.ContainsAny(names[0], "/ ") {
		return "", fmt.Errorf("%s: +CONTENTS has no valid @name", file)
	}
	pkg := names[0]
	dbdir := filepath.Join(in.pkgdb, pkg)
	if err := os.MkdirAll(in.prefix, 0o755); err != nil {
		return pkg, err
	}
	if err := os.MkdirAll(in.pkgdb, 0o755); err != nil {
		return pkg, err
	}
	prefix, err := beneath.Open(in.prefix)
	if err != nil {
		return pkg, err
	}
	defer prefix.Close()
	db, err := beneath.Open(in.pkgdb)
	if err != nil {
		return pkg, err
	}
	defer db.Close()
	if _, err := db.Lstat(pkg); err == nil {
		return pkg, fmt.Errorf("%s is already installed in %s", pkg, in.pkgdb)
	}
	pl, dest, err := relocate(pl, in.prefix)
	if err != nil {
		return pkg, fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprintf(in.log, "pkgrun: installing %s from %s into %s\n", pkg, file, in.prefix)

	// Register first, as pkg_add does, so +INSTALL can find its metadata.
	if err := db.MkdirAll(pkg, 0o755); err != nil {
		return pkg, err
	}
	meta["+CONTENTS"] = formatPlist(pl)
	for name, b := range meta {
		mode := os.FileMode(0o644)
		if name == "+INSTALL" || name == "+DEINSTALL" {
			mode = 0o755
		}
		if err := db.WriteFile(pkg+"/"+name, bytes.NewReader(b), mode); err != nil {
			return pkg, err
		}
	}
	if err := in.runScript(ctx, dbdir, pkg, "+INSTALL", "PRE-INSTALL"); err != nil {
		in.unregister(db, pkg)
		return pkg, err
	}

	// The payload: a second pass over the file, skipping the metadata.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return pkg, err
	}
	tr, closer, err := openTar(f)
	if err != nil {
		return pkg, err
	}
	defer closer()
	placed := map[string]string{} // archive name -> installed path, for hard links
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return pkg, fmt.Errorf("read %s: %w", file, err)
		}
		if strings.HasPrefix(h.Name, "+") && !strings.Contains(h.Name, "/") {
			continue
		}
		name := path.Clean(h.Name)
		q := dest[name]
		if len(q) == 0 {
			if h.Typeflag == tar.TypeDir {
				continue
			}
			return pkg, fmt.Errorf("%s: archive entry %q is not in +CONTENTS", file, h.Name)
		}
		target := q[0]
		dest[name] = q[1:]
		if err := writeEntry(prefix, tr, h, target, placed); err != nil {
			return pkg, fmt.Errorf("%s: install %s: %w", file, h.Name, err)
		}
		placed[name] = target
	}
	for name, q := range dest {
		if len(q) > 0 {
			return pkg, fmt.Errorf("%s: +CONTENTS lists %q but the archive has no such entry", file, name)
		}
	}
	for _, d := range plistValues(pl, "pkgdir") {
		if err := prefix.MkdirAll(d, 0o755); err != nil {
			return pkg, fmt.Errorf("%s: @pkgdir %s: %w", file, d, err)
		}
	}
	if err := in.runScript(ctx, dbdir, pkg, "+INSTALL", "POST-INSTALL"); err != nil {
		return pkg, err
	}
	return pkg, nil
}

// relocate rewrites the @cwd lines of pl for an installation into prefix
// and returns, for each file name, where the archive entries of that name
// go (paths relative to the prefix), in packing-list order.
func relocate(pl []pkgfile.PlistEntry, prefix string) ([]pkgfile.PlistEntry, map[string][]string, error) {
	out := make([]pkgfile.PlistEntry, len(pl))
	copy(out, pl)
	dest := map[string][]string{}
	orig, cwd, rel := "", prefix, "."
	ignore := false
	for i, l := range out {
		switch l.Cmd {
		case "ignore":
			// The next file is metadata (+COMMENT, ...), not payload.
			ignore = true
		case "cwd", "cd":
			a := path.Clean(l.Arg)
			switch {
			case !path.IsAbs(a):
				// pkg_create's "@cwd ." before the @ignore'd metadata:
				// nothing may be installed relative to it.
				cwd = ""
				continue
			case orig == "":
				orig = a
				cwd, rel = prefix, "."
			case a == orig:
				cwd, rel = prefix, "."
			case strings.HasPrefix(a, orig+"/"):
				rel = strings.TrimPrefix(a, orig+"/")
				cwd = filepath.Join(prefix, rel)
			default:
				return nil, nil, fmt.Errorf("@cwd %s is outside the package's prefix %s", l.Arg, orig)
			}
			out[i].Arg = cwd
		case "":
			if ignore {
				ignore = false
				continue
			}
			name := path.Clean(l.Arg)
			if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
				return nil, nil, fmt.Errorf("+CONTENTS names %q outside its @cwd", l.Arg)
			}
			if cwd == "" {
				return nil, nil, fmt.Errorf("+CONTENTS names %q under a relative @cwd", l.Arg)
			}
			dest[name] = append(dest[name], path.Join(rel, name))
		}
	}
	return out, dest, nil
}

// writeEntry writes one payload entry at rel beneath d; a hard link names
// an earlier entry, by its archive name, through placed.
func writeEntry(d *beneath.Dir, tr *tar.Reader, h *tar.Header, rel string, placed map[string]string) error {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		return d.WriteFile(rel, tr, os.FileMode(h.Mode)&os.ModePerm|setBits(h.Mode))
	case tar.TypeSymlink:
		return d.Symlink(h.Linkname, rel)
	case tar.TypeLink:
		src, ok := placed[path.Clean(h.Linkname)]
		if !ok {
			return fmt.Errorf("hard link to %q, which was not installed before it", h.Linkname)
		}
		return d.Link(src, rel)
	case tar.TypeDir:
		return d.MkdirAll(rel, 0o755)
	}
	return fmt.Errorf("unsupported archive entry type %q", h.Typeflag)
}

// setBits are the setuid, setgid and sticky bits of a tar mode as an
// os.FileMode.
func setBits(mode int64) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// deinstall removes the registered package pkg: its files per the
// registered +CONTENTS, directories that became empty (up to, not
// including, the prefix) and its pkgdb entry. A file that is already gone
// is reported in the log and makes the deinstall fail, since the deinstall
// test exists to catch packing lists that do not match the files.
func (in *installer) deinstall(ctx context.Context, pkg string) error {
	if _, err := clean(pkg); err != nil || strings.Contains(pkg, "/") {
		return fmt.Errorf("%q is not a package name", pkg)
	}
	db, err := beneath.Open(in.pkgdb)
	if err != nil {
		return err
	}
	defer db.Close()
	prefix, err := beneath.Open(in.prefix)
	if err != nil {
		return err
	}
	defer prefix.Close()
	dbdir := filepath.Join(in.pkgdb, pkg)
	b, err := db.ReadFile(pkg+"/+CONTENTS", maxContents)
	if err != nil {
		return fmt.Errorf("%s is not installed: %w", pkg, err)
	}
	if rb, err := db.ReadFile(pkg+"/+REQUIRED_BY", maxContents); err == nil && strings.TrimSpace(string(rb)) != "" {
		return fmt.Errorf("%s is required by other installed packages: %s", pkg, strings.Join(strings.Fields(string(rb)), " "))
	}
	fmt.Fprintf(in.log, "pkgrun: deinstalling %s from %s\n", pkg, in.prefix)
	if err := in.runScript(ctx, dbdir, pkg, "+DEINSTALL", "DEINSTALL"); err != nil {
		return err
	}
	pl := parsePlist(b)
	cwd := "."
	dirs := map[string]bool{}
	var missing []string
	ignore := false
	for _, l := range pl {
		switch l.Cmd {
		case "ignore":
			ignore = true
		case "cwd", "cd":
			if !filepath.IsAbs(l.Arg) {
				cwd = ""
				continue
			}
			c := filepath.Clean(l.Arg)
			switch {
			case c == in.prefix:
				cwd = "."
			case strings.HasPrefix(c, in.prefix+"/"):
				cwd = strings.TrimPrefix(c, in.prefix+"/")
			default:
				return fmt.Errorf("%s: registered @cwd %s is outside %s", pkg, c, in.prefix)
			}
		case "":
			if ignore || cwd == "" {
				ignore = false
				continue
			}
			p := path.Join(cwd, path.Clean(l.Arg))
			if err := prefix.Remove(p); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					missing = append(missing, p)
					continue
				}
				return fmt.Errorf("%s: %w", pkg, err)
			}
			if d := path.Dir(p); d != "." {
				dirs[d] = true
			}
		case "pkgdir", "dirrm":
			if c, err := clean(l.Arg); err == nil && c != "." {
				dirs[c] = true
			}
		}
	}
	// Deepest first, then climb while empty.
	var list []string
	for d := range dirs {
		list = append(list, d)
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	for _, d := range list {
		for d != "." {
			if prefix.Remove(d) != nil {
				break
			}
			d = path.Dir(d)
		}
	}
	if err := in.runScript(ctx, dbdir, pkg, "+DEINSTALL", "POST-DEINSTALL"); err != nil {
		return err
	}
	if err := in.unregister(db, pkg); err != nil {
		return err
	}
	if len(missing) > 0 {
		for _, m := range missing {
			fmt.Fprintf(in.log, "pkgrun: %s: file %s listed in +CONTENTS was missing\n", pkg, path.Join(in.prefix, m))
		}
		return fmt.Errorf("%s: %d file(s) of its +CONTENTS were missing at deinstall", pkg, len(missing))
	}
	return nil
}

// unregister removes pkg's directory from the pkgdb.
func (in *installer) unregister(db *beneath.Dir, pkg string) error {
	dir := filepath.Join(in.pkgdb, pkg)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := db.Remove(pkg + "/" + e.Name()); err != nil {
			return err
		}
	}
	return db.Remove(pkg)
}

// clean checks a packing-list path: relative, without "..".
func clean(rel string) (string, error) {
	c := path.Clean(rel)
	if path.IsAbs(rel) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q is outside the prefix", rel)
	}
	return c, nil
}

// maxContents bounds the size of a registered metadata file read back.
const maxContents = 64 << 20

// runScript runs +INSTALL/+DEINSTALL when the package has one.
func (in *installer) runScript(ctx context.Context, dbdir, pkg, script, action string) error {
	p := filepath.Join(dbdir, script)
	if _, err := os.Stat(p); err != nil || in.script == nil {
		return nil
	}
	env := []string{
		"PKG_PREFIX=" + in.prefix,
		"PKG_METADATA_DIR=" + dbdir,
		"PKG_DBDIR=" + in.pkgdb,
		"PKG_REFCOUNT_DBDIR=" + in.pkgdb + ".refcount",
		"PKG_DESTDIR=",
	}
	if err := in.script(ctx, dbdir, env, "/bin/sh", p, pkg, action); err != nil {
		return fmt.Errorf("%s %s %s: %w", pkg, script, action, err)
	}
	return nil
}
