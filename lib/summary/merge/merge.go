// Package merge builds a repository's pkg_summary from a package store and
// publishes it, the way pbulk's build script does after a bulk build
// (spec build-and-report.md §1.2), in one of its two modes or both mixed:
//
//   - from fragments: index/<PKGNAME>.pkginfo, the `pkg_info -X` entry of
//     All/<PKGNAME><suffix> that pkgrun stores next to each package
//     (Joyent pbulk's pkginfo/<PKGNAME>.pkginfo);
//   - from the packages themselves: for a package without a usable
//     fragment, its metadata is read from the store (only the members in
//     front of the payload are read) and its entry computed, exactly as
//     `pkg_info -X` prints it (lib/summary). The computed fragment is
//     written back to index/ so that the next merge finds it.
//
// # Which packages
//
// Every All/*<suffix> file (suffix ".tgz" by default, pbulk's pkg_sufx),
// or, when a success list is given (pbulk's meta/success: one PKGNAME a
// line), exactly the listed packages; a listed package without a file is
// reported as failed. An exclude list removes PKGNAMEs (for example the
// NO_BIN_ON_FTP ones). Like pbulk, the default includes restricted
// (NO_BIN_ON_FTP) packages: pbulk lists every successfully built package
// and leaves it to the upload step to skip restricted files.
//
// # When a fragment is used
//
// A fragment is used when it is not older than its package and its
// FILE_NAME and FILE_SIZE match the package file as stored. The size check
// catches what modification times cannot on stores with one-second
// resolution: signing a package (pkgsign) rewrites it as an ar container
// whose size always differs, so its fragment is recomputed. A fragment that
// does not parse is recomputed too (and counted in Result.Stale).
//
// # Reusing the previous summary
//
// On a store that is listed (every store but a local directory, which
// reads a fragment faster than it could compare it), a merge takes the
// entry of a package from the published summary, without fetching its
// fragment, when the package has the size that entry records and both
// the package and its fragment are strictly older than the newest object
// of the previous merge's listing (by 2 s). That merge recorded, in
// index/merge-state.json, the digest of the summary it published and that
// time. Times come from the store's own clock, and every object written
// after a listing is newer than everything it showed, so an object that
// looks that old was read by the previous merge as it is now: the same
// quick check as rsync's (size and time), with the racy case (a rewrite
// in the same second as the listing) read again. A state that does not
// match the published summary (published by another tool, or lost)
// makes a full read; so does deleting a fragment for its package, or
// NoReuse for all. A merge with Cksum reuses only entries made with
// Cksum, and one without only entries made without. With SHA512, the
// digest of a package unchanged by that rule comes from the published
// SHA512.bz2 when the state vouches for it too.
//
// # Order and format
//
// Entries are concatenated in the byte order of the package file names
// (pbulk: `sed 's/$/.tgz/' < success | sort`, under LC_ALL=C), each ending
// with its blank line, so the result is byte-identical to pbulk's
// `xargs pkg_info -X` output over the same files.
//
// # Publishing
//
// The summary is published as All/pkg_summary (plain), All/pkg_summary.gz,
// All/pkg_summary.bz2 and All/pkg_summary.xz (pbulk publishes gz and bz2;
// newer pbulk scripts also xz; the plain file costs only its write and
// serves tools that do not decompress); Formats selects others, including
// "zst" (bob's pkg_summary.zst).
//
// pkg_summary.bz2 and pkg_summary.xz are multi-stream files
// (lib/multistream): the summary is cut into pieces of 1.8 MB (two bzip2
// blocks) and 4 MiB (xz), each compressed as a complete stream, and the
// streams are concatenated, as pbzip2 does. bzip2 -d, xz -d, libarchive
// (pkgin reads pkg_summary.* through it), Go's readers and every other
// decoder that follows the formats read such a file as the whole
// summary. All streams of all formats are compressed by one pool of
// GOMAXPROCS goroutines, costliest first: one bzip2 stream of 35 MB took
// 4 s of one core while the other idled. gz (a tenth of bzip2's cost)
// stays one stream. The files cost about 2% (bz2) more or 1% less (xz)
// than one stream would.
//
// Compressing overlaps reading: the summary is assembled in file name
// order as the fragments arrive, and each stream is compressed as soon as
// its piece is complete, so a merge from a remote store compresses while
// it waits for the network. Unless Force is set, the published summary is
// read back meanwhile and compared with the new one as it grows; the
// compression starts at the first difference, so an unchanged summary
// costs no compression at all. With SHA512, SHA512.bz2 is written at the
// store root like pbulk's: `digest SHA512` lines "SHA512 (All/x.tgz) =
// <hex>" for every package in the summary and for the published
// All/pkg_summary.* files, sorted by path. Package digests are cached in
// index/<PKGNAME>.sha512 (the digest line and a FILE_SIZE= line), valid
// under the same rule as fragments.
//
// Every file is written with the store's atomic Put (temporary name,
// rename): a client sees the old file or the new one, never a part. The
// set of files is published in a fixed order: all pkg_summary.* first, in
// the order of Formats, then SHA512.bz2 last, after everything it lists.
// So a client that fetches SHA512.bz2 first and the files it names next
// always gets files matching those digests (unless a newer merge publishes
// in between: then the check fails and a retry succeeds). A client that
// fetches two pkg_summary.* files during a merge may get one old and one
// new; each is complete and self-consistent.
//
// Packages whose metadata cannot be read are left out of the summary,
// reported in Result.Failed (naming the file and the reason), and the rest
// is still published (pbulk's pipeline does the same: pkg_info complains
// and xargs goes on). So are packages without exactly one non-empty @name
// in +CONTENTS, and packages whose @name is not their file's name
// (<PKGNAME><suffix>): pbulk would publish an entry without PKGNAME, or
// the same PKGNAME twice. A package cut short by the store (a dropped
// connection, after the store's retries) is not a bad package: that
// stops the merge, and nothing is published without it.
package merge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/summary"
)

