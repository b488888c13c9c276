// Package dag turns scan records into a resolved dependency graph, the way
// pbulk-resolve does (../shared/spec/scan-format.md §6), analyses it the
// way pbulk-build starts up (depth, weights, prefailed packages; spec
// build-and-report.md §3-4), and writes it out as pbulk-resolve's presolve
// text or as the pkgbulk build database (lib/db, docs/schema.md).
//
// Resolution, as in pbulk-resolve:
//
//   - every record of every input is a candidate, whatever its skip or fail
//     reason, and every record is resolved (pbulk's "active" records; the
//     inputs are simply concatenated, there is no incremental mode);
//   - each ALL_DEPENDS entry PATTERN:../../PATH is handled in order; when a
//     package already chosen for this record matches PATTERN the entry is
//     skipped (so DEPENDS has no duplicates and keeps first-use order),
//     otherwise the best match among all records is chosen: greatest
//     version, on equal versions the greater name (pattern.PreferPbulk).
//     PATH is never used to choose;
//   - an entry without ":../../" is "Incorrect dependency" and a pattern
//     with unbalanced braces is malformed: both are bad input, the whole run
//     fails and nothing is written (pbulk-resolve also writes nothing);
//   - a pattern nothing matches is unresolved: the record is still written,
//     without a DEPENDS line, and its PKG_FAIL_REASON line is replaced by
//     `"could not resolve dependency "PATTERN""` for the last such pattern.
//     Like pbulk-build, which only sees DEPENDS lines, the graph then has
//     no edges from that package;
//   - a record that already has a DEPENDS line (a presolve file given as
//     input) is left alone: its DEPENDS names are taken as they are.
//
// Limited builds (spec §6.5): pkgdag resolves against the whole scan it is
// given and then selects the closure of the listed pkgpaths
// (Graph.SelectPaths, Analysis.Selected). Given a full-tree scan, every
// package gets the same dependencies as in a full build; given the scan of
// `pkgscan --limited` (the listed locations and every location their
// ALL_DEPENDS name, transitively), a pattern resolves among those records,
// which contain what pbulk's scan-and-resolve loop would have scanned.
//
// Resolution of one record depends only on the global candidate set, so
// the best match of each distinct pattern is computed once, in parallel,
// and records are then resolved in parallel.
package dag

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/pkgbulk/pkgbulk/lib/pattern"
	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// Dep is one resolved dependency: the package chosen and the ALL_DEPENDS
// pattern that chose it.
type Dep struct {
	Pkg     int // index into Graph.Pkgs
	Pattern string
}

// Unresolved is an ALL_DEPENDS entry that matched no package.
type Unresolved struct {
	Pattern  string
	Location string // the entry's PATH without ../../
}

// Mismatch is a dependency whose chosen package lives in another directory
// than the ALL_DEPENDS entry names (pbulk-resolve -v warns about these; the
// location never decides the match).
type Mismatch struct {
	Pattern  string
	Location string // the entry's PATH without ../../
	Chosen   int    // the package chosen, or already chosen, for the pattern
}

// Package is one record after resolution.
type Package struct {
	Name       string
	Location   string
	Deps       []Dep        // in DEPENDS order; none when a pattern is unresolved
	Unresolved []Unresolved // in ALL_DEPENDS order
	Mismatches []Mismatch   // in ALL_DEPENDS order
	// Predepends is set when the record already had a DEPENDS line; it is
	// then written exactly as read.
	Predepends bool
}

// Graph is the resolved set of records. Pkgs[i] belongs to Recs[i].
type Graph struct {
	Recs []scan.Record
	Pkgs []Package
	// byName maps a PKGNAME to its index.
	byName map[string]int
}

// Lookup returns the index of the package with the given PKGNAME.
func (g *Graph) Lookup(pkgname string) (int, bool) {
	i, ok := g.byName[pkgname]
	return i, ok
}

