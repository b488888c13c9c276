// Package scanner is the engine of pkgscan: it runs `make pbulk-index` in
// the package directories of a pkgsrc tree, in parallel, and writes the
// records in pbulk-scan's format and order (../shared/spec/scan-format.md
// §2), re-using the records of an earlier scan where it can prove them
// current (§8 and the cache described in cache.go).
//
// # Enumeration and order
//
// A full scan runs `<make> show-subdir-var VARNAME=SUBDIR` at the tree root
// (its words are categories; a failure is fatal: "Cannot extract
// categories") and in each category (words are package directories; a
// failure warns "Cannot extract subdirectories for <cat>" and counts as a
// failed location). Jobs are the locations "<cat>/<dir>" in that order. A
// limited scan takes a list (ReadList, CleanList): sorted and de-duplicated
// as pbulk's scan driver does.
//
// # Limited scans that follow dependencies
//
// With Config.FollowDepends (pkgscan --limited), the listed locations are
// scanned, then every location named by an entry PATTERN:../../LOCATION
// of an ALL_DEPENDS line of their output, then those locations'
// dependencies, until no new location appears: the closure of the list, as
// pbulk's scan driver builds it by running pbulk-scan -l and pbulk-resolve
// -i in a loop (spec §7). The output holds the records of exactly the
// closure's locations, in byte order of location, so it equals `pkgscan -l`
// of the closure. pbulk scans a dependency's location only when its
// pattern matches nothing scanned so far, and follows only the records
// chosen; pkgscan follows every entry of every record, so its closure
// contains pbulk's, and every pattern sees at least the candidates it sees
// under pbulk. An entry that names no location (no ":../../") or one
// outside the tree is not followed: "Incorrect dependency" on stderr,
// counted in Stats.BadDepends. A dependency's location that does not exist
// fails to scan like any other ("no such package directory").
//
// Records are written in job order whatever the parallelism: a location's
// records are written as soon as it and every location before it are done,
// so output streams while the scan runs and memory holds at most a window of
// finished-but-not-yet-written locations.
//
// # One location
//
// `<make> pbulk-index` runs in <pkgsrc>/<location> with the environment
// inherited. A non-zero exit, a NUL byte in stdout or an empty stdout is a
// failure: "Scan failed for <loc>" plus the reason and the last
// StderrTailLines lines of make's stderr, and no records. (pbulk-scan in
// standalone mode silently skips an empty output; in client mode it reports
// it as a failure, which is what pkgscan does everywhere: a package
// directory that yields no record is always a problem worth seeing.) The
// stderr of a successful make is passed on, each line prefixed with the
// location. Output is cut into records by Emitter (§2.4). Two small
// differences from pbulk's child: make's stdin is /dev/null (pbulk passes
// its own on, but with "-l -" that is the list), and argv[0] is --make as
// given, not its basename, so that ${MAKE} in sub-makes finds a make that is
// not on PATH.
//
// # Re-use
//
// With Config.Reuse (pbulk-scan's -L), every location of the old scan is a
// candidate. If a matching cache exists (see cache.go for the format and
// when it matches), a location is reused iff it is in the cache, its
// directory listing is unchanged and every file its make read has the same
// size and mtime, or the same SHA-256 when only the mtime moved; a location
// the cache does not hold is rescanned. Without a matching cache pbulk's
// rule applies: every SCAN_DEPENDS word (of every record of the
// location: pbulk looks at the first record only) must name a file whose
// mtime, in seconds, is strictly older than the old scan file's. Unlike
// pbulk, a location with a record lacking SCAN_DEPENDS (or with an empty
// one) is rescanned, not reused forever. New locations and locations that
// failed or printed nothing last time are always scanned. The tree walk is
// cached too when a cache is present (pbulk never caches it).
//
// Reused output goes through the same Emitter as fresh output, so a reused
// scan is byte-identical to a fresh one of the same tree. (With the cache
// this holds even for a location that lost a record to the duplicate rule:
// the cache keeps its full output. A plain pbulk-scan output cannot say what
// was dropped; reusing it inherits pbulk's behaviour there.)
package scanner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// Config says what to scan and how.
type Config struct {
	// Pkgsrc is the root of the tree; made absolute by Scan.
	Pkgsrc string
	// Make is the make program, run as pbulk does: `<Make> pbulk-index`.
	Make string
	// Jobs is the number of makes run at once (≥ 1).
	Jobs int
	// Locations limits the scan to these locations, in this order; nil
	// scans the whole tree.
	Locations []string
	// FollowDepends (with Locations) also scans every location the
	// records' ALL_DEPENDS name, then theirs, until no new location
	// appears: pbulk's limited-list loop. See "Limited scans" above.
	FollowDepends bool
	// Reuse is a previous scan output to reuse records from ("" for none).
	// A missing file is reported and ignored.
	Reuse string
	// CacheIn is the cache describing Reuse; "" means Reuse+".cache".
	CacheIn string
	// CacheOut, when set, makes Result.WriteCache possible: the scan then
	// hashes what each location read.
	CacheOut bool
	// Stderr receives warnings, make's stderr and the progress line.
	Stderr io.Writer
	// Prefix starts each warning line ("pkgscan: ").
	Prefix string
	// Progress shows a progress line on Stderr (only for a terminal).
	Progress bool
}

