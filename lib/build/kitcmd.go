package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/gzip"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
)

// KitCommand is `pkgrun kit`: it bootstraps a pkgsrc tree in a sandbox and
// writes the bootstrapped prefix (with its pkgdb) and VARBASE as a
// bootstrap kit in pbulk's form, without touching the host's /usr/pkg.
type KitCommand struct {
	Pkgsrc   string   `required:"" help:"pkgsrc tree root (read-only: bootstrap writes into a private layer over it)." placeholder:"DIR"`
	Output   string   `short:"o" required:"" help:"The kit to write (a .tar.gz)." placeholder:"FILE"`
	Prefix   string   `default:"/usr/pkg" help:"bootstrap --prefix: LOCALBASE of the kit." placeholder:"DIR"`
	Varbase  string   `default:"/var/pkgvar" help:"bootstrap --varbase." placeholder:"DIR"`
	WorkRoot string   `help:"Scratch directory (default $TMPDIR/pkgrun)." placeholder:"DIR"`
	Env      []string `sep:"none" help:"KEY=VALUE for bootstrap's environment (repeatable), e.g. SH=/bin/bash or CFLAGS=-fcommon on current Linux." placeholder:"KEY=VALUE"`
	Args     []string `arg:"" optional:"" passthrough:"" help:"More arguments for bootstrap (after --)."`
}

// KitDescription is `pkgrun kit --help`'s text.
const KitDescription = `Make a bootstrap kit: run pkgsrc's bootstrap in a sandbox (the tree
read-only with a private writable layer, the prefix and VARBASE empty
directories of the sandbox, no network) and write the bootstrapped prefix,
its pkgdb and VARBASE as a gzipped tarball with paths relative to /, the
form pbulk's bootstrapkit takes. The host's own /usr/pkg is never touched.

Example (pkgsrc 2018 on Debian 12):
  pkgrun kit --pkgsrc /usr/pkgsrc -o /bulk/kit.tar.gz --env SH=/bin/bash --env CFLAGS=-fcommon`

// Help is kong's long help for the kit command.
func (c *KitCommand) Help() string { return KitDescription }

// Run is pkgrun kit.
func (c *KitCommand) Run(ctx context.Context, g *cli.Globals) error {
	for _, d := range []struct{ name, val string }{{"--prefix", c.Prefix}, {"--varbase", c.Varbase}} {
		if !filepath.IsAbs(d.val) || filepath.Clean(d.val) != d.val || d.val == "/" {
			return fmt.Errorf("%s %q is not a clean absolute path below /", d.name, d.val)
		}
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("--env %q is not KEY=VALUE", kv)
		}
	}
	tree, err := filepath.Abs(c.Pkgsrc)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Join(tree, "bootstrap", "bootstrap")); err != nil || fi.IsDir() {
		return fmt.Errorf("%s has no bootstrap/bootstrap: not a pkgsrc tree", tree)
	}
	if err := sandbox.Available(); err != nil {
		return err
	}
	workRoot := c.WorkRoot
	if workRoot == "" {
		workRoot = filepath.Join(os.TempDir(), "pkgrun")
	}
	if err := os.MkdirAll(workRoot, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(workRoot, "kit.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	d := func(n string) string { return filepath.Join(dir, n) }
	for _, n := range []string{"root", "tmp", "prefix", "varbase", "tree-upper", "tree-work"} {
		if err := os.Mkdir(d(n), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(d("tmp"), 0o1777)
	var log *os.File
	if log, err = os.Create(d("bootstrap.log")); err != nil {
		return err
	}
	defer log.Close()
	var out io.Writer = log
	if cli.IsTerminal(g.Stderr) {
		out = io.MultiWriter(log, g.Stderr)
	}
	script := `cd "$1/bootstrap" && shift && exec ./bootstrap "$@"`
	args := append([]string{"-c", script, "sh", tree, "--prefix", c.Prefix, "--varbase", c.Varbase, "--workdir", "/tmp/bootstrap-work"}, c.Args...)
	env := append([]string{"PATH=" + defaultPath, "HOME=/tmp", "SHELL=/bin/sh", "TERM=dumb"}, c.Env...)
	spec := sandbox.Spec{
		Root: d("root"),
		Mounts: []sandbox.Mount{
			{Target: "/tmp", Source: d("tmp"), Writable: true},
			{Target: c.Prefix, Source: d("prefix"), Writable: true},
			{Target: c.Varbase, Source: d("varbase"), Writable: true},
			{Target: tree, Lower: []string{tree}, Upper: d("tree-upper"), Work: d("tree-work")},
		},
		Hide: []string{workRoot},
		Cmd:  sandbox.Cmd{Path: "/bin/sh", Args: args, Dir: "/", Env: env},
	}
	res, err := sandbox.Run(ctx, spec, proc.Cmd{Output: out})
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !res.OK() {
		log.Sync()
		return fmt.Errorf("bootstrap failed (%s); its output ends:\n%s", describe(res), tail(d("bootstrap.log"), 30))
	}
	af, err := atomicfile.Create(c.Output)
	if err != nil {
		return err
	}
	defer af.Abort()
	zw := gzip.NewWriter(af)
	tw := tar.NewWriter(zw)
	for _, part := range []struct{ host, at string }{{d("prefix"), c.Prefix}, {d("varbase"), c.Varbase}} {
		if err := tarTree(tw, part.host, strings.TrimPrefix(part.at, "/")); err != nil {
			return fmt.Errorf("write the kit: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := af.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "pkgrun: wrote the bootstrap kit %s (%s and %s)\n", c.Output, c.Prefix, c.Varbase)
	return nil
}

// tarTree writes the tree at dir into tw under the name at (no leading
// slash), the directory itself first; an empty tree writes nothing.
// Hard links of the tree stay hard links.
func tarTree(tw *tar.Writer, dir, at string) error {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return err
	}
	links := map[uint64]string{}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := path.Join(at, filepath.ToSlash(rel))
		fi, err := e.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = name
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st != nil && fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			links[st.Ino] = name
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

// tail is the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
