package dag

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/scan"
	"github.com/pkgbulk/pkgbulk/lib/treerev"
)

// Description is pkgdag's long help text.
const Description = `Resolve pbulk scan records and write the build database or pbulk-resolve's output.

Inputs are scan files in pbulk's format: pkgscan's or pbulk-scan's output
(a "pscan" file), plain or compressed with zstd or gzip (recognised by
content). "-" reads standard input. Several inputs are concatenated, and
every record of every input is resolved and is a candidate for every
dependency pattern. A presolve file (records that already carry a DEPENDS
line) is accepted too: its DEPENDS lines are kept as they are.

Every ALL_DEPENDS pattern is resolved exactly like pbulk-resolve: the best
match among all records (greatest version, then the greater name), in
ALL_DEPENDS order, skipping a pattern that an already chosen package
matches. A pattern that matches nothing is reported ("No match found for
dependency P of package X") and the package is written without DEPENDS,
with PKG_FAIL_REASON="could not resolve dependency "P"", so it starts
prefailed and its dependents indirect-prefailed.

"pkgdag build" writes the build database (SQLite, schema in docs/schema.md);
"pkgdag presolve" prints pbulk-resolve's output (the "presolve" file).
With --limited FILE (pkgpaths, one per line) only those packages and their
dependency closure are selected for the build; the scan may be the whole
tree's or "pkgscan --limited FILE"'s, which holds only the closure.

Exit status:
  0  done; unresolved patterns and dependency cycles are warnings
  1  --strict and some pattern was unresolved or a cycle was found
     (the output is still written completely)
  2  bad usage or bad input (a line without '=', a record without PKGNAME,
     a duplicate PKGNAME, a PKGNAME that is not NAME-VERSION or holds '/',
     whitespace or a leading '-' or '.', a PKG_LOCATION that is not a
     relative category/dir, a NUL byte, an input without any record, a
     malformed dependency, a truncated file, an unknown pkgpath in the
     limited list) or an I/O error; the message names the file and line,
     nothing is written and an existing database is left untouched`

// Inputs are the arguments shared by the commands.
type Inputs struct {
	Scan    []string `arg:"" name:"scan" help:"Scan files (pscan or presolve format, plain, .zst or .gz); - reads stdin." default:"-"`
	Limited string   `name:"limited" short:"l" placeholder:"FILE" help:"Limited build: a file of pkgpaths (category/dir), one per line; '#' starts a comment. Selects those packages and their dependency closure."`
	Strict  bool     `help:"Exit 1 when a pattern is unresolved (pbulk-resolve -s) or, for build, a dependency cycle exists; the output is written all the same."`
	Quiet   bool     `short:"q" help:"Do not print warnings about unresolved patterns and cycles."`
	Verbose bool     `short:"v" help:"Also warn, like pbulk-resolve -v, when a dependency resolves to a package of another directory than its ALL_DEPENDS entry names."`
	JSON    bool     `name:"json" help:"Print a JSON summary (counts) on stdout when done."`
	Timings bool     `hidden:"" help:"Print the time each phase took on stderr (for benchmarks)."`

	tracer func(string)
}

// trace prints the time since the previous phase when --timings is set.
func (in *Inputs) trace(w io.Writer) func(string) {
	if !in.Timings {
		return nil
	}
	if in.tracer == nil {
		start, last := time.Now(), time.Now()
		var mu sync.Mutex
		in.tracer = func(phase string) {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			fmt.Fprintf(w, "pkgdag: timing: %-24s %6.1f ms (at %6.1f ms)\n", phase, float64(now.Sub(last).Microseconds())/1000, float64(now.Sub(start).Microseconds())/1000)
			last = now
		}
	}
	return in.tracer
}

func (in *Inputs) step(w io.Writer, phase string) {
	if t := in.trace(w); t != nil {
		t(phase)
	}
}

// Command is pkgdag's grammar.
type Command struct {
	Build    BuildCmd    `cmd:"" help:"Resolve the scan and write the build database."`
	Presolve PresolveCmd `cmd:"" help:"Resolve the scan and print pbulk-resolve's output."`
}

