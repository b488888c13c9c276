package pattern

import "strings"

// maxSmallDigits is the longest significant digit run held in an int64; longer
// runs are kept as their digit string and compared as big decimals.
const maxSmallDigits = 18

// cIntMax is the largest value the C implementations can hold in a component.
const cIntMax = 2147483647

// num is one version component or a PKGREVISION. When big is non-empty the
// value is the decimal number big (no leading zeros, more than maxSmallDigits
// digits, so larger than any small value) and n is unused.
type num struct {
	n   int64
	big string
}

func cmpNum(a, b num) int {
	switch {
	case a.big == "" && b.big == "":
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	case a.big == "":
		return -1
	case b.big == "":
		return 1
	case len(a.big) != len(b.big):
		if len(a.big) < len(b.big) {
			return -1
		}
		return 1
	}
	return strings.Compare(a.big, b.big)
}

// digitsNum converts a run of ASCII digits.
func digitsNum(d string) num {
	for len(d) > 1 && d[0] == '0' {
		d = d[1:]
	}
	if len(d) > maxSmallDigits {
		return num{big: d}
	}
	var n int64
	for i := 0; i < len(d); i++ {
		n = n*10 + int64(d[i]-'0')
	}
	return num{n: n}
}

func (a num) overflows() bool { return a.big != "" || a.n > cIntMax }

// Version is a parsed dewey version: its components and its PKGREVISION.
// The zero Version is the empty version, equal to "0".
type Version struct {
	comps []num
	nb    num
}

// ParseVersion parses s with the dewey grammar described in the package
// documentation. It never fails: bytes it does not understand are ignored.
func ParseVersion(s string) Version {
	var v Version
	it := verIter{s: s}
	for {
		c, ok := it.next()
		if !ok {
			break
		}
		v.comps = append(v.comps, c)
	}
	v.nb = it.nb
	return v
}

// Compare returns -1, 0 or 1 as v sorts before, equal to or after w.
func (v Version) Compare(w Version) int {
	n := max(len(v.comps), len(w.comps))
	for i := 0; i < n; i++ {
		if c := cmpNum(v.comp(i), w.comp(i)); c != 0 {
			return c
		}
	}
	return cmpNum(v.nb, w.nb)
}

func (v *Version) comp(i int) num {
	if i < len(v.comps) {
		return v.comps[i]
	}
	return num{}
}

// Overflows reports whether v holds a number (component or PKGREVISION) that
// does not fit a C int, where pkg_install and pbulk have undefined behaviour
// and may compare differently from this package.
func (v Version) Overflows() bool {
	for _, c := range v.comps {
		if c.overflows() {
			return true
		}
	}
	return v.nb.overflows()
}

// String renders the parsed form for diagnostics, as in the spec: "1.0nb2"
// is "[1,0,0]nb2" (the revision only when it is not zero).
func (v Version) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, c := range v.comps {
		if i > 0 {
			b.WriteByte(',')
		}
		writeNum(&b, c)
	}
	b.WriteByte(']')
	if v.nb != (num{}) {
		b.WriteString("nb")
		writeNum(&b, v.nb)
	}
	return b.String()
}

func writeNum(b *strings.Builder, c num) {
	if c.big != "" {
		b.WriteString(c.big)
		return
	}
	var buf [24]byte
	i := len(buf)
	n := c.n
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		buf[i] = '-'
	}
	b.Write(buf[i:])
}

// CompareVersions compares two version strings as ParseVersion(a).Compare(
// ParseVersion(b)) would, without allocating.
func CompareVersions(a, b string) int {
	x, y := verIter{s: a}, verIter{s: b}
	for {
		ca, oka := x.next()
		cb, okb := y.next()
		if !oka && !okb {
			return cmpNum(x.nb, y.nb)
		}
		if c := cmpNum(ca, cb); c != 0 {
			return c
		}
	}
}

// compareTo compares the version string s with the parsed version w.
func compareTo(s string, w *Version) int {
	it := verIter{s: s}
	for i := 0; ; i++ {
		c, ok := it.next()
		if !ok && i >= len(w.comps) {
			return cmpNum(it.nb, w.nb)
		}
		if r := cmpNum(c, w.comp(i)); r != 0 {
			return r
		}
	}
}

// SplitName splits a package name at its last '-'. A name without '-' is all
// base and has an empty version.
func SplitName(pkgname string) (base, version string) {
	i := strings.LastIndexByte(pkgname, '-')
	if i < 0 {
		return pkgname, ""
	}
	return pkgname[:i], pkgname[i+1:]
}

// verIter yields the components of a version string one at a time and
// records the PKGREVISION seen so far. After the last component next returns
// a zero num and false (and keeps doing so), which is the padding value.
type verIter struct {
	s       string
	i       int
	pending int8 // letter index waiting to be returned after its 0, or 0
	nb      num
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasKeyword reports whether s[i:] starts with the lower-case keyword kw,
// ignoring ASCII case.
func hasKeyword(s string, i int, kw string) bool {
	if len(s)-i < len(kw) {
		return false
	}
	for j := 0; j < len(kw); j++ {
		if lowerASCII(s[i+j]) != kw[j] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (it *verIter) next() (num, bool) {
	if it.pending != 0 {
		p := it.pending
		it.pending = 0
		return num{n: int64(p)}, true
	}
	s := it.s
	for it.i < len(s) {
		i := it.i
		c := s[i]
		switch {
		case isDigit(c):
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			it.i = j
			return digitsNum(s[i:j]), true
		case hasKeyword(s, i, "alpha"):
			it.i += 5
			return num{n: -3}, true
		case hasKeyword(s, i, "beta"):
			it.i += 4
			return num{n: -2}, true
		case hasKeyword(s, i, "pre"):
			it.i += 3
			return num{n: -1}, true
		case hasKeyword(s, i, "rc"):
			it.i += 2
			return num{n: -1}, true
		case hasKeyword(s, i, "pl"):
			it.i += 2
			return num{}, true
		case c == '_' || c == '.':
			it.i++
			return num{}, true
		case hasKeyword(s, i, "nb"):
			j := i + 2
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			it.nb = digitsNum(s[i+2 : j])
			it.i = j
		case ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z'):
			it.i++
			it.pending = int8(lowerASCII(c) - 'a' + 1)
			return num{}, true
		default:
			it.i++
		}
	}
	return num{}, false
}
