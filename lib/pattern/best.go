package pattern

import "strings"

// PreferPbulk reports whether pbulk's pkg_order prefers a over b: a has the
// greater version (text after the last '-'), or an equal version and a is
// greater by byte comparison. (pbulk aborts on a name without '-'; here such
// a name has the empty version, which equals "0".)
func PreferPbulk(a, b string) bool {
	_, va := SplitName(a)
	_, vb := SplitName(b)
	if c := CompareVersions(va, vb); c != 0 {
		return c > 0
	}
	return a > b
}

// PreferPkgInstall reports whether pkg_install prefers a over b when picking
// the best package: a has the greater version, or an equal version and a is
// smaller by byte comparison. A name without '-' (no version) loses to any
// name with one, as in pkg_install's pkg_order.
func PreferPkgInstall(a, b string) bool {
	ia, ib := strings.LastIndexByte(a, '-'), strings.LastIndexByte(b, '-')
	if (ia < 0) != (ib < 0) {
		return ib < 0
	}
	if ia >= 0 {
		if c := CompareVersions(a[ia+1:], b[ib+1:]); c != 0 {
			return c > 0
		}
	}
	return a < b
}

// BestPbulk returns the candidate pbulk-resolve would pick for the pattern:
// among the matching ones, the one PreferPbulk ranks first.
func (p *Pattern) BestPbulk(candidates []string) (best string, ok bool) {
	for _, c := range candidates {
		if p.MatchPbulk(c) && (!ok || PreferPbulk(c, best)) {
			best, ok = c, true
		}
	}
	return best, ok
}

// BestPkgInstall returns the candidate pkg_install would pick: among the
// ones MatchPkgInstall accepts, the one PreferPkgInstall ranks first.
func (p *Pattern) BestPkgInstall(candidates []string) (best string, ok bool) {
	for _, c := range candidates {
		if p.MatchPkgInstall(c) && (!ok || PreferPkgInstall(c, best)) {
			best, ok = c, true
		}
	}
	return best, ok
}
