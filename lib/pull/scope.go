package pull

import (
	"fmt"
	"path"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/pattern"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// StagingPrefix is where a lease's uploads wait in the store until the
// server promotes them: staging/<lease id>.<kind>[.<file>] (stagedName).
const StagingPrefix = "staging/"

// ScopeFor is what a lease for pkgname may write, with the package
// suffix (".tgz" when empty).
func ScopeFor(pkgname, suffix string) ObjectScope {
	if suffix == "" {
		suffix = ".tgz"
	}
	return ObjectScope{
		Package:  "All/" + pkgname + suffix,
		LogDir:   "bulklog/" + pkgname + "/",
		Fragment: "index/" + pkgname + ".pkginfo",
	}
}

// objectKind says which of the scope's objects name is, or "" when name
// is outside it.
func (o ObjectScope) kind(name string) string {
	if store.CheckName(name) != nil {
		return ""
	}
	switch {
	case name == o.Package:
		return "package"
	case name == o.Fragment:
		return "fragment"
	case strings.HasPrefix(name, o.LogDir) && !strings.Contains(name[len(o.LogDir):], "/") && len(name) > len(o.LogDir):
		return "log"
	}
	return ""
}

// readable reports whether a worker may read name: finished packages and
// index fragments, nothing else (no staging object, no signature, no
// distfile, no log of another job).
func readable(name string) bool {
	if store.CheckName(name) != nil {
		return false
	}
	for _, p := range []string{"All/", "index/"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && !strings.Contains(rest, "/") {
			return true
		}
	}
	return false
}

// listable reports whether a worker may list prefix.
func listable(prefix string) bool {
	if store.CheckPrefix(prefix) != nil {
		return false
	}
	for _, p := range []string{"All/", "index/"} {
		if rest, ok := strings.CutPrefix(prefix, p); ok && !strings.Contains(rest, "/") {
			return true
		}
	}
	return false
}

// NoWay is a worker's list of pkgpaths and patterns it will not build.
type NoWay struct {
	paths    map[string]bool    // exact pkgpaths
	globs    []string           // shell globs over the pkgpath or the pkgname
	patterns []*pattern.Pattern // dependency patterns over the pkgname (foo>=1, gcc1[0-3]-[0-9]*)
}

// CompileNoWay reads a no-way list: an entry with a '/' is a pkgpath or a
// glob over pkgpaths ("lang/rust", "www/firefox*"); one with <, >, =, {
// or a - before a version glob is a dependency pattern over the pkgname;
// any other entry is a glob over the PKGBASE or PKGNAME ("gcc1[0-3]*").
func CompileNoWay(entries []string) (*NoWay, error) {
	n := &NoWay{paths: map[string]bool{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case len(e) > 256:
			return nil, fmt.Errorf("no-way entry %.40q...: longer than 256 bytes", e)
		case strings.Contains(e, "/") && !strings.ContainsAny(e, "*?["):
			n.paths[strings.TrimSuffix(e, "/")] = true
		case strings.ContainsAny(e, "<>={"):
			p, err := pattern.Compile(e)
			if err != nil {
				return nil, fmt.Errorf("no-way entry %q: %w", e, err)
			}
			n.patterns = append(n.patterns, p)
		default:
			if _, err := path.Match(e, ""); err != nil {
				return nil, fmt.Errorf("no-way entry %q: %w", e, err)
			}
			n.globs = append(n.globs, e)
		}
	}
	return n, nil
}

// Refuses reports whether the list names the package.
func (n *NoWay) Refuses(pkgpath, pkgname string) bool {
	if n == nil {
		return false
	}
	if n.paths[pkgpath] {
		return true
	}
	base, _ := pattern.SplitName(pkgname)
	for _, g := range n.globs {
		if strings.Contains(g, "/") {
			if ok, _ := path.Match(g, pkgpath); ok {
				return true
			}
			continue
		}
		for _, s := range []string{base, pkgname} {
			if ok, _ := path.Match(g, s); ok {
				return true
			}
		}
	}
	for _, p := range n.patterns {
		if p.MatchPbulk(pkgname) {
			return true
		}
	}
	return false
}