// Options configure Merge. The zero value publishes gz, bz2 and xz from all
// packages under All/ with suffix ".tgz".
type Options struct {
	Suffix  string          // package file suffix; default ".tgz"
	Success []string        // PKGNAMEs to include; nil means every package in All/
	Exclude map[string]bool // PKGNAMEs to leave out
	Formats []string        // of "gz", "bz2", "xz", "zst", "plain"; nil means plain, gz, bz2, xz
	SHA512  bool            // also publish SHA512.bz2
	Cksum   bool            // add FILE_CKSUM=sha256 to computed entries (reads whole packages)
	// Force publishes even when the store already holds the same summary
	// (by default an unchanged summary is not compressed and rewritten).
	Force bool
	// NoWriteBack leaves computed fragments and digests unsaved.
	NoWriteBack bool
	// NoReuse reads every fragment (or package) even when the previous
	// merge's summary holds its entry (see the package comment).
	NoReuse bool
	// Workers bounds parallel package and fragment reads; default
	// 4×GOMAXPROCS (remote stores are latency bound).
	Workers int
	// Output, when set, receives the uncompressed pkg_summary instead of
	// publishing anything to the store.
	Output io.Writer
	// Progress, when set, receives a progress line now and then.
	Progress io.Writer
}

// Failure is one package left out of the summary.
type Failure struct {
	PkgName string `json:"pkgname"`
	Error   string `json:"error"`
}

// Result summarises a merge (pkgindex merge --json prints it).
type Result struct {
	Store          string    `json:"store"`
	Packages       int       `json:"packages"`       // entries in the summary
	Reused         int       `json:"reused"`         // entries taken from the previous summary
	FromFragments  int       `json:"from_fragments"` // entries taken from index/
	Computed       int       `json:"computed"`       // entries computed from packages
	Stale          int       `json:"stale"`          // fragments present but unusable
	Excluded       int       `json:"excluded"`       // packages left out by the exclude list or absent from the success list
	Failed         []Failure `json:"failed"`
	Published      []string  `json:"published"` // object names written, in order
	Unchanged      bool      `json:"unchanged"` // the store already held this summary: nothing was rewritten
	SummaryBytes   int64     `json:"summary_bytes"`
	ReadSeconds    float64   `json:"read_seconds"`    // listing and reading fragments and packages (compression starts meanwhile)
	PublishSeconds float64   `json:"publish_seconds"` // the rest: finishing the compression, writing
	Seconds        float64   `json:"seconds"`         // all of it
}

