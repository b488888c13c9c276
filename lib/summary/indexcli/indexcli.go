// Package indexcli is the command line of pkgindex: the kong grammar and
// the Run methods, which only parse flags and call lib/summary and
// lib/summary/merge.
package indexcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/summary"
	"github.com/pkgbulk/pkgbulk/lib/summary/merge"
)

// Description is pkgindex's --help text.
const Description = `Build pkg_summary(5) files from binary packages or from the per-package
fragments pkgrun stores, and publish them atomically.

  pkgindex fragment PKGFILE...      print each package's entry exactly as
                                    'pkg_info -X PKGFILE' would
  pkgindex merge --store URL        collect index/<PKGNAME>.pkginfo fragments
                                    (computing missing or stale ones from
                                    All/<PKGNAME>.tgz), publish
                                    All/pkg_summary{,.gz,.bz2,.xz} and, with
                                    --sha512, SHA512.bz2

Packages are read as pkg_add reads them: gzip, bzip2, xz, zstd or plain tar,
or signed ar containers, detected from their contents. Only the metadata in
front of the payload is read, unless --cksum or --sha512 needs every byte.

Store URLs: file:///dir or a plain directory path, sftp://user@host/dir,
s3://bucket/prefix (see docs/stores.md).

Exit status: 0 success; 1 some packages could not be read (they are left
out, everything else is done); 2 bad usage, bad input or a store/I-O error.`

// Command is the pkgindex grammar.
type Command struct {
	Fragment FragmentCmd `cmd:"" help:"Print the pkg_summary entry of each package file, as pkg_info -X does."`
	Merge    MergeCmd    `cmd:"" help:"Merge fragments and packages of a store into pkg_summary and publish it."`
}

// FragmentCmd is "pkgindex fragment".
type FragmentCmd struct {
	Cksum bool     `name:"cksum" help:"Add FILE_CKSUM=sha256 <hex> after FILE_SIZE (reads the whole file)."`
	Files []string `arg:"" name:"pkgfile" help:"Binary package files ('-' reads one package from stdin, printed without FILE_NAME and FILE_SIZE, as pkg_info does for a URL)."`
}

// Help is the long help of "pkgindex fragment".
func (c *FragmentCmd) Help() string {
	return `Entries are printed in argument order, each ending with a blank line, so that
'pkgindex fragment $(ls All/*.tgz | sort)' equals pbulk's pkg_summary. A file
that cannot be read is reported on stderr, skipped, and makes the exit
status 1.

Exit status: 0 all entries printed; 1 some files could not be read; 2 bad
usage or an I/O error.`
}

// Run prints the entries.
func (c *FragmentCmd) Run(ctx context.Context, g *cli.Globals) error {
	w := bufio.NewWriterSize(g.Stdout, 64<<10)
	var failed []string
	for _, f := range c.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		var e []byte
		var err error
		if f == "-" {
			e, err = entryFromStdin(g, c.Cksum)
		} else {
			e, err = summary.EntryFromFileOpts(f, summary.EntryOptions{Cksum: c.Cksum})
		}
		if err != nil {
			fmt.Fprintf(g.Stderr, "pkgindex: %v\n", err)
			failed = append(failed, f)
			continue
		}
		if _, err := w.Write(e); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return cli.Failed("%d of %d packages could not be read", len(failed), len(c.Files))
	}
	return nil
}

// errListed stops checkStore's listing after the first object.
var errListed = errors.New("listed")

// checkStore lists All/ up to its first object: what every tool needs from
// a store (a reachable server, valid credentials, an existing bucket).
func checkStore(ctx context.Context, s store.Store) error {
	err := s.List(ctx, "All/", func(store.Info) error { return errListed })
	if err != nil && !errors.Is(err, errListed) {
		return fmt.Errorf("store %s: %w", s, err)
	}
	return nil
}

func entryFromStdin(g *cli.Globals, cksum bool) ([]byte, error) {
	var r io.Reader = g.Stdin
	h := summary.NewCksum()
	if cksum {
		r = io.TeeReader(g.Stdin, h)
	}
	m, err := pkgfile.ReadMeta("<stdin>", r)
	if err != nil {
		return nil, err
	}
	if _, err := summary.PkgName(m); err != nil {
		return nil, fmt.Errorf("<stdin>: %w", err)
	}
	if !cksum {
		return summary.Entry(m, "", 0), nil
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("<stdin>: %w", err)
	}
	// Without a file name pkg_info prints no FILE_ lines; FILE_CKSUM is
	// still useful for a pipeline, so it is printed on its own.
	return summary.AppendEntry(nil, m, summary.File{Cksum: h.String()}), nil
}

