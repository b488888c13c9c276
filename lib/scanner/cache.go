package scanner

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
)

// Cache file format ("pkgscan cache", version 1).
//
// The cache sits beside a scan output (default: <output>.cache) and tells a
// later `pkgscan --reuse <output>` what each location's make read, so that
// a rescan can prove a record still current without running make. It is a
// single JSON object, written atomically after the output:
//
//	{
//	  "format": "pkgscan-cache", "version": 1,
//	  "pkgsrc": "/abs/pkgsrc",            // tree root the paths are under
//	  "make": "bmake",                    // --make as given
//	  "make_id": {"path":..., "size":..., "mtime_ns":..., "sha256":...},
//	  "make_env": "<sha256 of the MAKE* environment variables>",
//	  "output": {"size": N, "sha256": "..."},   // the scan output it describes
//	  "files": [{"path":..., "size":..., "mtime_ns":..., "sha256":...}, ...],
//	  "tree": {"root": W, "categories": {"devel": W, ...}},   // full scans only
//	  "locations": {"devel/foo": {"deps": [0, 3, 7], "listing": "...",
//	                              "raw": "<base64>"}}
//	}
//
// where W = {"makefiles": [file indexes], "listing": "...", "words": [...]}
// is one show-subdir-var result: the words it printed, the files make read
// for it (.MAKE.MAKEFILES, asked for with -V on the scan that filled the
// cache) and the listing hash of its directory.
//
// "files" holds every file any entry depends on, once: an absolute path
// (SCAN_DEPENDS words resolved by spec §8's rules, not cleaned), its size,
// mtime in nanoseconds and SHA-256. "deps" of a location index into it and
// are the union of the SCAN_DEPENDS of all its records. "listing" is the
// SHA-256 of the directory's sorted entry names and kinds. "raw" is present
// only when the location's make output cannot be rebuilt from its records
// in the output (some records were dropped as duplicates or unrecognized):
// then it is the exact output, so that re-emitting it repeats the same
// warnings and the same choices as a fresh scan.
//
// A location is in the cache only when its scan succeeded, every record had
// a non-empty SCAN_DEPENDS, and no file it read was modified after its make
// started, less 50 ms for the kernel's coarse file clock (a file changing
// during the scan would otherwise be recorded with content the make never
// saw). The same holds for the tree walk entries, which only full scans
// record. Failed, empty and unprovable locations are
// simply absent and therefore always rescanned.
//
// The cache is used only when its format and version match, its pkgsrc,
// make, make_id and make_env equal the current ones, and its output size
// and SHA-256 equal the --reuse file's: a cache never vouches for an output
// it was not written with. Otherwise pkgscan says why on stderr and falls
// back to pbulk's timestamp rule.
//
// Not detected (as in pbulk): changes to environment variables other than
// MAKE*; to files make reads through shell commands (!=, ${:!cmd!}) rather
// than .include; files appearing or vanishing outside the package directory
// that make only tests (exists(), .sinclude of a missing file, such as
// builtin.mk's checks of the base system); and a file edited within the same
// nanosecond mtime and to the same size. After a system upgrade or an
// mk.conf created from scratch, scan without --reuse.
const (
	cacheFormat  = "pkgscan-cache"
	CacheVersion = 1
)

type cacheFileRec struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

type cacheLoc struct {
	Deps    []int  `json:"deps"`
	Listing string `json:"listing"`
	Raw     []byte `json:"raw,omitempty"`
}

type cacheWalk struct {
	Makefiles []int    `json:"makefiles"`
	Listing   string   `json:"listing"`
	Words     []string `json:"words"`
}

type cacheTree struct {
	Root       *cacheWalk            `json:"root"`
	Categories map[string]*cacheWalk `json:"categories"`
}

type cacheOutput struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type cacheData struct {
	Format    string               `json:"format"`
	Version   int                  `json:"version"`
	Pkgsrc    string               `json:"pkgsrc"`
	Make      string               `json:"make"`
	MakeID    cacheFileRec         `json:"make_id"`
	MakeEnv   string               `json:"make_env"`
	Output    cacheOutput          `json:"output"`
	Files     []cacheFileRec       `json:"files"`
	Tree      *cacheTree           `json:"tree,omitempty"`
	Locations map[string]*cacheLoc `json:"locations"`
}