// BuildCmd is "pkgdag build".
type BuildCmd struct {
	Output   string `name:"output" short:"o" required:"" placeholder:"DB" help:"The database to write (replaced atomically; its history and pull workers' tokens are carried over)."`
	Pkgsrc   string `name:"pkgsrc" type:"existingdir" placeholder:"DIR" help:"The tree the scan read: its revision (git commit or CVS/Tag) is recorded, and pull workers whose tree differs get no job."`
	Platform string `name:"platform" placeholder:"TEXT" help:"The platform the scan was made for, 'OPSYS OS_VERSION/MACHINE_ARCH' or 'OPSYS/MACHINE_ARCH' (pbulk's PLATFORM): recorded, and pull workers of another platform get no job."`
	Inputs   `embed:""`
}

// Help is the long help of "pkgdag build".
func (c *BuildCmd) Help() string {
	return `Writes the build database: every package with all its fields and its exact
presolve record, dependency edges with the pattern each came from,
unresolved patterns, dependency cycles, pbulk's depth and PBULK_WEIGHT sums,
each package's initial state (open, prefailed, indirect-prefailed) and, with
--limited, which packages are selected. A package in a dependency cycle is
prefailed ("dependency cycle: ..."), its dependents indirect-prefailed; the
cycle's members and patterns are printed on stderr.

The database is built in a temporary file beside DB and renamed over it,
so DB is never left half written. Rows of the history table of an existing
DB (build durations learned by pkgsched) are copied into the new one, and
so are the pull workers' registration tokens (pkgsched token add; only
their hashes, revoked ones stay revoked).`
}

// PresolveCmd is "pkgdag presolve".
type PresolveCmd struct {
	Output string `name:"output" short:"o" placeholder:"FILE" help:"Write to FILE atomically instead of stdout."`
	Inputs `embed:""`
}

// Help is the long help of "pkgdag presolve".
func (c *PresolveCmd) Help() string {
	return `Prints every record as read, with PKG_FAIL_REASON rewritten for an
unresolved pattern, followed by DEPENDS=<chosen pkgnames> when every
pattern resolved and at least one package was chosen: byte for byte what
pbulk-resolve writes. With --limited only the selected packages are
printed, as pbulk's limited-list scan loop ends up with.`
}

// loaded is the resolved input shared by both commands.
type loaded struct {
	g       *Graph
	limited []int // nil for a full build
}

func (in *Inputs) load(ctx context.Context, g *cli.Globals) (*loaded, error) {
	recs, err := in.parse(g)
	if err != nil {
		return nil, err
	}
	return in.resolve(ctx, recs)
}

// parse reads every scan input.
func (in *Inputs) parse(g *cli.Globals) ([]scan.Record, error) {
	in.trace(g.Stderr) // starts the clock
	var recs []scan.Record
	for _, name := range in.Scan {
		var rs []scan.Record
		var err error
		if name == "-" {
			if f, ok := g.Stdin.(*os.File); ok && cli.IsTerminal(f) {
				return nil, errors.New("no scan input: give scan files or pipe a scan into standard input (see --help)")
			}
			rs, err = scan.ReadAll("<stdin>", g.Stdin)
		} else {
			// Mapped, not copied; the mapping lives until the process
			// ends, as long as the records do.
			rs, _, err = scan.MapFile(name)
		}
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			if name == "-" {
				name = "<stdin>"
			}
			return nil, fmt.Errorf("%s: empty scan: no PKGNAME= record (did the scan fail?)", name)
		}
		if recs == nil {
			recs = rs
		} else {
			recs = append(recs, rs...)
		}
	}
	in.step(g.Stderr, "read and parse")
	return recs, nil
}