// Stats count what a scan did.
type Stats struct {
	Locations  int     `json:"locations"`   // jobs (locations to scan)
	Scanned    int     `json:"scanned"`     // locations for which make ran
	Reused     int     `json:"reused"`      // locations whose old records were reused
	Failed     int     `json:"failed"`      // locations that failed (incl. categories that could not be listed)
	Records    int     `json:"records"`     // records written
	Duplicates int     `json:"duplicates"`  // records dropped as duplicate PKGNAMEs
	Malformed  int     `json:"malformed"`   // locations whose output was (partly) not recognized
	BadDepends int     `json:"bad_depends"` // ALL_DEPENDS entries not followed (FollowDepends): no location, or one outside the tree
	MakeRuns   int     `json:"make_runs"`   // make processes started, tree walk included
	WalkCached bool    `json:"walk_cached"`
	CacheUsed  bool    `json:"cache_used"` // a matching cache was read
	Seconds    float64 `json:"seconds"`
}

// Result is a finished scan.
type Result struct {
	Stats
	builder *cacheBuilder
	outSize int64
	outHash hash.Hash
}

// WriteCache writes the cache describing the output just written to path,
// atomically. It needs Config.CacheOut.
func (r *Result) WriteCache(path string) error {
	if r.builder == nil {
		return errors.New("scan ran without CacheOut: no cache to write")
	}
	return r.builder.write(path, cacheOutput{Size: r.outSize, SHA256: hexSum(r.outHash)})
}

// oldLoc is one location of the previous scan: its records' text, which
// alias the old file's bytes. Everything else is derived only when needed,
// which keeps loading a 29k-record scan cheap.
type oldLoc struct {
	recs [][]byte
}

// raw returns the location's make output as pbulk-scan rebuilds it: its
// records with their PKG_LOCATION lines taken out.
func (o *oldLoc) raw() []byte {
	n := 0
	for _, r := range o.recs {
		n += len(r)
	}
	out := make([]byte, 0, n)
	for _, r := range o.recs {
		out = appendWithoutLocation(out, r)
	}
	return out
}

// deps returns the SCAN_DEPENDS words of all records and whether every
// record had a non-empty SCAN_DEPENDS.
func (o *oldLoc) deps() ([]string, bool) {
	var words []string
	for _, r := range o.recs {
		w, all := scanDepends(r)
		if !all {
			return nil, false
		}
		words = append(words, w...)
	}
	return words, true
}

