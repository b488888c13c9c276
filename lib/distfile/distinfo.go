// Package distfile reads pkgsrc's distinfo files, verifies distfiles
// against them, and keeps a verified cache of distfiles in a store's
// distfiles/ (see Cache), so that builders fetch a distfile from the
// internet once for all of them, or never when the store has it.
//
// A distinfo file lists, per file relative to DISTDIR (DIST_SUBDIR
// included, as pkgsrc's _CKSUMFILES), one line per digest and one Size
// line:
//
//	$NetBSD$
//
//	SHA1 (foo-1.0.tar.gz) = 3b5c...
//	RMD160 (foo-1.0.tar.gz) = 9a1f...
//	SHA512 (foo-1.0.tar.gz) = 77e0...
//	Size (foo-1.0.tar.gz) = 123456 bytes
//	SHA1 (patch-aa) = 0f3e...
//
// Patches (names starting with patch-, without a Size line) are not
// distfiles.
package distfile

import (
	"bufio"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // pkgsrc's distinfo files still carry RMD160
)

// ErrMismatch is wrapped by every verification failure: a wrong size or
// digest.
var ErrMismatch = errors.New("checksum mismatch")

// ErrUnverifiable is wrapped when a file has no digest this package can
// compute.
var ErrUnverifiable = errors.New("no digest to verify against")

// Entry is what distinfo says about one file.
type Entry struct {
	Name string            // relative to DISTDIR, DIST_SUBDIR included
	Size int64             // -1 without a Size line
	Sums map[string]string // algorithm (as written: SHA512, BLAKE2s, ...) -> lower-case hex
}

// Distinfo is a parsed distinfo file.
type Distinfo struct {
	Entries []Entry // in the order of their first line
	byName  map[string]int
}

// Lookup returns the entry of name.
func (d *Distinfo) Lookup(name string) (Entry, bool) {
	if d == nil {
		return Entry{}, false
	}
	i, ok := d.byName[name]
	if !ok {
		return Entry{}, false
	}
	return d.Entries[i], true
}

// Distfiles returns the entries that are distfiles, not patches.
func (d *Distinfo) Distfiles() []Entry {
	var out []Entry
	for _, e := range d.Entries {
		if e.IsDistfile() {
			out = append(out, e)
		}
	}
	return out
}

// IsDistfile reports whether e is a distfile (it has a Size line, or its
// name is not a patch's).
func (e Entry) IsDistfile() bool {
	return e.Size >= 0 || !strings.HasPrefix(path.Base(e.Name), "patch-")
}

// maxLine bounds one line of a distinfo file.
const maxLine = 64 << 10

// Parse reads a distinfo file; file names it in errors (file:line).
// Unknown algorithms are kept (and ignored by verification); a malformed
// line, a name that is absolute or has ".." elements, or two different
// values for one algorithm and name are errors.
func Parse(r io.Reader, file string) (*Distinfo, error) {
	d := &Distinfo{byName: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "$") || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s: %q", file, n, why, clip(line)) }
		alg, rest, ok := strings.Cut(line, " (")
		if !ok || alg == "" || strings.ContainsAny(alg, " \t") {
			return nil, bad("not ALGORITHM (file) = value")
		}
		i := strings.LastIndex(rest, ") = ")
		if i < 0 {
			return nil, bad("not ALGORITHM (file) = value")
		}
		name, val := rest[:i], rest[i+4:]
		if err := checkName(name); err != nil {
			return nil, bad(err.Error())
		}
		idx, seen := d.byName[name]
		if !seen {
			idx = len(d.Entries)
			d.byName[name] = idx
			d.Entries = append(d.Entries, Entry{Name: name, Size: -1, Sums: map[string]string{}})
		}
		e := &d.Entries[idx]
		if alg == "Size" {
			num, ok := strings.CutSuffix(val, " bytes")
			if !ok {
				return nil, bad("a Size line ends in ' bytes'")
			}
			sz, err := strconv.ParseInt(num, 10, 64)
			if err != nil || sz < 0 {
				return nil, bad("bad size")
			}
			if e.Size >= 0 && e.Size != sz {
				return nil, bad("a second, different Size for " + name)
			}
			e.Size = sz
			continue
		}
		val = strings.ToLower(val)
		if val == "" || strings.Trim(val, "0123456789abcdef") != "" {
			return nil, bad("the digest is not hexadecimal")
		}
		if old, ok := e.Sums[alg]; ok && old != val {
			return nil, bad("a second, different " + alg + " for " + name)
		}
		e.Sums[alg] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, n+1, err)
	}
	return d, nil
}

