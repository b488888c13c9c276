package scanner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
	"github.com/pkgbulk/pkgbulk/lib/cli"
)

// Description is pkgscan's --help text.
const Description = `Scan a pkgsrc tree: run "make pbulk-index" in package directories, in
parallel, and write the records to stdout in pbulk-scan's format and order,
so the output can replace pbulk-scan's and feed pkgdag or pbulk-resolve.

Without LOCATION arguments, -l or --limited, the whole tree is scanned:
categories come from "make show-subdir-var VARNAME=SUBDIR" at the top,
package directories from the same in each category. With LOCATIONs
(category/dir) or -l FILE ("-l -": stdin), only those are scanned; "#"
starts a comment, blank lines are skipped, the list is sorted and
de-duplicated (as pbulk's scan driver does).

Limited builds: --limited FILE (pbulk's limited_list, "-" for stdin) scans
the listed locations, then every location their ALL_DEPENDS entries name
(PATTERN:../../category/dir), then those locations' dependencies, until no
new location appears, and writes the records of exactly that closure,
sorted by location (what "pkgscan -l" of the closure writes). Every listed
location must be a package directory of the tree: one that is not is an
error naming the list's file and line (exit 2). An entry that names no
location inside the tree is reported ("Incorrect dependency ...") and not
followed; a dependency's directory that does not exist fails to scan.

Records are written in the same order whatever -j is, each location as soon
as it and all before it are done. A location whose make fails, prints a NUL
byte or prints nothing is reported on stderr ("Scan failed for <loc>", the
reason and the last lines of make's stderr) and the scan goes on. Duplicate
PKGNAMEs keep the first record ("Duplicate package: <name>"); malformed
output is dropped ("pbulk-index output not recognized for <loc>").

Incremental scans: --reuse OLD (pbulk-scan's -L) reuses the records of OLD
for every location that can be proven unchanged. With OLD's cache
(OLD.cache, written by "pkgscan -o OLD", or --cache) a location is reused
when every file its make read has the same size and mtime, or else the same
SHA-256, and its directory listing is the same; the tree walk is cached the
same way, so an unchanged tree runs no make at all. Without a cache, pbulk's
rule applies: every SCAN_DEPENDS file must be older than OLD (and, unlike
pbulk, a record without SCAN_DEPENDS is rescanned). Reused output is
byte-identical to a fresh scan. The cache format is documented in the
lib/scanner package (cache.go).

A progress line is shown on stderr when it is a terminal.

Exit status:
  0  every location was scanned
  1  the scan ran, but some locations (or categories) failed to scan, or
     (--limited) some dependency could not be followed; the output holds
     the records of all the others
  2  bad usage, a make program that cannot be found, an unreadable tree or
     list, a list line that is not category/dir (or, with --limited, names
     no package directory), a tree whose categories cannot be listed, an
     unreadable --reuse file, or an I/O error (-o leaves any old output
     file untouched then)`

// Command is pkgscan's command line.
type Command struct {
	Pkgsrc    string   `name:"pkgsrc" short:"C" default:"." placeholder:"DIR" help:"Root of the pkgsrc tree (default: ${default})."`
	Make      string   `name:"make" short:"M" default:"bmake" placeholder:"PROG" help:"Make program, run as '<PROG> pbulk-index' (pbulk's -M; default: ${default})."`
	Jobs      int      `name:"jobs" short:"j" default:"0" placeholder:"N" help:"Makes to run at once (default: number of CPUs)."`
	List      string   `name:"list" short:"l" placeholder:"FILE" help:"Scan the locations listed in FILE ('-' for stdin), one per line."`
	Limited   string   `name:"limited" placeholder:"FILE" help:"Limited build: scan the locations listed in FILE ('-' for stdin) and, round after round, every location their ALL_DEPENDS name (pbulk's limited_list)."`
	Reuse     string   `name:"reuse" short:"L" placeholder:"FILE" help:"Previous scan output: reuse its records where nothing they depend on changed (pbulk's -L)."`
	Cache     string   `name:"cache" placeholder:"FILE" help:"Cache file to read with --reuse (default FILE.cache) and to write (default: OUTPUT.cache with -o)."`
	NoCache   bool     `name:"no-cache" help:"Do not write a cache."`
	Output    string   `name:"output" short:"o" placeholder:"FILE" help:"Write records to FILE atomically instead of stdout (and the cache to FILE.cache)."`
	StatsJSON string   `name:"stats-json" placeholder:"FILE" help:"Write counts (locations, scanned, reused, failed, records, make_runs, seconds) as JSON to FILE ('-' for stderr)."`
	Verbose   bool     `name:"verbose" short:"v" help:"Print a summary line on stderr (always shown on a terminal)."`
	Locations []string `arg:"" optional:"" name:"location" help:"Locations (category/package) to scan instead of the whole tree."`
}