type scanner struct {
	cfg      Config
	memo     *fileMemo
	old      map[string]*oldLoc
	oldMtime int64 // seconds
	cache    *cacheData
	builder  *cacheBuilder
	log      *logger
	makeRuns atomic.Int64
	done     atomic.Int64
	reused   atomic.Int64
	total    atomic.Int64
	walked   atomic.Int64 // categories listed so far
	cats     atomic.Int64 // categories to list (0 before the root is read)

	cacheIdxOnce sync.Once
	cacheIdx     map[string]int // path → index in cache.Files
}

// result is one finished location.
type result struct {
	loc    string
	raw    []byte
	fail   string
	stderr []byte
	reused bool
	dir    string
	bad    []badDepend // with FollowDepends: ALL_DEPENDS entries not followed
	entry  *cacheLoc   // cache entry for the new cache, nil when not cacheable
}

// Scan runs the scan and writes records to out. It returns an error only
// when the scan as a whole could not run (unreadable tree, categories not
// listable, unreadable old scan, a write error); failed locations are
// counted in Stats.Failed.
func Scan(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	start := time.Now()
	if cfg.Jobs < 1 {
		cfg.Jobs = 1
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	abs, err := filepath.Abs(cfg.Pkgsrc)
	if err != nil {
		return nil, fmt.Errorf("pkgsrc tree %s: %w", cfg.Pkgsrc, err)
	}
	cfg.Pkgsrc = abs
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("pkgsrc tree: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("pkgsrc tree %s is not a directory", abs)
	}
	if _, err := exec.LookPath(cfg.Make); err != nil {
		return nil, fmt.Errorf("make program: %w", err)
	}
	s := &scanner{cfg: cfg, memo: newFileMemo(), log: newLogger(cfg.Stderr, cfg.Prefix, cfg.Progress)}
	defer s.log.stop()
	res := &Result{outHash: newSHA()}

	var makeID cacheFileRec
	var env string
	if cfg.CacheOut || cfg.Reuse != "" {
		makeID = makeIdentity(s.memo, cfg.Make)
		env = makeEnv()
	}
	if cfg.Reuse != "" {
		if err := s.loadReuse(makeID, env); err != nil {
			return nil, err
		}
	}
	res.CacheUsed = s.cache != nil
	if cfg.CacheOut {
		s.builder = newCacheBuilder(abs, cfg.Make, makeID, env)
		res.builder = s.builder
	}

	locs := cfg.Locations
	failedCats := 0
	s.log.startProgress(s)
	if locs == nil {
		locs, failedCats, res.WalkCached, err = s.walk(ctx)
		if err != nil {
			return nil, err
		}
	}

	bw := bufio.NewWriterSize(io.MultiWriter(out, res.outHash, (*counter)(&res.outSize)), 1<<16)
	em := NewEmitter(bw, s.log.warn)
	emit := func(r *result) error {
		s.report(r, &res.Stats)
		if r.fail != "" {
			return nil
		}
		e, err := em.Emit(r.loc, r.raw)
		if err != nil {
			return fmt.Errorf("write records of %s: %w", r.loc, err)
		}
		res.Records += e.Records
		res.Duplicates += e.Duplicates
		if e.Unrecognized {
			res.Malformed++
		}
		if s.builder != nil && r.entry != nil {
			if !e.Complete {
				r.entry.Raw = append([]byte(nil), r.raw...)
			}
			s.builder.addLocation(r.loc, r.entry)
		}
		return nil
	}
	if cfg.FollowDepends && locs != nil {
		// The closure is known only at the end, and its records are
		// written in the order of `pkgscan -l CLOSURE`: held until then.
		var done map[string]*result
		locs, done, err = s.closure(ctx, locs)
		if err != nil {
			return nil, err
		}
		for _, loc := range locs {
			if err := emit(done[loc]); err != nil {
				return nil, err
			}
		}
	} else {
		s.total.Store(int64(len(locs)))
		if err := s.run(ctx, locs, emit, bw.Flush); err != nil {
			return nil, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write records: %w", err)
	}
	res.Locations = len(locs)
	res.Failed += failedCats
	res.Reused = int(s.reused.Load())
	res.Scanned = res.Locations - res.Reused
	res.MakeRuns = int(s.makeRuns.Load())
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

// closure scans locs, then the locations their records' ALL_DEPENDS
// entries name, round after round, until no new location appears. It
// returns every location scanned, sorted, and its result.
func (s *scanner) closure(ctx context.Context, locs []string) ([]string, map[string]*result, error) {
	done := make(map[string]*result)
	round := SortUnique(append([]string(nil), locs...))
	seen := make(map[string]bool, len(round))
	for _, loc := range round {
		seen[loc] = true
	}
	all := append([]string(nil), round...)
	for len(round) > 0 {
		s.total.Add(int64(len(round)))
		err := s.run(ctx, round, func(r *result) error {
			done[r.loc] = r
			return nil
		}, func() error { return nil })
		if err != nil {
			return nil, nil, err
		}
		var next []string
		for _, loc := range round {
			r := done[loc]
			if r.fail != "" {
				continue
			}
			var deps []string
			deps, r.bad = dependLocations(r.raw)
			for _, d := range deps {
				if !seen[d] {
					seen[d] = true
					next = append(next, d)
				}
			}
		}
		round = SortUnique(next)
		all = append(all, round...)
	}
	return SortUnique(all), done, nil
}

// report prints what a finished location needs said, in job order.
func (s *scanner) report(r *result, st *Stats) {
	for _, b := range r.bad {
		st.BadDepends++
		s.log.warn(fmt.Sprintf("Incorrect dependency %q of %s, not followed: %v", b.entry, r.loc, b.err))
	}
	if r.fail != "" {
		st.Failed++
		s.log.warn(fmt.Sprintf("Scan failed for %s", r.loc))
		s.log.detail(fmt.Sprintf("  %s (in %s)", r.fail, r.dir))
		if tail := lastLines(r.stderr, StderrTailLines); len(tail) > 0 {
			for _, l := range bytes.Split(tail, []byte("\n")) {
				s.log.detail("  | " + string(l))
			}
		}
		return
	}
	if len(r.stderr) > 0 {
		for _, l := range bytes.Split(bytes.TrimRight(r.stderr, "\n"), []byte("\n")) {
			s.log.detail(r.loc + ": " + string(l))
		}
	}
}

// run processes locs with cfg.Jobs workers and calls emit for each result
// in job order. flush is called whenever the next result is not ready yet,
// so that written records reach the reader without waiting for more.
func (s *scanner) run(ctx context.Context, locs []string, emit func(*result) error, flush func() error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := 64 * s.cfg.Jobs
	slots := make(chan struct{}, window)
	jobs := make(chan int)
	results := make(chan indexed, s.cfg.Jobs)
	var wg sync.WaitGroup
	for w := 0; w < s.cfg.Jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := s.process(ctx, locs[i])
				select {
				case results <- indexed{i, r}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range locs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Stop the workers before waiting for them (defers run last-first).
	defer func() {
		cancel()
		wg.Wait()
	}()

	pending := make(map[int]*result)
	next := 0
	for next < len(locs) {
		if _, ok := pending[next]; !ok {
			if err := flush(); err != nil {
				return fmt.Errorf("write records: %w", err)
			}
		}
		for pending[next] == nil {
			select {
			case ir := <-results:
				pending[ir.i] = ir.r
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for r := pending[next]; r != nil; r = pending[next] {
			delete(pending, next)
			next++
			<-slots
			if err := emit(r); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

type indexed struct {
	i int
	r *result
}

// process scans or reuses one location.
func (s *scanner) process(ctx context.Context, loc string) *result {
	defer s.done.Add(1)
	dir := s.cfg.Pkgsrc + "/" + loc
	r := &result{loc: loc, dir: dir}
	if raw, entry, ok := s.reusable(loc, dir); ok {
		s.reused.Add(1)
		r.raw, r.entry, r.reused = raw, entry, true
		return r
	}
	listing := ""
	if s.builder != nil {
		listing = listingHash(dir)
	}
	// pbulk's child fails its chdir; say so rather than let exec blame make.
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		r.fail = "no such package directory"
		return r
	}
	s.makeRuns.Add(1)
	m := runMake(ctx, s.cfg.Make, dir, "pbulk-index")
	r.stderr = m.stderr
	switch {
	case m.fail != "":
		r.fail = m.fail
		return r
	case len(m.out) == 0:
		r.fail = fmt.Sprintf("%s pbulk-index printed nothing", s.cfg.Make)
		return r
	}
	r.raw = m.out
	if s.builder != nil {
		r.entry = s.entryFor(loc, m.out, listing, m.start)
	}
	return r
}

// sinceMargin covers the coarse clock the kernel stamps files with: a file
// written just after a make started may carry a time slightly before it.
const sinceMargin = 50 * time.Millisecond

// entryFor builds the cache entry of a freshly scanned location, or nil when
// what make read cannot be pinned down.
func (s *scanner) entryFor(loc string, raw []byte, listing string, started time.Time) *cacheLoc {
	words, all := scanDepends(raw)
	if !all || listing == "" {
		return nil
	}
	paths := make([]string, len(words))
	for i, w := range words {
		paths[i] = resolveDep(s.cfg.Pkgsrc, loc, w)
	}
	idx, ok := s.builder.fileIndexes(paths, started.Add(-sinceMargin).UnixNano(), s.memo.hashed)
	if !ok || listingHash(s.cfg.Pkgsrc+"/"+loc) != listing {
		return nil
	}
	return &cacheLoc{Deps: idx, Listing: listing}
}

// reusable decides whether loc's old output is still current and returns
// it, with the cache entry to carry forward when a new cache is built.
func (s *scanner) reusable(loc, dir string) ([]byte, *cacheLoc, bool) {
	old := s.old[loc]
	if s.cache != nil {
		cl := s.cache.Locations[loc]
		if cl == nil || (cl.Raw == nil && old == nil) {
			return nil, nil, false
		}
		listing := listingHash(dir)
		if listing == "" || listing != cl.Listing || !s.cache.filesUnchanged(s.memo, cl.Deps) {
			return nil, nil, false
		}
		raw := cl.Raw
		if raw == nil {
			raw = old.raw()
		}
		var entry *cacheLoc
		if s.builder != nil {
			paths := make([]string, len(cl.Deps))
			for i, d := range cl.Deps {
				paths[i] = s.cache.Files[d].Path
			}
			idx, ok := s.builder.fileIndexes(paths, maxTime, s.knownState)
			if ok {
				entry = &cacheLoc{Deps: idx, Listing: listing}
			}
		}
		return raw, entry, true
	}
	if old == nil {
		return nil, nil, false
	}
	words, all := old.deps()
	if !all {
		return nil, nil, false
	}
	paths := make([]string, len(words))
	for i, w := range words {
		p := resolveDep(s.cfg.Pkgsrc, loc, w)
		st := s.memo.stat(p)
		if st.Missing || st.Mtime >= s.oldMtime {
			return nil, nil, false
		}
		paths[i] = p
	}
	var entry *cacheLoc
	if s.builder != nil {
		if listing := listingHash(dir); listing != "" {
			if idx, ok := s.builder.fileIndexes(paths, maxTime, s.memo.hashed); ok {
				entry = &cacheLoc{Deps: idx, Listing: listing}
			}
		}
	}
	return old.raw(), entry, true
}

const maxTime = int64(^uint64(0) >> 1)

// knownState returns a file's state for a carried-forward cache entry
// without reading the file when the old cache already has its hash for the
// same size and mtime.
func (s *scanner) knownState(path string) fileState {
	st := s.memo.stat(path)
	if st.Missing {
		return st
	}
	if i, ok := s.cacheIndex(path); ok {
		rec := s.cache.Files[i]
		if rec.Size == st.Size && rec.MtimeNS == st.MtimeNS && rec.SHA256 != "" {
			st.SHA256 = rec.SHA256
			return st
		}
	}
	return s.memo.hashed(path)
}

func (s *scanner) cacheIndex(path string) (int, bool) {
	s.cacheIdxOnce.Do(func() {
		s.cacheIdx = make(map[string]int, len(s.cache.Files))
		for i, f := range s.cache.Files {
			s.cacheIdx[f.Path] = i
		}
	})
	i, ok := s.cacheIdx[path]
	return i, ok
}

// loadReuse reads the previous scan and, when it matches, its cache.
func (s *scanner) loadReuse(makeID cacheFileRec, env string) error {
	path := s.cfg.Reuse
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s.log.warn(fmt.Sprintf("no previous scan %s: scanning everything", path))
		return nil
	}
	if err != nil {
		return fmt.Errorf("read previous scan: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read previous scan: %w", err)
	}
	s.oldMtime = fi.ModTime().Unix()
	recs, err := scan.Parse(path, data)
	if err != nil {
		return fmt.Errorf("read previous scan: %w", err)
	}
	s.old = make(map[string]*oldLoc)
	for i := range recs {
		r := &recs[i]
		loc := r.Location()
		if loc == "" {
			return r.Errorf("no PKG_LOCATION line: not a pbulk-scan output")
		}
		o := s.old[loc]
		if o == nil {
			o = &oldLoc{}
			s.old[loc] = o
		}
		o.recs = append(o.recs, r.Text)
	}

	cachePath := s.cfg.CacheIn
	explicit := cachePath != ""
	if !explicit {
		cachePath = path + ".cache"
	}
	c, err := readCache(cachePath)
	if err != nil {
		if explicit || !errors.Is(err, os.ErrNotExist) {
			s.log.warn(fmt.Sprintf("cache not used (%v): falling back to pbulk's timestamp rule", err))
		}
		return nil
	}
	sum := newSHA()
	sum.Write(data)
	var why string
	switch {
	case c.Output.Size != int64(len(data)) || c.Output.SHA256 != hexSum(sum):
		why = fmt.Sprintf("it describes another output than %s", path)
	case c.Pkgsrc != s.cfg.Pkgsrc:
		why = fmt.Sprintf("it is for the tree %s", c.Pkgsrc)
	case c.Make != s.cfg.Make || c.MakeID != makeID:
		why = fmt.Sprintf("it was made with another make (%s)", c.MakeID.Path)
	case c.MakeEnv != env:
		why = "the MAKE* environment variables changed"
	}
	if why != "" {
		s.log.warn(fmt.Sprintf("cache %s not used: %s; falling back to pbulk's timestamp rule", cachePath, why))
		return nil
	}
	s.cache = c
	return nil
}

// appendWithoutLocation appends a record's text minus its PKG_LOCATION line
// (the line pbulk-scan inserted second), which gives back the make output.
func appendWithoutLocation(dst, rec []byte) []byte {
	first := bytes.IndexByte(rec, '\n') + 1
	rest := rec[first:]
	if bytes.HasPrefix(rest, []byte("PKG_LOCATION=")) {
		nl := bytes.IndexByte(rest, '\n') + 1
		dst = append(dst, rec[:first]...)
		return append(dst, rest[nl:]...)
	}
	// Not where pkgscan and pbulk-scan put it: drop the first one anywhere.
	lines := rec
	pos := 0
	for pos < len(lines) {
		nl := bytes.IndexByte(lines[pos:], '\n')
		end := len(lines)
		if nl >= 0 {
			end = pos + nl + 1
		}
		if bytes.HasPrefix(lines[pos:], []byte("PKG_LOCATION=")) {
			dst = append(dst, lines[:pos]...)
			return append(dst, lines[end:]...)
		}
		pos = end
	}
	return append(dst, rec...)
}