// HasDepends reports whether the presolve record of package i carries a
// DEPENDS line: it was given one, or all its patterns resolved and at least
// one package was chosen.
func (g *Graph) HasDepends(i int) bool {
	p := &g.Pkgs[i]
	if p.Predepends {
		return true
	}
	return len(p.Unresolved) == 0 && len(p.Deps) > 0
}

// DependsValue returns the DEPENDS value of package i's presolve record, and
// false when the record has no DEPENDS line.
func (g *Graph) DependsValue(i int) (string, bool) {
	p := &g.Pkgs[i]
	if p.Predepends {
		return g.Recs[i].Get(scan.KeyDepends)
	}
	if !g.HasDepends(i) {
		return "", false
	}
	var b strings.Builder
	for j, d := range p.Deps {
		if j > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(g.Pkgs[d.Pkg].Name)
	}
	return b.String(), true
}

// FailReason returns PKG_FAIL_REASON as pbulk-resolve writes it: rewritten
// for the last unresolved pattern, else as scanned.
func (g *Graph) FailReason(i int) string {
	if u := g.Pkgs[i].Unresolved; len(u) > 0 && !g.Pkgs[i].Predepends {
		return UnresolvedReason(u[len(u)-1].Pattern)
	}
	v, _ := g.Recs[i].Get(scan.KeyPkgFailReason)
	return v
}

// UnresolvedReason is the PKG_FAIL_REASON value pbulk-resolve writes for an
// unresolvable pattern (quotes included, none escaped).
func UnresolvedReason(pattern string) string {
	return `"could not resolve dependency "` + pattern + `""`
}

// NumUnresolved counts the unresolved patterns over all packages.
func (g *Graph) NumUnresolved() int {
	n := 0
	for i := range g.Pkgs {
		n += len(g.Pkgs[i].Unresolved)
	}
	return n
}

// maxErrors bounds the bad-input errors collected before giving up.
const maxErrors = 20

// entry is one parsed ALL_DEPENDS entry.
type entry struct {
	pat int32  // index into the distinct patterns
	loc []byte // PATH without ../../, aliasing the record text
}