// Run runs pkgscan.
func (c *Command) Run(ctx context.Context, g *cli.Globals) error {
	var locs []string
	var err error
	if c.Limited != "" {
		locs, err = c.limitedList(g.Stdin)
	} else {
		locs, err = c.locations(g.Stdin)
	}
	if err != nil {
		return err
	}
	jobs := c.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	cacheOut := c.Cache
	if cacheOut == "" && c.Output != "" {
		cacheOut = c.Output + ".cache"
	}
	if c.NoCache {
		cacheOut = ""
	}
	cfg := Config{
		Pkgsrc:        c.Pkgsrc,
		Make:          c.Make,
		Jobs:          jobs,
		Locations:     locs,
		FollowDepends: c.Limited != "",
		Reuse:         c.Reuse,
		CacheIn:       c.Cache,
		CacheOut:      cacheOut != "",
		Stderr:        g.Stderr,
		Prefix:        "pkgscan: ",
		Progress:      cli.IsTerminal(g.Stderr),
	}

	var out io.Writer = g.Stdout
	var file *atomicfile.File
	if c.Output != "" {
		file, err = atomicfile.Create(c.Output)
		if err != nil {
			return err
		}
		defer file.Abort()
		out = file
	}
	res, err := Scan(ctx, cfg, out)
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Commit(); err != nil {
			return err
		}
	}
	if cacheOut != "" {
		if err := res.WriteCache(cacheOut); err != nil {
			return err
		}
	}
	if c.StatsJSON != "" {
		if err := writeStats(c.StatsJSON, g.Stderr, &res.Stats); err != nil {
			return err
		}
	}
	if c.Verbose || cli.IsTerminal(g.Stderr) {
		fmt.Fprintf(g.Stderr, "pkgscan: %d locations: %d scanned, %d reused, %d failed; %d records, %d make runs, %.1fs\n",
			res.Locations, res.Scanned, res.Reused, res.Failed, res.Records, res.MakeRuns, res.Seconds)
	}
	switch {
	case res.Failed > 0 && res.BadDepends > 0:
		return cli.Failed("%d of %d locations failed to scan, %d dependencies not followed", res.Failed, res.Locations, res.BadDepends)
	case res.Failed > 0:
		return cli.Failed("%d of %d locations failed to scan", res.Failed, res.Locations)
	case res.BadDepends > 0:
		return cli.Failed("%d dependencies not followed", res.BadDepends)
	}
	return nil
}

// limitedList reads --limited's list and checks that every location in it
// is a package directory of the tree.
func (c *Command) limitedList(stdin io.Reader) ([]string, error) {
	if c.List != "" || len(c.Locations) > 0 {
		return nil, errors.New("--limited takes the list: give no -l and no locations with it")
	}
	name, r := c.Limited, stdin
	if name == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read limited list: %w", err)
		}
		defer f.Close()
		r = f
	}
	entries, err := ReadListEntries(name, r)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: the limited list names no location", name)
	}
	locs := make([]string, len(entries))
	var missing []ListEntry
	for i, e := range entries {
		locs[i] = e.Loc
		if fi, err := os.Stat(filepath.Join(c.Pkgsrc, e.Loc)); err != nil || !fi.IsDir() {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		sort.Slice(missing, func(i, j int) bool { return missing[i].Line < missing[j].Line })
		errs := make([]error, len(missing))
		for i, e := range missing {
			errs[i] = fmt.Errorf("%s:%d: location %s is not a package directory of %s", e.File, e.Line, e.Loc, c.Pkgsrc)
		}
		return nil, errors.Join(errs...)
	}
	return locs, nil
}

func (c *Command) locations(stdin io.Reader) ([]string, error) {
	switch {
	case c.List != "" && len(c.Locations) > 0:
		return nil, errors.New("give locations either as arguments or with -l, not both")
	case c.List == "-":
		return ReadList("stdin", stdin)
	case c.List != "":
		f, err := os.Open(c.List)
		if err != nil {
			return nil, fmt.Errorf("read list: %w", err)
		}
		defer f.Close()
		return ReadList(c.List, f)
	case len(c.Locations) > 0:
		return CleanList(c.Locations)
	}
	return nil, nil
}

func writeStats(path string, stderr io.Writer, st *Stats) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err := stderr.Write(b)
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
