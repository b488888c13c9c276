package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

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
	if _, err := os.Stat(dbdir); err == nil {
		return pkg, fmt.Errorf("%s is already installed in %s", pkg, in.pkgdb)
	}
	pl, dest, err := relocate(pl, in.prefix)
	if err != nil {
		return pkg, fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprintf(in.log, "pkgrun: installing %s from %s into %s\n", pkg, file, in.prefix)

	// Register first, as pkg_add does, so +INSTALL can find its metadata.
	if err := os.MkdirAll(dbdir, 0o755); err != nil {
		return pkg, err
	}
	meta["+CONTENTS"] = formatPlist(pl)
	for name, b := range meta {
		mode := os.FileMode(0o644)
		if name == "+INSTALL" || name == "+DEINSTALL" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dbdir, name), b, mode); err != nil {
			return pkg, err
		}
	}
	if err := in.runScript(ctx, dbdir, pkg, "+INSTALL", "PRE-INSTALL"); err != nil {
		os.RemoveAll(dbdir)
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
		if err := writeEntry(tr, h, target, placed); err != nil {
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
		if err := os.MkdirAll(filepath.Join(in.prefix, d), 0o755); err != nil {
			return pkg, err
		}
	}
	if err := in.runScript(ctx, dbdir, pkg, "+INSTALL", "POST-INSTALL"); err != nil {
		return pkg, err
	}
	return pkg, nil
}

// relocate rewrites the @cwd lines of pl for an installation into prefix
// and returns, for each file name, where the archive entries of that name
// go, in packing-list order.
func relocate(pl []pkgfile.PlistEntry, prefix string) ([]pkgfile.PlistEntry, map[string][]string, error) {
	out := make([]pkgfile.PlistEntry, len(pl))
	copy(out, pl)
	dest := map[string][]string{}
	orig, cwd := "", prefix
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
				cwd = prefix
			case a == orig:
				cwd = prefix
			case strings.HasPrefix(a, orig+"/"):
				cwd = filepath.Join(prefix, strings.TrimPrefix(a, orig+"/"))
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
			dest[name] = append(dest[name], filepath.Join(cwd, name))
		}
	}
	return out, dest, nil
}

func writeEntry(tr *tar.Reader, h *tar.Header, target string, placed map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeDir {
		if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeReg:
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o7777)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Chmod(target, os.FileMode(h.Mode)&0o7777)
	case tar.TypeSymlink:
		return os.Symlink(h.Linkname, target)
	case tar.TypeLink:
		src, ok := placed[path.Clean(h.Linkname)]
		if !ok {
			return fmt.Errorf("hard link to %q, which was not installed before it", h.Linkname)
		}
		return os.Link(src, target)
	case tar.TypeDir:
		return os.MkdirAll(target, 0o755)
	}
	return fmt.Errorf("unsupported archive entry type %q", h.Typeflag)
}

// deinstall removes the registered package pkg: its files per the
// registered +CONTENTS, directories that became empty (up to, not
// including, the prefix) and its pkgdb entry. A file that is already gone
// is reported in the log and makes the deinstall fail, since the deinstall
// test exists to catch packing lists that do not match the files.
func (in *installer) deinstall(ctx context.Context, pkg string) error {
	dbdir := filepath.Join(in.pkgdb, pkg)
	b, err := os.ReadFile(filepath.Join(dbdir, "+CONTENTS"))
	if err != nil {
		return fmt.Errorf("%s is not installed: %w", pkg, err)
	}
	if rb, err := os.ReadFile(filepath.Join(dbdir, "+REQUIRED_BY")); err == nil && strings.TrimSpace(string(rb)) != "" {
		return fmt.Errorf("%s is required by other installed packages: %s", pkg, strings.Join(strings.Fields(string(rb)), " "))
	}
	fmt.Fprintf(in.log, "pkgrun: deinstalling %s from %s\n", pkg, in.prefix)
	if err := in.runScript(ctx, dbdir, pkg, "+DEINSTALL", "DEINSTALL"); err != nil {
		return err
	}
	pl := parsePlist(b)
	cwd := in.prefix
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
			cwd = filepath.Clean(l.Arg)
			if cwd != in.prefix && !strings.HasPrefix(cwd, in.prefix+"/") {
				return fmt.Errorf("%s: registered @cwd %s is outside %s", pkg, cwd, in.prefix)
			}
		case "":
			if ignore || cwd == "" {
				ignore = false
				continue
			}
			p := filepath.Join(cwd, path.Clean(l.Arg))
			if !strings.HasPrefix(p, in.prefix+"/") {
				return fmt.Errorf("%s: %q is outside %s", pkg, l.Arg, in.prefix)
			}
			if err := os.Remove(p); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					missing = append(missing, p)
					continue
				}
				return fmt.Errorf("%s: %w", pkg, err)
			}
			dirs[filepath.Dir(p)] = true
		case "pkgdir", "dirrm":
			dirs[filepath.Join(in.prefix, l.Arg)] = true
		}
	}
	// Deepest first, then climb while empty.
	var list []string
	for d := range dirs {
		list = append(list, d)
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	for _, d := range list {
		for d != in.prefix && strings.HasPrefix(d, in.prefix+"/") {
			if os.Remove(d) != nil {
				break
			}
			d = filepath.Dir(d)
		}
	}
	if err := in.runScript(ctx, dbdir, pkg, "+DEINSTALL", "POST-DEINSTALL"); err != nil {
		return err
	}
	if err := os.RemoveAll(dbdir); err != nil {
		return err
	}
	if len(missing) > 0 {
		for _, m := range missing {
			fmt.Fprintf(in.log, "pkgrun: %s: file %s listed in +CONTENTS was missing\n", pkg, m)
		}
		return fmt.Errorf("%s: %d file(s) of its +CONTENTS were missing at deinstall", pkg, len(missing))
	}
	return nil
}

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
