package pattern

import (
	"math/big"
	"strings"
)

// This file holds a deliberately naive second implementation that follows the
// C control flow step by step (quick reject, re-expansion of alternates at
// match time, a recursive fnmatch, math/big versions). The fuzz tests check
// the compiled matcher against it.

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func refSimple(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-'
}

func refQuick(pat, pkg string) bool {
	if !refSimple(at(pat, 0)) {
		return true
	}
	if pat[0] != at(pkg, 0) {
		return false
	}
	if !refSimple(at(pat, 1)) {
		return true
	}
	return pat[1] == at(pkg, 1)
}

type errMalformed struct{}

func (errMalformed) Error() string { return "malformed" }

func refMatch(pat, pkg string, pkgInstall bool) (bool, error) {
	if !refQuick(pat, pkg) {
		return false, nil
	}
	if strings.Contains(pat, "{") {
		return refAlternate(pat, pkg, pkgInstall)
	}
	if strings.ContainsAny(pat, "<>") {
		return refDewey(pat, pkg), nil
	}
	if strings.ContainsAny(pat, "*?[]") {
		if refFnmatch(pat, pkg, true) {
			return true, nil
		}
		if !pkgInstall {
			return false, nil
		}
	}
	if pat == pkg {
		return true, nil
	}
	if !pkgInstall {
		return false, nil
	}
	return refFnmatch(pat+"-[0-9]*", pkg, true), nil
}

func refAlternate(pat, pkg string, pkgInstall bool) (bool, error) {
	sep := strings.IndexByte(pat, '{')
	last := -1
	cnt := 0
	for cp := sep; cp < len(pat) && last < 0; cp++ {
		if pat[cp] == '{' {
			cnt++
		} else if pat[cp] == '}' {
			cnt--
			if cnt == 0 {
				last = cp + 1
			}
		}
	}
	if cnt != 0 {
		return false, errMalformed{}
	}
	found := false
	for cp := sep + 1; pat[sep] != '}'; cp = sep + 1 {
		cnt = 0
		for sep = cp; cnt > 0 || (pat[sep] != '}' && pat[sep] != ','); sep++ {
			if pat[sep] == '{' {
				cnt++
			} else if pat[sep] == '}' {
				cnt--
			}
		}
		ok, err := refMatch(pat[:strings.IndexByte(pat, '{')]+pat[cp:sep]+pat[last:], pkg, pkgInstall)
		if err != nil {
			return false, err
		}
		found = found || ok
	}
	return found, nil
}

var refOps = []string{"<=", "<", ">=", ">", "==", "!="}

func refTest(s string) (string, int) {
	for _, o := range refOps {
		if strings.HasPrefix(s, o) {
			return o, len(o)
		}
	}
	return "", -1
}

func refDewey(pat, pkg string) bool {
	v := strings.LastIndexByte(pkg, '-')
	if v < 0 {
		return false
	}
	sep := strings.IndexAny(pat, "<>")
	if sep != v || pkg[:v] != pat[:v] {
		return false
	}
	version := pkg[v+1:]
	o, n := refTest(pat[sep:])
	rest := pat[sep+n:]
	if o == ">" || o == ">=" {
		if k := strings.IndexByte(rest, '<'); k >= 0 {
			o2, n2 := refTest(rest[k:])
			if !refCmp(version, o2, rest[k+n2:]) {
				return false
			}
			lower := rest[:k]
			if len(lower) > 1023 {
				lower = lower[:1023]
			}
			return refCmp(version, o, lower)
		}
	}
	return refCmp(version, o, rest)
}

func refCmp(a, o, b string) bool {
	c := refCompare(a, b)
	switch o {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "==":
		return c == 0
	}
	return c != 0
}