// ReadFile parses the distinfo file at p (at most 16 MiB).
func ReadFile(p string) (*Distinfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(io.LimitReader(f, 16<<20), p)
}

// checkName accepts a relative slash-separated name without "." or ".."
// elements, as distinfo names and store names must be.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.ContainsAny(name, "\\\x00\n") {
		return fmt.Errorf("bad file name %q", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." || strings.HasPrefix(el, ".pkgbulk-") {
			return fmt.Errorf("bad file name %q", name)
		}
	}
	return nil
}

// CheckName reports whether name may be a distfile's name (relative to
// DISTDIR, no "..", no empty elements).
func CheckName(name string) error { return checkName(name) }

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// newHash returns the hash of a distinfo algorithm, nil for unknown ones.
func newHash(alg string) hash.Hash {
	switch alg {
	case "SHA512":
		return sha512.New()
	case "SHA256":
		return sha256.New()
	case "SHA1":
		return sha1.New()
	case "RMD160":
		return ripemd160.New()
	case "MD5":
		return md5.New()
	case "BLAKE2s":
		h, _ := blake2s.New256(nil)
		return h
	}
	return nil
}

// strong are the algorithms that alone may vouch for a file.
var strong = map[string]bool{"SHA512": true, "SHA256": true, "BLAKE2s": true, "RMD160": true, "SHA1": true}

// Verifiable reports whether e has a digest this package computes.
func (e Entry) Verifiable() error {
	for alg := range e.Sums {
		if strong[alg] {
			return nil
		}
	}
	return fmt.Errorf("%s: %w (distinfo has %s)", e.Name, ErrUnverifiable, strings.Join(e.algorithms(), ", "))
}

func (e Entry) algorithms() []string {
	var a []string
	for alg := range e.Sums {
		a = append(a, alg)
	}
	sort.Strings(a)
	if len(a) == 0 {
		return []string{"no digest"}
	}
	return a
}

// Verifier checks the bytes written to it against an entry.
type Verifier struct {
	e      Entry
	n      int64
	hashes map[string]hash.Hash
}

// NewVerifier starts verifying data against e (every known algorithm of
// e, and its size).
func (e Entry) NewVerifier() *Verifier {
	v := &Verifier{e: e, hashes: map[string]hash.Hash{}}
	for alg := range e.Sums {
		if h := newHash(alg); h != nil {
			v.hashes[alg] = h
		}
	}
	return v
}

// Write hashes p.
func (v *Verifier) Write(p []byte) (int, error) {
	v.n += int64(len(p))
	for _, h := range v.hashes {
		h.Write(p)
	}
	if v.e.Size >= 0 && v.n > v.e.Size {
		return len(p), fmt.Errorf("%s: %w: more than the %d bytes distinfo says", v.e.Name, ErrMismatch, v.e.Size)
	}
	return len(p), nil
}

// Check says whether what was written is the file of the entry.
func (v *Verifier) Check() error {
	if err := v.e.Verifiable(); err != nil {
		return err
	}
	if v.e.Size >= 0 && v.n != v.e.Size {
		return fmt.Errorf("%s: %w: %d bytes, distinfo says %d", v.e.Name, ErrMismatch, v.n, v.e.Size)
	}
	algs := make([]string, 0, len(v.hashes))
	for alg := range v.hashes {
		algs = append(algs, alg)
	}
	sort.Strings(algs)
	for _, alg := range algs {
		got := hex.EncodeToString(v.hashes[alg].Sum(nil))
		if got != v.e.Sums[alg] {
			return fmt.Errorf("%s: %w: %s is %s, distinfo says %s", v.e.Name, ErrMismatch, alg, got, v.e.Sums[alg])
		}
	}
	return nil
}

// Verify reads r to its end and checks it against e.
func (e Entry) Verify(r io.Reader) error {
	v := e.NewVerifier()
	if _, err := io.Copy(v, r); err != nil {
		return err
	}
	return v.Check()
}