func readCache(path string) (*cacheData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var c cacheData
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&c); err != nil {
		return nil, fmt.Errorf("read cache %s: %w", path, err)
	}
	if c.Format != cacheFormat {
		return nil, fmt.Errorf("%s is not a pkgscan cache (format %q)", path, c.Format)
	}
	if c.Version != CacheVersion {
		return nil, fmt.Errorf("%s has cache version %d, this pkgscan writes %d", path, c.Version, CacheVersion)
	}
	for loc, l := range c.Locations {
		for _, d := range l.Deps {
			if d < 0 || d >= len(c.Files) {
				return nil, fmt.Errorf("%s: location %s: file index %d out of range", path, loc, d)
			}
		}
	}
	if c.Tree != nil {
		walks := []*cacheWalk{c.Tree.Root}
		for _, w := range c.Tree.Categories {
			walks = append(walks, w)
		}
		for _, w := range walks {
			if w == nil {
				continue
			}
			for _, d := range w.Makefiles {
				if d < 0 || d >= len(c.Files) {
					return nil, fmt.Errorf("%s: tree: file index %d out of range", path, d)
				}
			}
		}
	}
	return &c, nil
}

func (c *cacheData) file(i int) fileState {
	r := c.Files[i]
	return fileState{Size: r.Size, MtimeNS: r.MtimeNS, SHA256: r.SHA256}
}

// filesUnchanged reports whether every indexed file still has its recorded
// content.
func (c *cacheData) filesUnchanged(memo *fileMemo, idx []int) bool {
	for _, i := range idx {
		if !memo.unchanged(c.Files[i].Path, c.file(i)) {
			return false
		}
	}
	return true
}

// makeIdentity identifies the make program: where --make resolves to and
// that file's content. A different bmake may parse the same files
// differently, so the whole cache depends on it.
func makeIdentity(memo *fileMemo, makeProg string) cacheFileRec {
	p, err := exec.LookPath(makeProg)
	if err != nil {
		return cacheFileRec{Path: makeProg}
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	st := memo.hashed(p)
	return cacheFileRec{Path: p, Size: st.Size, MtimeNS: st.MtimeNS, SHA256: st.SHA256}
}

// makeEnv fingerprints the environment variables make itself reads
// (MAKEFLAGS, MAKESYSPATH, MAKEOBJDIR, ...): all whose name starts with MAKE.
func makeEnv() string {
	var vars []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MAKE") {
			vars = append(vars, kv)
		}
	}
	sort.Strings(vars)
	h := newSHA()
	for _, v := range vars {
		io.WriteString(h, v)
		h.Write([]byte{0})
	}
	return hexSum(h)
}

// cacheBuilder collects a new cache during a scan, from many goroutines.
type cacheBuilder struct {
	mu    sync.Mutex
	index map[string]int
	data  cacheData
}

func newCacheBuilder(pkgsrc, makeProg string, makeID cacheFileRec, env string) *cacheBuilder {
	return &cacheBuilder{
		index: make(map[string]int),
		data: cacheData{
			Format: cacheFormat, Version: CacheVersion,
			Pkgsrc: pkgsrc, Make: makeProg, MakeID: makeID, MakeEnv: env,
			Locations: make(map[string]*cacheLoc),
		},
	}
}

// fileIndexes records paths with the states state gives (hashed) and
// returns their indexes, or ok=false when a
// file is missing or was modified at or after since (nanoseconds): then what
// make read cannot be pinned down.
func (b *cacheBuilder) fileIndexes(paths []string, since int64, state func(string) fileState) ([]int, bool) {
	states := make([]fileState, len(paths))
	for i, p := range paths {
		st := state(p)
		if st.Missing || st.MtimeNS >= since {
			return nil, false
		}
		states[i] = st
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	idx := make([]int, 0, len(paths))
	seen := make(map[int]bool, len(paths))
	for i, p := range paths {
		n, ok := b.index[p]
		if !ok {
			n = len(b.data.Files)
			b.index[p] = n
			st := states[i]
			b.data.Files = append(b.data.Files, cacheFileRec{Path: p, Size: st.Size, MtimeNS: st.MtimeNS, SHA256: st.SHA256})
		}
		if !seen[n] {
			seen[n] = true
			idx = append(idx, n)
		}
	}
	sort.Ints(idx)
	return idx, true
}

func (b *cacheBuilder) addLocation(loc string, l *cacheLoc) {
	b.mu.Lock()
	b.data.Locations[loc] = l
	b.mu.Unlock()
}

func (b *cacheBuilder) setWalk(cat string, w *cacheWalk) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.data.Tree == nil {
		b.data.Tree = &cacheTree{Categories: make(map[string]*cacheWalk)}
	}
	if cat == "" {
		b.data.Tree.Root = w
	} else {
		b.data.Tree.Categories[cat] = w
	}
}

// write stores the cache atomically at path, bound to the output described
// by out.
func (b *cacheBuilder) write(path string, out cacheOutput) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data.Output = out
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<16)
		enc := json.NewEncoder(bw)
		if err := enc.Encode(&b.data); err != nil {
			return err
		}
		return bw.Flush()
	})
}