func refParse(s string) (comps []*big.Int, nb *big.Int) {
	nb = new(big.Int)
	lb := []byte(s)
	for i, c := range lb {
		if 'A' <= c && c <= 'Z' {
			lb[i] = c + 'a' - 'A'
		}
	}
	low := string(lb) // ASCII only: strings.ToLower would rewrite invalid UTF-8
	digits := func(i int) (*big.Int, int) {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n := new(big.Int)
		if j > i {
			n.SetString(s[i:j], 10)
		}
		return n, j
	}
	mods := []struct {
		kw string
		v  int64
	}{{"alpha", -3}, {"beta", -2}, {"pre", -1}, {"rc", -1}, {"pl", 0}, {"_", 0}, {".", 0}}
	for i := 0; i < len(s); {
		if s[i] >= '0' && s[i] <= '9' {
			var n *big.Int
			n, i = digits(i)
			comps = append(comps, n)
			continue
		}
		matched := false
		for _, m := range mods {
			if strings.HasPrefix(low[i:], m.kw) {
				comps = append(comps, big.NewInt(m.v))
				i += len(m.kw)
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		if strings.HasPrefix(low[i:], "nb") {
			nb, i = digits(i + 2)
			continue
		}
		if c := low[i]; c >= 'a' && c <= 'z' && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
			comps = append(comps, big.NewInt(0), big.NewInt(int64(c-'a'+1)))
		}
		i++
	}
	return comps, nb
}

func refCompare(a, b string) int {
	ca, na := refParse(a)
	cb, nb := refParse(b)
	zero := new(big.Int)
	for i := 0; i < max(len(ca), len(cb)); i++ {
		x, y := zero, zero
		if i < len(ca) {
			x = ca[i]
		}
		if i < len(cb) {
			y = cb[i]
		}
		if c := x.Cmp(y); c != 0 {
			return c
		}
	}
	return na.Cmp(nb)
}

// refFnmatch is a recursive fnmatch(pattern, s, FNM_PERIOD) in the BSD style;
// start tells whether s is the start of the name (for FNM_PERIOD).
func refFnmatch(p, s string, start bool) bool {
	for {
		if len(p) == 0 {
			return len(s) == 0
		}
		c := p[0]
		p = p[1:]
		switch c {
		case '?':
			if len(s) == 0 || (start && s[0] == '.') {
				return false
			}
			s = s[1:]
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if start && len(s) > 0 && s[0] == '.' {
				return false
			}
			if len(p) == 0 {
				return true
			}
			for i := 0; i < len(s); i++ {
				if refFnmatch(p, s[i:], false) {
					return true
				}
			}
			return false
		case '[':
			if len(s) == 0 {
				return false
			}
			rest, ok, valid := refRange(p, s[0])
			if !valid {
				if s[0] != '[' {
					return false
				}
				s = s[1:]
				break
			}
			if !ok || (start && s[0] == '.') {
				return false
			}
			p = rest
			s = s[1:]
		case '\\':
			if len(p) > 0 {
				c = p[0]
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || s[0] != c {
				return false
			}
			s = s[1:]
		}
		start = false
	}
}

func refRange(p string, test byte) (rest string, ok, valid bool) {
	negate := len(p) > 0 && (p[0] == '!' || p[0] == '^')
	if negate {
		p = p[1:]
	}
	first := true
	for {
		if len(p) == 0 {
			return "", false, false
		}
		c := p[0]
		p = p[1:]
		if c == ']' && !first {
			break
		}
		first = false
		if c == '\\' {
			if len(p) == 0 {
				return "", false, false
			}
			c = p[0]
			p = p[1:]
		}
		if len(p) >= 2 && p[0] == '-' && p[1] != ']' {
			c2 := p[1]
			p = p[2:]
			if c2 == '\\' {
				if len(p) == 0 {
					return "", false, false
				}
				c2 = p[0]
				p = p[1:]
			}
			if c <= test && test <= c2 {
				ok = true
			}
		} else if c == test {
			ok = true
		}
	}
	return p, ok != negate, true
}
