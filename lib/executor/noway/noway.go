// Package noway is a builder's "no way" list: the packages a host must
// never get (too big for it, known to break there, needing hardware it
// lacks). An entry is either
//
//   - a pkgpath glob, recognised by its '/': www/firefox*, lang/gcc1[0-4]
//     (path.Match syntax, matched against the whole pkgpath), or
//   - a pkg_install dependency pattern, matched against the PKGNAME as
//     pkg_add matches it (lib/pattern): firefox-[0-9]*, gcc>=12,
//     {firefox,thunderbird}-[0-9]*, or a bare base name such as firefox.
//
// Executors whose slots implement executor.Accepter answer Accepts from
// their builder's List.
package noway

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/pattern"
)

// List is a parsed no-way list; the zero List accepts every package.
type List struct {
	paths []string           // pkgpath globs
	pats  []*pattern.Pattern // dependency patterns
	src   []string
}

// Parse compiles the entries (each a pkgpath glob or a dependency
// pattern); the error names the first bad one.
func Parse(entries []string) (List, error) {
	var l List
	for _, e := range entries {
		if err := l.add(e); err != nil {
			return List{}, err
		}
	}
	return l, nil
}

func (l *List) add(e string) error {
	switch {
	case strings.TrimSpace(e) != e || e == "":
		return fmt.Errorf("never=%q: want a pkgpath glob (www/firefox*) or a package pattern (firefox-[0-9]*)", e)
	case strings.ContainsAny(e, " \t\n"):
		return fmt.Errorf("never=%q: a pattern has no spaces", e)
	case strings.Contains(e, "/"):
		if strings.Count(e, "/") != 1 || strings.HasPrefix(e, "/") || strings.HasSuffix(e, "/") {
			return fmt.Errorf("never=%q: a pkgpath glob is CATEGORY/NAME, e.g. www/firefox*", e)
		}
		if _, err := path.Match(e, ""); err != nil {
			return fmt.Errorf("never=%q: bad pkgpath glob: %w", e, err)
		}
		l.paths = append(l.paths, e)
	default:
		if err := checkBrackets(e); err != nil {
			return fmt.Errorf("never=%q: bad package pattern: %w", e, err)
		}
		p, err := pattern.Compile(e)
		if err != nil {
			return fmt.Errorf("never=%q: bad package pattern: %w", e, err)
		}
		l.pats = append(l.pats, p)
	}
	l.src = append(l.src, e)
	return nil
}

// checkBrackets refuses an unclosed '[' in a package pattern: fnmatch
// would take it literally, and a name with '[' never occurs, so the entry
// would silently never match.
func checkBrackets(e string) error {
	for i := 0; i < len(e); i++ {
		if e[i] != '[' {
			continue
		}
		j := i + 1
		if j < len(e) && (e[j] == '!' || e[j] == '^') {
			j++
		}
		if j < len(e) && e[j] == ']' {
			j++
		}
		k := strings.IndexByte(e[j:], ']')
		if k < 0 {
			return errors.New("unclosed '['")
		}
		i = j + k
	}
	return nil
}

// Accepts reports whether a package may be given to the builder: neither
// its pkgpath nor its PKGNAME is on the list.
func (l List) Accepts(pkgpath, pkgname string) bool {
	for _, g := range l.paths {
		if ok, _ := path.Match(g, pkgpath); ok {
			return false
		}
	}
	for _, p := range l.pats {
		if p.MatchPkgInstall(pkgname) {
			return false
		}
	}
	return true
}

// Empty reports whether the list refuses nothing.
func (l List) Empty() bool { return len(l.src) == 0 }

// Entries are the list's entries as given.
func (l List) Entries() []string { return append([]string(nil), l.src...) }
