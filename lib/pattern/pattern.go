package pattern

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// MaxExpansions bounds the number of strings a pattern's alternates may expand
// to; Compile rejects patterns beyond it instead of matching for ages.
const MaxExpansions = 4096

// maxExpansionBytes bounds the text built while expanding alternates (deeply
// nested single alternatives re-copy the pattern at every level).
const maxExpansionBytes = 1 << 22

// maxLowerBound is the longest lower-bound version of a dewey range the C code
// keeps (it copies it into a 1024-byte buffer).
const maxLowerBound = 1023

// ErrMalformedAlternate is returned (wrapped) by Compile for unbalanced braces.
var ErrMalformedAlternate = errors.New("malformed alternate")

// ErrTooManyAlternates is returned (wrapped) by Compile for patterns expanding
// to more than MaxExpansions strings.
var ErrTooManyAlternates = errors.New("too many alternates")

type op uint8

const (
	opLT op = iota
	opLE
	opGT
	opGE
)

func (o op) holds(cmp int) bool {
	switch o {
	case opLT:
		return cmp < 0
	case opLE:
		return cmp <= 0
	case opGT:
		return cmp > 0
	}
	return cmp >= 0
}

// readOp reads the operator at the start of s, which starts with '<' or '>'.
func readOp(s string) (op, int) {
	switch {
	case strings.HasPrefix(s, "<="):
		return opLE, 2
	case strings.HasPrefix(s, "<"):
		return opLT, 1
	case strings.HasPrefix(s, ">="):
		return opGE, 2
	}
	return opGT, 1
}

type leafKind uint8

const (
	leafExact leafKind = iota
	leafDewey
	leafGlob
)

// leaf is one brace-free expansion of a pattern, ready to match.
type leaf struct {
	kind leafKind
	text string // the expansion; for exact leaves, the name it equals

	// dewey
	base     string
	op1      op
	v1       Version
	hasUpper bool
	op2      op
	v2       Version

	// glob
	glob glob
	// pkg_install's retry with text+"-[0-9]*" (exact and glob leaves)
	fallback glob
}

// Pattern is a compiled package pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	src    string
	leaves []leaf
}

// Compile prepares s for matching. It fails only for unbalanced braces and for
// alternates that expand to more than MaxExpansions strings.
func Compile(s string) (*Pattern, error) {
	x := expander{out: make([]string, 0, 1)}
	if err := x.expand(s); err != nil {
		return nil, fmt.Errorf("pattern %q: %w", s, err)
	}
	p := &Pattern{src: s, leaves: make([]leaf, 0, len(x.out))}
	seen := make(map[string]bool, len(x.out))
	for _, e := range x.out {
		if seen[e] {
			continue
		}
		seen[e] = true
		p.leaves = append(p.leaves, compileLeaf(e))
	}
	return p, nil
}

type expander struct {
	out   []string
	bytes int
}

// expand appends the brace-free expansions of s to x.out, in the order the C
// code tries them.
func (x *expander) expand(s string) error {
	x.bytes += len(s)
	if x.bytes > maxExpansionBytes {
		return fmt.Errorf("%w: expanding builds more than %d bytes", ErrTooManyAlternates, maxExpansionBytes)
	}
	open := strings.IndexByte(s, '{')
	if open < 0 {
		if len(x.out) >= MaxExpansions {
			return fmt.Errorf("%w: more than %d expansions", ErrTooManyAlternates, MaxExpansions)
		}
		x.out = append(x.out, s)
		return nil
	}
	depth, closing := 0, -1
	for i := open; i < len(s); i++ {
		if s[i] == '{' {
			depth++
		} else if s[i] == '}' {
			depth--
			if depth == 0 {
				closing = i
				break
			}
		}
	}
	if closing < 0 {
		return fmt.Errorf("%w: no '}' matching the '{' at byte %d of %q", ErrMalformedAlternate, open, s)
	}
	prefix, suffix := s[:open], s[closing+1:]
	// Alternatives end at a comma outside nested groups or at the closing
	// '}'; nested groups stay inside their alternative for the recursion.
	start := open + 1
	depth = 0
	for i := open + 1; i <= closing; i++ {
		switch s[i] {
		case '{':
			depth++
			continue
		case '}':
			if depth > 0 {
				depth--
				continue
			}
		case ',':
			if depth > 0 {
				continue
			}
		default:
			continue
		}
		if err := x.expand(prefix + s[start:i] + suffix); err != nil {
			return err
		}
		start = i + 1
	}
	return nil
}