// resolve resolves the parsed records and selects the limited list.
func (in *Inputs) resolve(ctx context.Context, recs []scan.Record) (*loaded, error) {
	graph, err := Resolve(ctx, recs, 0)
	if err != nil {
		return nil, err
	}
	l := &loaded{g: graph}
	if in.Limited != "" {
		paths, err := ReadLimitedFile(in.Limited)
		if err != nil {
			return nil, err
		}
		l.limited, err = graph.SelectPaths(paths)
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// warnUnresolved prints pbulk-resolve's warning for every unresolved
// pattern of a package in include, and with verbose its location warnings.
func warnUnresolved(w io.Writer, g *Graph, include func(int) bool, verbose bool) {
	bw := bufio.NewWriter(w)
	for i := range g.Pkgs {
		if include != nil && !include(i) {
			continue
		}
		if verbose {
			for _, m := range g.Pkgs[i].Mismatches {
				fmt.Fprintf(bw, "pkgdag: Best matching %s differs from location %s for dependency %s of package %s\n",
					g.Pkgs[m.Chosen].Name, m.Location, m.Pattern, g.Pkgs[i].Name)
			}
		}
		for _, u := range g.Pkgs[i].Unresolved {
			fmt.Fprintf(bw, "pkgdag: No match found for dependency %s of package %s\n", u.Pattern, g.Pkgs[i].Name)
		}
	}
	bw.Flush()
}

// Run runs "pkgdag build".
func (c *BuildCmd) Run(ctx context.Context, g *cli.Globals) error {
	// The live heap stays under 50 MB for 29,000 packages (the scan is
	// mapped, not on the heap), and with the default GOGC the collector
	// ran nine times, competing with SQLite for the two cores; GOGC=400
	// takes 0.1 s off the run for 40 MB more peak RSS.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	info := DBInfo{Inputs: c.Scan, Limited: c.Limited, Platform: c.Platform, Now: time.Now(), Trace: c.trace(g.Stderr)}
	if c.Platform != "" {
		if _, err := pull.ParsePlatform(c.Platform); err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
	}
	if c.Pkgsrc != "" {
		// A tree that is neither a git nor a CVS checkout has no
		// revision: nothing is recorded (pkgsched's pull server says so).
		info.TreeRevision = treerev.Of(ctx, c.Pkgsrc)
	}
	recs, err := c.parse(g)
	if err != nil {
		return err
	}
	// The database writer starts on the scanned records while the
	// dependencies are still being resolved.
	resolve := func(ctx context.Context) (*Graph, []int, error) {
		l, err := c.resolve(ctx, recs)
		if err != nil {
			return nil, nil, err
		}
		return l.g, l.limited, nil
	}
	graph, a, counts, err := Build(ctx, c.Output, recs, resolve, info)
	if a != nil && !c.Quiet {
		warnUnresolved(g.Stderr, graph, nil, c.Verbose)
		WriteCycles(g.Stderr, graph, a)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		if err := writeJSON(g.Stdout, c.Output, counts); err != nil {
			return err
		}
	} else if cli.IsTerminal(g.Stderr) {
		fmt.Fprintf(g.Stderr, "pkgdag: %s: %d packages (%d selected), %d dependencies, %d unresolved, %d cycles, %d prefailed, %d indirect-prefailed, %d history rows kept\n",
			c.Output, counts.Packages, counts.Selected, counts.Depends, counts.Unresolved, counts.Cycles,
			counts.Prefailed, counts.IndirectPrefailed, counts.HistoryRows)
	}
	if c.Strict && (counts.Unresolved > 0 || counts.Cycles > 0) {
		return cli.Failed("%d unresolved dependency patterns, %d dependency cycles (--strict)", counts.Unresolved, counts.Cycles)
	}
	return nil
}

func writeJSON(w io.Writer, output string, c Counts) error {
	b, err := json.MarshalIndent(struct {
		Output string `json:"output"`
		Counts
	}{output, c}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Run runs "pkgdag presolve".
func (c *PresolveCmd) Run(ctx context.Context, g *cli.Globals) error {
	if c.JSON && c.Output == "" {
		return errors.New("--json needs --output: stdout carries the presolve records")
	}
	l, err := c.load(ctx, g)
	if err != nil {
		return err
	}
	var include func(int) bool
	var counts Counts
	counts.Packages = len(l.g.Pkgs)
	if l.limited != nil {
		sel := l.g.Closure(l.limited)
		include = func(i int) bool { return sel[i] }
		for _, s := range sel {
			if s {
				counts.Selected++
			}
		}
	} else {
		counts.Selected = counts.Packages
	}
	for i := range l.g.Pkgs {
		if include == nil || include(i) {
			counts.Depends += len(l.g.Pkgs[i].Deps)
			counts.Unresolved += len(l.g.Pkgs[i].Unresolved)
			if len(l.g.Pkgs[i].Unresolved) > 0 {
				counts.UnresolvedPkgs++
			}
		}
	}
	if !c.Quiet {
		warnUnresolved(g.Stderr, l.g, include, c.Verbose)
	}
	if c.Output == "" {
		if err := l.g.WritePresolve(g.Stdout, include); err != nil {
			return fmt.Errorf("write presolve: %w", err)
		}
	} else {
		err := atomicfile.WriteFile(c.Output, func(w io.Writer) error { return l.g.WritePresolve(w, include) })
		if err != nil {
			return err
		}
		if c.JSON {
			if err := writeJSON(g.Stdout, c.Output, counts); err != nil {
				return err
			}
		}
	}
	if c.Strict && counts.Unresolved > 0 {
		return cli.Failed("%d unresolved dependency patterns (--strict)", counts.Unresolved)
	}
	return nil
}

// WriteCycles reports every cycle with its members and the patterns of the
// edges that form it.
func WriteCycles(w io.Writer, g *Graph, a *Analysis) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for k, cyc := range a.Cycles {
		names := make([]string, len(cyc))
		for j, v := range cyc {
			names[j] = g.Pkgs[v].Name
		}
		fmt.Fprintf(bw, "pkgdag: dependency cycle %d: %s (marked prefailed, dependents indirect-prefailed)\n", k+1, strings.Join(names, " "))
		for _, v := range cyc {
			r := &g.Recs[v]
			for _, d := range g.Pkgs[v].Deps {
				if slices.Contains(cyc, d.Pkg) {
					fmt.Fprintf(bw, "pkgdag:   %s -> %s (pattern %s, %s:%d)\n", g.Pkgs[v].Name, g.Pkgs[d.Pkg].Name, d.Pattern, r.File(), r.LineOf(scan.KeyAllDepends))
				}
			}
		}
	}
}

// ParseLimited reads a limited list the way pbulk's scan script cleans it:
// text from '#' to the end of the line is removed, then trailing blanks,
// then empty lines; the result is sorted and de-duplicated. Each path is
// returned with the line it came from.
func ParseLimited(name string, data []byte) []LimitedPath {
	var out []LimitedPath
	seen := map[string]bool{}
	for n, line := range bytes.Split(data, []byte("\n")) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) == 0 || seen[string(line)] {
			continue
		}
		seen[string(line)] = true
		out = append(out, LimitedPath{Path: string(line), File: name, Line: n + 1})
	}
	slices.SortFunc(out, func(a, b LimitedPath) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// LimitedPath is one pkgpath of a limited list and where it was read.
type LimitedPath struct {
	Path string
	File string
	Line int
}

// ReadLimitedFile reads and parses a limited list ("-" is not allowed:
// stdin may carry the scan).
func ReadLimitedFile(path string) ([]LimitedPath, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read limited list: %w", err)
	}
	return ParseLimited(path, data), nil
}

// SelectPaths returns the packages of the listed pkgpaths (every record of
// a pkgpath, as a limited pbulk scan yields all its multi-version variants),
// or an error naming each pkgpath absent from the scan.
func (g *Graph) SelectPaths(paths []LimitedPath) ([]int, error) {
	byPath := map[string][]int{}
	for i := range g.Pkgs {
		byPath[g.Pkgs[i].Location] = append(byPath[g.Pkgs[i].Location], i)
	}
	sel := []int{}
	var errs []error
	for _, p := range paths {
		ids, ok := byPath[p.Path]
		if !ok {
			errs = append(errs, &scan.Error{File: p.File, Line: p.Line, Msg: fmt.Sprintf("pkgpath %s is not in the scan", p.Path)})
			continue
		}
		sel = append(sel, ids...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.Sort(sel)
	return sel, nil
}

// Closure returns the packages in roots and everything they depend on,
// transitively.
func (g *Graph) Closure(roots []int) []bool {
	sel := make([]bool, len(g.Pkgs))
	stack := make([]int, 0, len(roots))
	for _, v := range roots {
		if !sel[v] {
			sel[v] = true
			stack = append(stack, v)
		}
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.Pkgs[v].Deps {
			if !sel[d.Pkg] {
				sel[d.Pkg] = true
				stack = append(stack, d.Pkg)
			}
		}
	}
	return sel
}
