package pattern

import "strings"

// A glob is a compiled fnmatch(3) pattern (FNM_PERIOD only). Every token but
// tStar matches a fixed number of bytes, which is what makes the
// single-backtrack-point matcher below exact and O(len(pattern)*len(name)).
type glob struct {
	toks   []gtok
	prefix string // literal text every match starts with
}

type gkind uint8

const (
	tLit  gkind = iota // lit, one or more bytes
	tAny               // '?'
	tSet               // bracket expression
	tStar              // '*', consecutive stars collapsed
)

type gtok struct {
	kind gkind
	lit  string
	set  [4]uint64 // bit c set: byte c is accepted (negation already applied)
}

func (t *gtok) has(c byte) bool { return t.set[c>>6]&(1<<(c&63)) != 0 }

func (t *gtok) add(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		t.set[c>>6] |= 1 << (uint(c) & 63)
	}
}

func compileGlob(p string) glob {
	var g glob
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			g.toks = append(g.toks, gtok{kind: tLit, lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(p); {
		c := p[i]
		switch c {
		case '*':
			flush()
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != tStar {
				g.toks = append(g.toks, gtok{kind: tStar})
			}
			i++
		case '?':
			flush()
			g.toks = append(g.toks, gtok{kind: tAny})
			i++
		case '[':
			t, end, ok := parseBracket(p, i+1)
			if !ok {
				// An unterminated bracket is an ordinary '['.
				lit = append(lit, '[')
				i++
				continue
			}
			flush()
			g.toks = append(g.toks, t)
			i = end
		case '\\':
			if i+1 < len(p) {
				lit = append(lit, p[i+1])
				i += 2
			} else {
				lit = append(lit, '\\')
				i++
			}
		default:
			lit = append(lit, c)
			i++
		}
	}
	flush()
	if len(g.toks) > 0 && g.toks[0].kind == tLit {
		g.prefix = g.toks[0].lit
	}
	return g
}

// parseBracket parses the bracket expression whose body starts at p[i] (just
// after '['). It returns the set token and the index after the closing ']',
// or ok=false when there is no closing ']'.
func parseBracket(p string, i int) (t gtok, end int, ok bool) {
	t.kind = tSet
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	for first := true; ; first = false {
		if i >= len(p) {
			return t, 0, false
		}
		c := p[i]
		if c == ']' && !first {
			i++
			break
		}
		if c == '\\' {
			i++
			if i >= len(p) {
				return t, 0, false
			}
			c = p[i]
		}
		i++
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			c2 := p[i+1]
			i += 2
			if c2 == '\\' {
				if i >= len(p) {
					return t, 0, false
				}
				c2 = p[i]
				i++
			}
			if c <= c2 {
				t.add(c, c2)
			}
			continue
		}
		t.add(c, c)
	}
	if negate {
		for k := range t.set {
			t.set[k] = ^t.set[k]
		}
	}
	return t, i, true
}

func (g *glob) match(s string) bool {
	if !strings.HasPrefix(s, g.prefix) {
		return false
	}
	toks := g.toks
	// FNM_PERIOD: a leading '.' is matched only by a literal '.'.
	if len(s) > 0 && s[0] == '.' && (len(toks) == 0 || toks[0].kind != tLit) {
		return false
	}
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(toks) {
			t := &toks[p]
			switch t.kind {
			case tStar:
				starP, starI = p, i
				p++
				continue
			case tLit:
				if strings.HasPrefix(s[i:], t.lit) {
					p++
					i += len(t.lit)
					continue
				}
			case tAny:
				p++
				i++
				continue
			case tSet:
				if t.has(s[i]) {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(toks) && toks[p].kind == tStar {
		p++
	}
	return p == len(toks)
}