// Resolve resolves the records. Bad input (missing fields, duplicate or
// short PKGNAMEs, a PKGNAME that is not a package name or a PKG_LOCATION
// that is not category/dir (scan.CheckPkgName, scan.CheckLocation),
// malformed entries or patterns) is reported as an error joining up to 20
// *scan.Error values, each naming file and line.
// workers <= 0 means GOMAXPROCS.
func Resolve(ctx context.Context, recs []scan.Record, workers int) (*Graph, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g := &Graph{Recs: recs, Pkgs: make([]Package, len(recs)), byName: make(map[string]int, len(recs))}
	var errs []error
	bad := func(err error) bool {
		errs = append(errs, err)
		return len(errs) >= maxErrors
	}

	// Load: names, locations, duplicates (pbulk-resolve's read_entries).
	for i := range recs {
		r := &recs[i]
		name := r.PkgName()
		if len(name) < scan.MinResolvePkgNameLen {
			if bad(r.Errorf("invalid input: PKGNAME %q is shorter than %d characters", name, scan.MinResolvePkgNameLen)) {
				break
			}
			continue
		}
		if err := scan.CheckPkgName(name); err != nil {
			if bad(r.Errorf("invalid input: %v", err)) {
				break
			}
			continue
		}
		loc, ok := r.Get(scan.KeyPkgLocation)
		if !ok {
			if bad(r.Errorf("invalid input: no PKG_LOCATION line for %s", name)) {
				break
			}
			continue
		}
		if err := scan.CheckLocation(loc); err != nil {
			err := &scan.Error{File: r.File(), Line: r.LineOf(scan.KeyPkgLocation), Msg: fmt.Sprintf("invalid input: PKG_LOCATION of %s: %v", name, err)}
			if bad(err) {
				break
			}
			continue
		}
		if j, dup := g.byName[name]; dup {
			o := &recs[j]
			if bad(r.Errorf("duplicate package %s (first at %s:%d)", name, o.File(), o.Line())) {
				break
			}
			continue
		}
		g.byName[name] = i
		g.Pkgs[i] = Package{Name: name, Location: loc}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Parse every ALL_DEPENDS line and intern the patterns.
	patIndex := make(map[string]int32)
	var patterns []string
	entries := make([][]entry, len(recs))
	for i := range recs {
		r := &recs[i]
		if _, ok := r.GetBytes(scan.KeyDepends); ok {
			g.Pkgs[i].Predepends = true
		}
		line, ok := r.GetBytes(scan.KeyAllDepends)
		if !ok {
			if g.Pkgs[i].Predepends {
				continue
			}
			if bad(r.Errorf("No ALL_DEPENDS line for %s", g.Pkgs[i].Name)) {
				break
			}
			continue
		}
		es := make([]entry, 0, bytes.Count(line, []byte(":../../")))
		for f := range splitBlanks(line) {
			colon := bytes.IndexByte(f, ':')
			if colon < 0 || !bytes.HasPrefix(f[colon:], []byte(":../../")) {
				err := &scan.Error{File: r.File(), Line: r.LineOf(scan.KeyAllDepends),
					Msg: fmt.Sprintf("Incorrect dependency for %s: %q is not PATTERN:../../PATH", g.Pkgs[i].Name, f)}
				if bad(err) {
					break
				}
				continue
			}
			id, ok := patIndex[string(f[:colon])]
			if !ok {
				id = int32(len(patterns))
				s := string(f[:colon])
				patterns = append(patterns, s)
				patIndex[s] = id
			}
			es = append(es, entry{pat: id, loc: f[colon+7:]})
		}
		entries[i] = es
		if len(errs) >= maxErrors {
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Compile every distinct pattern; a malformed one is reported at every
	// record that uses it.
	// Compiling, and finding each pattern's literal prefixes, runs in
	// parallel: it is a tenth of the resolution.
	compiled := make([]*pattern.Pattern, len(patterns))
	prefixes := make([][]string, len(patterns))
	parallel(workers, len(patterns), func(lo, hi int) {
		for id := lo; id < hi; id++ {
			if p, err := pattern.Compile(patterns[id]); err == nil {
				compiled[id] = p
				prefixes[id] = p.Prefixes()
			}
		}
	})
	malformed := slices.Contains(compiled, nil)
	if malformed {
		for i := range recs {
			for _, e := range entries[i] {
				if compiled[e.pat] == nil {
					r := &recs[i]
					if bad(&scan.Error{File: r.File(), Line: r.LineOf(scan.KeyAllDepends),
						Msg: fmt.Sprintf("malformed dependency pattern %q of %s", patterns[e.pat], g.Pkgs[i].Name)}) {
						return nil, errors.Join(errs...)
					}
				}
			}
		}
		return nil, errors.Join(errs...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Best match of every distinct pattern over all records.
	idx := newNameIndex(g)
	best := make([]int32, len(patterns))
	parallel(workers, len(patterns), func(lo, hi int) {
		for id := lo; id < hi; id++ {
			best[id] = int32(idx.best(compiled[id], prefixes[id]))
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Resolve each record: the dedupe rule needs only its own choices.
	parallel(workers, len(recs), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			p := &g.Pkgs[i]
			if p.Predepends {
				continue
			}
			for _, e := range entries[i] {
				pat := compiled[e.pat]
				b := best[e.pat]
				chosen := -1
				if k := firstChosenMatch(g, p.Deps, pat, prefixes[e.pat], b); k >= 0 {
					chosen = p.Deps[k].Pkg
				} else if b < 0 {
					p.Unresolved = append(p.Unresolved, Unresolved{Pattern: patterns[e.pat], Location: string(e.loc)})
					continue
				} else {
					chosen = int(b)
					p.Deps = append(p.Deps, Dep{Pkg: chosen, Pattern: patterns[e.pat]})
				}
				if g.Pkgs[chosen].Location != string(e.loc) {
					p.Mismatches = append(p.Mismatches, Mismatch{Pattern: patterns[e.pat], Location: string(e.loc), Chosen: chosen})
				}
			}
			if len(p.Unresolved) > 0 {
				// pbulk-resolve drops the DEPENDS line, so pbulk-build
				// sees no edges from this package: depths count as if
				// it depended on nothing (the real report confirms it).
				p.Deps = nil
			}
		}
	})

	// Records that came with DEPENDS: take the names as they are.
	for i := range recs {
		p := &g.Pkgs[i]
		if !p.Predepends {
			continue
		}
		v, _ := recs[i].GetBytes(scan.KeyDepends)
		for f := range splitBlanks(v) {
			j, ok := g.byName[string(f)]
			if !ok {
				if bad(&scan.Error{File: recs[i].File(), Line: recs[i].LineOf(scan.KeyDepends),
					Msg: fmt.Sprintf("dependency %s of %s does not exist", f, p.Name)}) {
					break
				}
				continue
			}
			d := Dep{Pkg: j}
			for _, e := range entries[i] {
				if compiled[e.pat].MatchPbulk(g.Pkgs[j].Name) {
					d.Pattern = patterns[e.pat]
					break
				}
			}
			p.Deps = append(p.Deps, d)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return g, ctx.Err()
}

// firstChosenMatch returns the index of the first package already chosen
// for this record that matches pat (pbulk's dedupe rule), or -1. best is
// pat's best match, which matches without asking; prefixes are pat's
// literal prefixes, which a name must start with to be worth matching.
func firstChosenMatch(g *Graph, deps []Dep, pat *pattern.Pattern, prefixes []string, best int32) int {
	for k, d := range deps {
		if int32(d.Pkg) == best {
			return k
		}
		name := g.Pkgs[d.Pkg].Name
		for _, pre := range prefixes {
			if strings.HasPrefix(name, pre) {
				if pat.MatchPbulk(name) {
					return k
				}
				break
			}
		}
	}
	return -1
}

// splitBlanks yields the space/tab separated fields of b.
func splitBlanks(b []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			i := 0
			for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
				i++
			}
			b = b[i:]
			if len(b) == 0 {
				return
			}
			j := 0
			for j < len(b) && b[j] != ' ' && b[j] != '\t' {
				j++
			}
			if !yield(b[:j]) {
				return
			}
			b = b[j:]
		}
	}
}

// nameIndex holds the package names sorted, to find the candidates of a
// pattern by its literal prefixes.
type nameIndex struct {
	g     *Graph
	names []string // sorted
	ids   []int32  // ids[k] is the package of names[k]
}

func newNameIndex(g *Graph) *nameIndex {
	order := make([]int32, len(g.Pkgs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(g.Pkgs[a].Name, g.Pkgs[b].Name) })
	ix := &nameIndex{g: g, names: make([]string, len(order)), ids: order}
	for k, id := range order {
		ix.names[k] = g.Pkgs[id].Name
	}
	return ix
}

// best returns the package pbulk-resolve would choose for p, or -1.
// prefixes are p.Prefixes().
func (ix *nameIndex) best(p *pattern.Pattern, prefixes []string) int {
	best := -1
	consider := func(lo, hi int) {
		for k := lo; k < hi; k++ {
			name := ix.names[k]
			if !p.MatchPbulk(name) {
				continue
			}
			if best < 0 || pattern.PreferPbulk(name, ix.g.Pkgs[best].Name) {
				best = int(ix.ids[k])
			}
		}
	}
	if slices.Contains(prefixes, "") {
		consider(0, len(ix.names))
		return best
	}
	for _, pre := range prefixes {
		lo, _ := slices.BinarySearch(ix.names, pre)
		hi := lo
		for hi < len(ix.names) && strings.HasPrefix(ix.names[hi], pre) {
			hi++
		}
		consider(lo, hi)
	}
	return best
}

// parallel runs fn over [0,n) split into chunks, on up to workers
// goroutines. Chunks are small enough to balance uneven work.
func parallel(workers, n int, fn func(lo, hi int)) {
	if workers <= 1 || n < 64 {
		fn(0, n)
		return
	}
	const chunk = 256
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= n {
					return
				}
				fn(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}