// ErrNothingIndexed is returned (with the Result) when packages exist but
// none could be read: nothing is published then.
var ErrNothingIndexed = errors.New("no package could be indexed")

// ErrNoPackages is returned when there is nothing to index and no success
// list says that this is expected.
var ErrNoPackages = errors.New("no packages")

type pkg struct {
	name     string // PKGNAME
	file     string // All/<PKGNAME><suffix>
	info     store.Info
	frag     *store.Info // index/<PKGNAME>.pkginfo, if present
	sum      *store.Info // index/<PKGNAME>.sha512, if present
	entry    []byte
	digest   string // hex SHA512 of the package file
	computed bool
	reused   bool // entry taken from the previous summary
	stale    bool
	err      error
	done     bool // processed (under Merge's commit lock)

	// probe: index/ was not listed (the store is a statReader); frag and
	// sum are found by reading them, their bytes kept here.
	probe    bool
	fragData []byte
	sumData  []byte
}

// Merge builds the pkg_summary of s and publishes it (see the package
// comment).
func Merge(ctx context.Context, s store.Store, o Options) (*Result, error) {
	start := time.Now()
	if o.Suffix == "" {
		o.Suffix = ".tgz"
	}
	if o.Formats == nil {
		o.Formats = []string{"plain", "gz", "bz2", "xz"}
	}
	for _, f := range o.Formats {
		if _, ok := formats[f]; !ok {
			return nil, fmt.Errorf("unknown pkg_summary format %q (want gz, bz2, xz, zst or plain)", f)
		}
	}
	if o.Workers <= 0 {
		o.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	res := &Result{Store: s.String(), Failed: []Failure{}, Published: []string{}}

	// What the last merge left is read while the store is listed: the
	// published summary (to leave it alone when unchanged, and to reuse
	// its entries) and, on a store that is listed, the merge state. A
	// local store (statReader) reads its fragments faster than it would
	// list index/ to compare them, and keeps no state.
	withState := asStatReader(s) == nil && !o.NoReuse
	var prev *previous
	if o.Output == nil && !o.Force || withState {
		prev = loadPrevious(ctx, s, o, withState)
		defer prev.stop()
	}
	pkgs, listed, err := collect(ctx, s, o, res)
	if err != nil {
		return nil, err
	}
	if len(pkgs) == 0 && o.Success == nil {
		return nil, fmt.Errorf("%w: no All/*%s in %s", ErrNoPackages, o.Suffix, s)
	}
	if withState {
		prev.wait()
		if entries, before := prev.reusable(o); entries != nil {
			for _, p := range pkgs {
				if p.err == nil && reuse(p, entries, before, o) {
					res.Reused++
				}
			}
		}
	}

	// The summary grows in file name order while the workers read: each
	// finished package lets commit append every entry that is now
	// complete up to it, and the publisher compresses those streams of
	// it that are complete while reading goes on.
	hint := 0
	for _, p := range pkgs {
		switch {
		case p.reused:
			hint += len(p.entry)
		case p.frag != nil:
			hint += int(p.frag.Size) + 2
		case p.probe:
			hint += 1200 // a little more than pkgsrc's entries average
		}
	}
	var pub *publisher
	if o.Output == nil {
		pub = newPublisher(ctx, s, o, prev)
		defer pub.abort()
	}
	var (
		mu        sync.Mutex
		sum       = make([]byte, 0, hint)
		committed int
	)
	commit := func(p *pkg) {
		mu.Lock()
		defer mu.Unlock()
		p.done = true
		grown := false
		for ; committed < len(pkgs) && pkgs[committed].done; committed++ {
			if q := pkgs[committed]; q.err == nil {
				sum = append(sum, q.entry...)
				q.entry = nil // one copy is enough
				grown = true
			}
		}
		if grown && pub != nil {
			pub.feed(sum)
		}
	}

	var done atomic.Int64
	stopProgress := progress(o.Progress, &done, len(pkgs))
	// A fixed set of workers taking the next package: one goroutine per
	// package cost more than reading a fragment from a local disk.
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range min(o.Workers, max(len(pkgs), 1)) {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(pkgs) {
					return nil
				}
				p := pkgs[i]
				if p.err != nil {
					commit(p)
					continue
				}
				err := process(gctx, s, o, p)
				done.Add(1)
				if err != nil && gctx.Err() == nil && !isPackageErr(err) {
					return err // the store failed: stop everything
				}
				if gctx.Err() != nil {
					return gctx.Err()
				}
				p.err = err
				commit(p)
			}
		})
	}
	err = g.Wait()
	stopProgress()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	for _, p := range pkgs {
		if p.err != nil {
			res.Failed = append(res.Failed, Failure{PkgName: p.name, Error: p.err.Error()})
			continue
		}
		res.Packages++
		if p.reused {
			continue
		}
		if p.computed {
			res.Computed++
		} else {
			res.FromFragments++
		}
		if p.stale {
			res.Stale++
		}
	}
	res.SummaryBytes = int64(len(sum))
	res.ReadSeconds = time.Since(start).Seconds()
	if res.Packages == 0 && len(res.Failed) > 0 {
		// Publishing an empty summary would empty the repository for
		// every client: refuse.
		return res, fmt.Errorf("%w: none of the %d packages in %s could be indexed (first: %s: %s); nothing published",
			ErrNothingIndexed, len(res.Failed), s, res.Failed[0].PkgName, res.Failed[0].Error)
	}

	if o.Output != nil {
		if _, err := o.Output.Write(sum); err != nil {
			return nil, err
		}
	} else {
		if err := pub.publish(pkgs, sum, res); err != nil {
			return nil, err
		}
		if withState {
			known := "" // an unchanged summary is the one reusable hashed
			if res.Unchanged {
				known = prev.sumSHA256
			}
			if err := writeState(ctx, s, o, prev.state, sum, known, pub.sha512, listed); err != nil {
				return nil, err
			}
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.PublishSeconds = res.Seconds - res.ReadSeconds
	return res, nil
}

// packageErr marks an error as the package's own fault (bad or missing
// package): it excludes the package but does not stop the merge.
type packageErr struct{ err error }

func (e packageErr) Error() string { return e.err.Error() }
func (e packageErr) Unwrap() error { return e.err }

func isPackageErr(err error) bool {
	var pe packageErr
	return errors.As(err, &pe)
}

// collect lists All/ and index/ and returns the packages to index, sorted
// by file name, and the newest modification time it listed.
func collect(ctx context.Context, s store.Store, o Options, res *Result) ([]*pkg, time.Time, error) {
	// The two listings are independent: run them together (on a local
	// store each is tens of thousands of lstats, on a remote one a
	// sequence of round trips).
	byName := map[string]*pkg{}
	var index []store.Info
	var newestAll, newestIndex time.Time
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := s.List(gctx, "All/", func(i store.Info) error {
			if i.ModTime.After(newestAll) {
				newestAll = i.ModTime
			}
			base := strings.TrimPrefix(i.Name, "All/")
			if strings.Contains(base, "/") || !strings.HasSuffix(base, o.Suffix) {
				return nil
			}
			name := strings.TrimSuffix(base, o.Suffix)
			if name == "" || strings.HasPrefix(base, "pkg_summary.") {
				return nil
			}
			byName[name] = &pkg{name: name, file: i.Name, info: i}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list All/ in %s: %w", s, err)
		}
		return nil
	})
	probe := asStatReader(s) != nil
	g.Go(func() error {
		if probe {
			return nil // process reads index/ directly
		}
		err := s.List(gctx, "index/", func(i store.Info) error {
			if i.ModTime.After(newestIndex) {
				newestIndex = i.ModTime
			}
			index = append(index, i)
			return nil
		})
		if err != nil {
			return fmt.Errorf("list index/ in %s: %w", s, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, time.Time{}, err
	}
	for _, p := range byName {
		p.probe = probe
	}
	for _, i := range index {
		base := strings.TrimPrefix(i.Name, "index/")
		if name, ok := strings.CutSuffix(base, ".pkginfo"); ok {
			if p := byName[name]; p != nil {
				p.frag = &i
			}
		} else if name, ok := strings.CutSuffix(base, ".sha512"); ok {
			if p := byName[name]; p != nil {
				p.sum = &i
			}
		}
	}

	var pkgs []*pkg
	if o.Success != nil {
		seen := map[string]bool{}
		for _, name := range o.Success {
			if seen[name] {
				continue
			}
			seen[name] = true
			if o.Exclude[name] {
				continue
			}
			p := byName[name]
			if p == nil {
				p = &pkg{name: name, file: "All/" + name + o.Suffix,
					err: fmt.Errorf("%s: listed as built but missing from %s", "All/"+name+o.Suffix, s)}
			}
			pkgs = append(pkgs, p)
		}
		// Everything in All/ that is not indexed was left out.
		res.Excluded = len(byName) - countPresent(pkgs)
	} else {
		for name, p := range byName {
			if o.Exclude[name] {
				res.Excluded++
				continue
			}
			pkgs = append(pkgs, p)
		}
	}
	slices.SortFunc(pkgs, func(a, b *pkg) int { return strings.Compare(a.file, b.file) })
	if newestIndex.After(newestAll) {
		newestAll = newestIndex
	}
	return pkgs, newestAll, nil
}

func countPresent(ps []*pkg) int {
	n := 0
	for _, p := range ps {
		if p.err == nil {
			n++
		}
	}
	return n
}

// fresh reports whether a cached object (fragment or digest) may stand for
// the package.
func fresh(cache *store.Info, p *pkg) bool {
	return cache != nil && !cache.ModTime.Before(p.info.ModTime)
}

// statReader is implemented by stores that read a small object and
// describe it (as List would) in one go: lib/store/filestore, where
// reading index/<PKGNAME>.pkginfo directly costs less than listing 30,000
// files and then reading them. A missing object is an error wrapping
// store.ErrNotExist.
type statReader interface {
	ReadFileInfo(ctx context.Context, name string) ([]byte, store.Info, error)
}

// asStatReader returns the statReader s is or wraps (storeopen wraps
// every store in lib/store/retry, whose retries are for networks: a local
// read that fails fails again), or nil.
func asStatReader(s store.Store) statReader {
	for {
		if sr, ok := s.(statReader); ok {
			return sr
		}
		u, ok := s.(interface{ Unwrap() store.Store })
		if !ok {
			return nil
		}
		s = u.Unwrap()
	}
}

// probeFile reads a cached object (fragment or digest) that index/ was
// not listed for.
func probeFile(ctx context.Context, s store.Store, name string) ([]byte, *store.Info, error) {
	b, i, err := asStatReader(s).ReadFileInfo(ctx, name)
	switch {
	case err == nil:
		return b, &i, nil
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	}
	return nil, nil, err
}

func process(ctx context.Context, s store.Store, o Options, p *pkg) error {
	needDigest := o.SHA512 && p.digest == "" // known when reused
	if p.reused && !needDigest {
		return nil
	}
	if p.probe {
		if !o.Cksum { // with Cksum fragments are not used
			b, info, err := probeFile(ctx, s, "index/"+p.name+".pkginfo")
			switch {
			case err == nil:
				p.frag, p.fragData = info, b
			case ctx.Err() != nil:
				return err
			case !store.IsNotExist(err):
				p.stale = true // present but unreadable: recompute
			}
		}
		if o.SHA512 {
			b, info, err := probeFile(ctx, s, "index/"+p.name+".sha512")
			if err == nil {
				p.sum, p.sumData = info, b
			} else if ctx.Err() != nil {
				return err
			}
		}
	}
	if needDigest && fresh(p.sum, p) {
		if d, ok := readDigest(ctx, s, p); ok {
			p.digest, needDigest = d, false
		}
	}
	switch {
	case p.reused:
		// Only the digest is missing.
	case fresh(p.frag, p) && !o.Cksum:
		e, err := readFragment(ctx, s, p)
		if err == nil {
			p.entry = e
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else {
			p.stale = true
		}
	case p.frag != nil:
		p.stale = !o.Cksum
	}
	if p.entry != nil && !needDigest {
		return nil
	}
	return compute(ctx, s, o, p, needDigest)
}

// readFragment returns the fragment of p if it is one well-formed entry
// for the package file as stored.
func readFragment(ctx context.Context, s store.Store, p *pkg) ([]byte, error) {
	b := p.fragData
	if b == nil {
		var err error
		if b, err = getAll(ctx, s, p.frag.Name, p.frag.Size); err != nil {
			return nil, err
		}
	}
	p.fragData = nil
	if err := checkFragment(b, p.name, strings.TrimPrefix(p.file, "All/"), p.info.Size); err != nil {
		return nil, fmt.Errorf("%s: %w", p.frag.Name, err)
	}
	// Normalise the end: exactly one blank line, whatever the writer did.
	b = append(bytes.TrimRight(b, "\n"), '\n', '\n')
	return b, nil
}

// checkFragment checks, cheaply (30,000 of them are read per merge), that
// b is one pkg_summary entry (VAR=value lines, no blank line but at the
// end) of the package pkgName (one PKGNAME line) whose FILE_NAME and
// FILE_SIZE describe the package file.
func checkFragment(b []byte, pkgName, fileName string, size int64) error {
	body := bytes.TrimRight(b, "\n")
	if len(body) == 0 {
		return fmt.Errorf("empty fragment")
	}
	var gotName, gotSize []byte
	pkgNames := 0
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 {
			return fmt.Errorf("line %d is not VARIABLE=VALUE (%d-line fragment)", n, bytes.Count(b, []byte{'\n'}))
		}
		switch string(line[:eq]) {
		case "PKGNAME":
			if pkgNames++; string(line[eq+1:]) != pkgName {
				return fmt.Errorf("PKGNAME %q, want %q", line[eq+1:], pkgName)
			}
		case "FILE_NAME":
			gotName = line[eq+1:]
		case "FILE_SIZE":
			gotSize = line[eq+1:]
		}
	}
	if pkgNames != 1 {
		return fmt.Errorf("%d PKGNAME lines, want one", pkgNames)
	}
	if string(gotName) != fileName {
		return fmt.Errorf("FILE_NAME %q, want %q", gotName, fileName)
	}
	if string(gotSize) != strconv.FormatInt(size, 10) {
		return fmt.Errorf("FILE_SIZE %s, but the package has %d bytes", gotSize, size)
	}
	return nil
}

func readDigest(ctx context.Context, s store.Store, p *pkg) (string, bool) {
	b := p.sumData
	if b == nil {
		var err error
		if b, err = getAll(ctx, s, p.sum.Name, p.sum.Size); err != nil {
			return "", false
		}
	}
	p.sumData = nil
	want := "SHA512 (" + p.file + ") = "
	var digest string
	sizeOK := false
	for _, l := range strings.Split(string(b), "\n") {
		if d, ok := strings.CutPrefix(l, want); ok && len(d) == 128 {
			digest = d
		}
		if l == "FILE_SIZE="+strconv.FormatInt(p.info.Size, 10) {
			sizeOK = true
		}
	}
	return digest, digest != "" && sizeOK
}

// getAll reads a small object whose listed size is size.
func getAll(ctx context.Context, s store.Store, name string, size int64) ([]byte, error) {
	if sr := asStatReader(s); sr != nil {
		b, _, err := sr.ReadFileInfo(ctx, name)
		return b, err
	}
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Read into one exact buffer (plus a byte to see the end): with 30,000
	// fragments per merge, growing buffers dominated the profile.
	buf := make([]byte, int(min(max(size, 0), 16<<20))+1)
	n, err := io.ReadFull(rc, buf)
	switch err {
	case io.ErrUnexpectedEOF, io.EOF:
		return buf[:n], nil
	case nil:
		// Larger than listed (rewritten since the listing): read the rest.
		rest, err := io.ReadAll(rc)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return append(buf, rest...), nil
	}
	return nil, fmt.Errorf("read %s: %w", name, err)
}

// compute reads the package once: the metadata from its front and, when a
// digest or FILE_CKSUM is needed, every byte through the hashes.
func compute(ctx context.Context, s store.Store, o Options, p *pkg, needDigest bool) error {
	rc, err := s.Get(ctx, p.file)
	if err != nil {
		if ctx.Err() == nil && store.IsPermanent(err) {
			return packageErr{err} // gone since the listing, or unreadable
		}
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	h512 := sha512.New()
	var hs []io.Writer
	if needDigest {
		hs = append(hs, h512)
	}
	var cks summary.Hash
	if o.Cksum && p.entry == nil {
		cks = summary.NewCksum()
		hs = append(hs, cks)
	}
	if len(hs) > 0 {
		r = io.TeeReader(rc, io.MultiWriter(hs...))
	}
	var m *pkgfile.Meta
	if p.entry == nil {
		m, err = pkgfile.ReadMeta(p.file, r)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// ReadMeta says what is wrong with the package (ErrFormat)
			// apart from what went wrong reading it; of the latter, only
			// what retrying cannot cure is this package's alone.
			if errors.Is(err, pkgfile.ErrFormat) || store.IsPermanent(err) {
				return packageErr{err}
			}
			return fmt.Errorf("read %s: %w", p.file, err)
		}
		if err := checkName(m, p); err != nil {
			return packageErr{err}
		}
	}
	if len(hs) > 0 {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("read %s: %w", p.file, err)
		}
	}
	if needDigest {
		p.digest = hex.EncodeToString(h512.Sum(nil))
	}
	if p.entry == nil {
		f := summary.File{Name: strings.TrimPrefix(p.file, "All/"), Size: p.info.Size}
		if cks != nil {
			f.Cksum = cks.String()
		}
		p.entry = summary.AppendEntry(nil, m, f)
		p.computed = true
		if !o.NoWriteBack && o.Output == nil && !o.Cksum {
			name := "index/" + p.name + ".pkginfo"
			if err := s.Put(ctx, name, bytes.NewReader(p.entry), int64(len(p.entry))); err != nil {
				return fmt.Errorf("save fragment: %w", err)
			}
		}
	}
	if needDigest && !o.NoWriteBack && o.Output == nil {
		line := fmt.Sprintf("SHA512 (%s) = %s\nFILE_SIZE=%d\n", p.file, p.digest, p.info.Size)
		if err := s.Put(ctx, "index/"+p.name+".sha512", strings.NewReader(line), int64(len(line))); err != nil {
			return fmt.Errorf("save digest: %w", err)
		}
	}
	return nil
}

// checkName refuses a package without a usable @name, or whose @name is
// not the name of its file: its entry would lack PKGNAME, or describe a
// package that a client looking for <PKGNAME><suffix> does not find, and
// two such files could put the same PKGNAME into the summary twice.
func checkName(m *pkgfile.Meta, p *pkg) error {
	name, err := summary.PkgName(m)
	if err != nil {
		return fmt.Errorf("%s: %w", p.file, err)
	}
	if name != p.name {
		return fmt.Errorf("%s: %w: +CONTENTS says @name %s, the file name says %s (not indexed under another name)",
			p.file, pkgfile.ErrFormat, name, p.name)
	}
	return nil
}

// progress prints "merge: n/total" to w once a second until stopped.
func progress(w io.Writer, done *atomic.Int64, total int) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintf(w, "\rpkgindex: %d/%d packages\n", done.Load(), total)
				return
			case <-t.C:
				fmt.Fprintf(w, "\rpkgindex: %d/%d packages", done.Load(), total)
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// ReadList reads a success or exclude list: one PKGNAME a line, blank
// lines and "#" comments ignored.
func ReadList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.ContainsAny(l, " \t/") {
			return nil, fmt.Errorf("%s:%d: %q is not a package name", path, line, l)
		}
		names = append(names, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, nil
}