// MergeCmd is "pkgindex merge".
type MergeCmd struct {
	Store       string `name:"store" required:"" placeholder:"URL" help:"Package store (file:///dir, a directory, sftp://, s3://)."`
	Suffix      string `name:"suffix" default:".tgz" help:"Package file suffix in All/ (pbulk's pkg_sufx)."`
	Success     string `name:"success" placeholder:"FILE" help:"Only packages listed in FILE (pbulk's meta/success: one PKGNAME a line); a listed package without a file fails."`
	Exclude     string `name:"exclude" placeholder:"FILE" help:"Leave out the PKGNAMEs listed in FILE (e.g. NO_BIN_ON_FTP packages; pbulk includes them)."`
	Formats     string `name:"formats" default:"plain,gz,bz2,xz" help:"Comma-separated forms to publish: plain (All/pkg_summary), gz, bz2, xz, zst."`
	SHA512      bool   `name:"sha512" help:"Also publish SHA512.bz2 (digest SHA512 lines of every package and pkg_summary file)."`
	Cksum       bool   `name:"cksum" help:"Recompute every entry with FILE_CKSUM=sha256 (reads every package whole; ignores fragments)."`
	Force       bool   `name:"force" help:"Publish even if the store already holds the same pkg_summary (by default an unchanged summary is left as it is)."`
	NoWriteBack bool   `name:"no-write-back" help:"Do not save computed fragments and digests in index/."`
	NoReuse     bool   `name:"no-reuse" help:"Read every fragment, even those unchanged since the last merge (whose entries are otherwise taken from the published summary on a remote store)."`
	Jobs        int    `name:"jobs" short:"j" default:"0" help:"Packages to read at once (default 4 x CPUs)."`
	Stdout      bool   `name:"stdout" help:"Write the uncompressed pkg_summary to stdout and publish nothing."`
	JSON        bool   `name:"json" help:"Print a JSON summary of the merge on stdout (not with --stdout)."`
	Verbose     bool   `name:"verbose" short:"v" help:"Print a summary line on stderr (always shown on a terminal)."`
	CheckStore  bool   `name:"check-store" help:"Only check that the store can be opened and its All/ listed, then exit (0: usable; 2: not, with the reason); reads and publishes nothing. For scripts that check their settings first."`

	Access job.StoreAccess `embed:"" group:"Store access"`
}

// Help is the long help of "pkgindex merge".
func (c *MergeCmd) Help() string {
	return `Entries are sorted by package file name in byte order, as pbulk's
'sort | xargs pkg_info -X' does. A fragment index/<PKGNAME>.pkginfo is used when
it is not older than its package and its FILE_NAME and FILE_SIZE match the
stored file (a signed package differs in size, so its fragment is redone);
otherwise the entry is computed from the package and saved as its fragment.

On a remote store (sftp://, s3://), where each fragment is a round trip, a
package and its fragment that are unchanged since the last merge listed them
(same size, strictly older than the newest object it saw) keep their entry
from the published pkg_summary (and, with --sha512, their digests from
SHA512.bz2), as recorded in index/merge-state.json; only new and changed
packages are read. Deleting a fragment, or --no-reuse, makes
the merge read it again.

Every file is replaced atomically (temporary name, then rename). The
pkg_summary files are published first, SHA512.bz2 last: a client that fetches
SHA512.bz2 and then the files it lists gets matching files. The JSON summary
has: store, packages, reused, from_fragments, computed, stale, excluded, failed
[{pkgname, error}], published, unchanged, summary_bytes, read_seconds,
publish_seconds, seconds.

When every published file already exists and holds the same summary, nothing
is compressed or rewritten ("unchanged": true); --force rewrites anyway.

Packages that cannot be read (not a package, truncated, metadata beyond the
limits in docs/stores.md, "Packages"), that have no @name, or whose @name is not their
file name, are left out and reported on stderr with the file and the reason;
the rest is published. If none can be read, nothing is published. A store
that fails while a package is read stops the merge (exit 2).

Exit status: 0 published (or unchanged); 1 some packages could not be read or
a package listed in --success is missing; 2 bad usage, bad input or a store
error (nothing published).`
}

// Run merges and publishes.
func (c *MergeCmd) Run(ctx context.Context, g *cli.Globals) error {
	if c.Stdout && c.JSON {
		return fmt.Errorf("--json and --stdout both write to stdout; pick one")
	}
	o := merge.Options{
		Suffix: c.Suffix, SHA512: c.SHA512, Force: c.Force, Cksum: c.Cksum, NoWriteBack: c.NoWriteBack, NoReuse: c.NoReuse, Workers: c.Jobs,
	}
	for _, f := range strings.Split(c.Formats, ",") {
		if f = strings.TrimSpace(f); f != "" {
			o.Formats = append(o.Formats, f)
		}
	}
	if len(o.Formats) == 0 && !c.Stdout {
		return fmt.Errorf("--formats is empty")
	}
	if c.Success != "" {
		l, err := merge.ReadList(c.Success)
		if err != nil {
			return err
		}
		o.Success = l
		if o.Success == nil {
			o.Success = []string{}
		}
	}
	if c.Exclude != "" {
		l, err := merge.ReadList(c.Exclude)
		if err != nil {
			return err
		}
		o.Exclude = map[string]bool{}
		for _, n := range l {
			o.Exclude[n] = true
		}
	}
	if c.Stdout {
		o.Output = g.Stdout
	}
	if cli.IsTerminal(g.Stderr) {
		o.Progress = g.Stderr
	}
	s, err := storeopen.Open(ctx, c.Store, storeopen.Options{StoreAccess: c.Access})
	if err != nil {
		return err
	}
	defer s.Close()
	if c.CheckStore {
		return checkStore(ctx, s)
	}
	res, err := merge.Merge(ctx, s, o)
	if errors.Is(err, merge.ErrNothingIndexed) {
		return cli.Failed("%v", err)
	}
	if err != nil {
		return err
	}
	for _, f := range res.Failed {
		fmt.Fprintf(g.Stderr, "pkgindex: %s: %s\n", f.PkgName, f.Error)
	}
	if c.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if c.Verbose || cli.IsTerminal(g.Stderr) {
		fmt.Fprintf(g.Stderr, "pkgindex: %d packages (%d reused, %d from fragments, %d computed, %d failed) published to %s: %s\n",
			res.Packages, res.Reused, res.FromFragments, res.Computed, len(res.Failed), res.Store, strings.Join(res.Published, " "))
	}
	if len(res.Failed) > 0 {
		return cli.Failed("%d packages could not be indexed", len(res.Failed))
	}
	return nil
}