func compileLeaf(t string) leaf {
	l := leaf{text: t}
	if sep := strings.IndexAny(t, "<>"); sep >= 0 {
		l.kind = leafDewey
		l.base = t[:sep]
		o, n := readOp(t[sep:])
		l.op1 = o
		rest := t[sep+n:]
		v1 := rest
		if o == opGT || o == opGE {
			if k := strings.IndexByte(rest, '<'); k >= 0 {
				o2, n2 := readOp(rest[k:])
				l.hasUpper, l.op2 = true, o2
				l.v2 = ParseVersion(rest[k+n2:])
				v1 = rest[:min(k, maxLowerBound)]
			}
		}
		l.v1 = ParseVersion(v1)
		return l
	}
	if strings.ContainsAny(t, "*?[]") {
		l.kind = leafGlob
		l.glob = compileGlob(t)
	} else {
		l.kind = leafExact
	}
	l.fallback = compileGlob(t + "-[0-9]*")
	return l
}

func (l *leaf) matchDewey(name string) bool {
	if len(name) <= len(l.base) || name[len(l.base)] != '-' || name[:len(l.base)] != l.base {
		return false
	}
	ver := name[len(l.base)+1:]
	// The base ends at the name's last '-'.
	if strings.IndexByte(ver, '-') >= 0 {
		return false
	}
	if l.hasUpper && !l.op2.holds(compareTo(ver, &l.v2)) {
		return false
	}
	return l.op1.holds(compareTo(ver, &l.v1))
}

func (l *leaf) matchPbulk(name string) bool {
	switch l.kind {
	case leafDewey:
		return l.matchDewey(name)
	case leafGlob:
		return l.glob.match(name)
	}
	return l.text == name
}

func (l *leaf) matchPkgInstall(name string) bool {
	switch l.kind {
	case leafDewey:
		return l.matchDewey(name)
	case leafGlob:
		if l.glob.match(name) {
			return true
		}
	}
	return l.text == name || l.fallback.match(name)
}

// String returns the pattern as it was compiled.
func (p *Pattern) String() string { return p.src }

// MatchPbulk reports whether pkgname matches the pattern the way pbulk's
// pkg_match does.
func (p *Pattern) MatchPbulk(pkgname string) bool {
	for i := range p.leaves {
		if p.leaves[i].matchPbulk(pkgname) {
			return true
		}
	}
	return false
}

// MatchPkgInstall reports whether pkgname matches the pattern the way
// pkg_install's pkg_match does (with its PATTERN-[0-9]* retry).
func (p *Pattern) MatchPkgInstall(pkgname string) bool {
	for i := range p.leaves {
		if p.leaves[i].matchPkgInstall(pkgname) {
			return true
		}
	}
	return false
}

// MatchPbulk compiles pattern and matches pkgname with pbulk's rules.
func MatchPbulk(pattern, pkgname string) (bool, error) {
	p, err := Compile(pattern)
	if err != nil {
		return false, err
	}
	return p.MatchPbulk(pkgname), nil
}

// MatchPkgInstall compiles pattern and matches pkgname with pkg_install's
// rules.
func MatchPkgInstall(pattern, pkgname string) (bool, error) {
	p, err := Compile(pattern)
	if err != nil {
		return false, err
	}
	return p.MatchPkgInstall(pkgname), nil
}

// Prefixes returns literal prefixes such that every name the pattern can
// match, in either mode, starts with at least one of them. A single ""
// means the pattern could match anything. Callers use it to index
// candidates, so it errs on the side of including.
func (p *Pattern) Prefixes() []string {
	var out []string
	for i := range p.leaves {
		l := &p.leaves[i]
		switch l.kind {
		case leafDewey:
			out = append(out, l.base+"-")
		case leafGlob:
			// A failed glob falls back to comparing the raw text, which
			// may spell the literal prefix with backslashes.
			out = append(out, commonPrefix(l.text, l.glob.prefix), l.fallback.prefix)
		default:
			// The fallback starts with text unless its own parse differs
			// (text ends inside an unterminated bracket or escape).
			out = append(out, commonPrefix(l.text, l.fallback.prefix))
		}
	}
	return minimalPrefixes(out)
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// minimalPrefixes drops duplicates and every prefix that another one in the
// list already covers.
func minimalPrefixes(ps []string) []string {
	sort.Slice(ps, func(i, j int) bool {
		if len(ps[i]) != len(ps[j]) {
			return len(ps[i]) < len(ps[j])
		}
		return ps[i] < ps[j]
	})
	var out []string
outer:
	for _, p := range ps {
		for _, q := range out {
			if strings.HasPrefix(p, q) {
				continue outer
			}
		}
		out = append(out, p)
	}
	return out
}
