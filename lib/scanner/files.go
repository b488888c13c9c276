package scanner

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"sort"
	"sync"
)

// fileState is what the cache knows about one file.
type fileState struct {
	Missing bool
	Size    int64
	MtimeNS int64
	Mtime   int64  // seconds, for pbulk's rule
	SHA256  string // hex; "" until hashed
}

// fileMemo stats and hashes each path at most once per run, from any number
// of goroutines. Paths are the strings built by resolveDep, not cleaned:
// make may reach one file under several names, which only costs a stat.
type fileMemo struct {
	mu sync.Mutex
	m  map[string]*memoEntry
}

type memoEntry struct {
	statOnce, hashOnce sync.Once
	st                 fileState // written once under statOnce, never after
	sha                string    // written once under hashOnce
	hashErr            bool
}

func newFileMemo() *fileMemo { return &fileMemo{m: make(map[string]*memoEntry)} }

func (f *fileMemo) entry(path string) *memoEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[path]
	if e == nil {
		e = &memoEntry{}
		f.m[path] = e
	}
	return e
}

// stat returns the size and mtime of path (Missing when stat fails: like
// pbulk, any stat error means "changed").
func (f *fileMemo) stat(path string) fileState {
	e := f.entry(path)
	e.statOnce.Do(func() {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			e.st.Missing = true
			return
		}
		e.st.Size = fi.Size()
		e.st.MtimeNS = fi.ModTime().UnixNano()
		e.st.Mtime = fi.ModTime().Unix()
	})
	return e.st
}

// hashed returns stat plus the SHA-256 of the content. A file that cannot
// be read counts as missing.
func (f *fileMemo) hashed(path string) fileState {
	st := f.stat(path)
	if st.Missing {
		return st
	}
	e := f.entry(path)
	e.hashOnce.Do(func() {
		h, err := hashFile(path)
		if err != nil {
			e.hashErr = true
			return
		}
		e.sha = h
	})
	if e.hashErr {
		return fileState{Missing: true}
	}
	st.SHA256 = e.sha
	return st
}

func hashFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// unchanged reports whether path still has the content recorded in want:
// same size and mtime is trusted (as git and make do); a different mtime
// with the same size is settled by the content hash, so that a touched but
// unchanged file does not force a rescan.
func (f *fileMemo) unchanged(path string, want fileState) bool {
	st := f.stat(path)
	if st.Missing || want.Missing || st.Size != want.Size {
		return false
	}
	if st.MtimeNS == want.MtimeNS {
		return true
	}
	return f.hashed(path).SHA256 == want.SHA256 && want.SHA256 != ""
}

// listingHash hashes the sorted names (and kinds) of the entries of dir.
// It notices a file appearing in or vanishing from a package directory,
// which make can observe (exists(), .sinclude, wildcards) without the file
// ever showing up in SCAN_DEPENDS. "" when dir cannot be read.
func listingHash(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		kind := "f"
		if e.IsDir() {
			kind = "d"
		} else if e.Type()&os.ModeSymlink != 0 {
			kind = "l"
		}
		names = append(names, e.Name()+"\x00"+kind)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		io.WriteString(h, n)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// resolveDep turns one SCAN_DEPENDS word of location loc into a path, by
// pbulk's rules (spec §8): absolute words as they are; "../../x" as
// <pkgsrc>/x when loc has exactly one '/', else <pkgsrc>/<loc>/<word>;
// anything else as <pkgsrc>/<loc>/<word>.
func resolveDep(pkgsrc, loc, word string) string {
	switch {
	case len(word) > 0 && word[0] == '/':
		return word
	case len(word) >= 6 && word[:6] == "../../" && countSlash(loc) == 1:
		return pkgsrc + "/" + word[6:]
	default:
		return pkgsrc + "/" + loc + "/" + word
	}
}

// resolveMakefile resolves an entry of .MAKE.MAKEFILES read in dir.
func resolveMakefile(dir, word string) string {
	if len(word) > 0 && word[0] == '/' {
		return word
	}
	return dir + "/" + word
}

func countSlash(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			n++
		}
	}
	return n
}
