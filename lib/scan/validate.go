package scan

import (
	"fmt"
	"strings"
)

// CheckPkgName reports why name is not a package name a build may use, or
// nil. pbulk itself only wants a PKGNAME of at least 2 (pbulk-scan) or 4
// (pbulk-resolve) bytes without whitespace (spec §3.2); pkgbulk also turns
// the name into file names (All/<PKGNAME>.tgz, bulklog/<PKGNAME>/,
// index/<PKGNAME>.pkginfo), so it further requires what every real PKGNAME
// satisfies (all 29,022 of a full 2026 tree do):
//
//   - no whitespace, no control character, no '/';
//   - no leading '-' (an option to every tool) or '.' (".", "..", hidden);
//   - NAME-VERSION: a '-' that is neither the first nor the last byte; the
//     version is the text after the last '-', as pkg_install and pbulk's
//     matcher split it.
//
// The length rules stay with the callers (Parse and lib/dag), which report
// them in pbulk's words.
func CheckPkgName(name string) error {
	if name == "" {
		return fmt.Errorf("PKGNAME is empty")
	}
	if strings.IndexFunc(name, badNameRune) >= 0 {
		return fmt.Errorf("PKGNAME %q contains whitespace or a control character", name)
	}
	if strings.IndexByte(name, '/') >= 0 {
		return fmt.Errorf("PKGNAME %q contains '/'", name)
	}
	switch name[0] {
	case '-', '.':
		return fmt.Errorf("PKGNAME %q starts with %q", name, name[0])
	}
	if dash := strings.LastIndexByte(name, '-'); dash <= 0 || dash == len(name)-1 {
		return fmt.Errorf("PKGNAME %q is not NAME-VERSION", name)
	}
	return nil
}

// CheckLocation reports why loc is not a package location (PKG_LOCATION,
// a limited-list line, the PATH of an ALL_DEPENDS entry without its
// "../../"), or nil. A location is "category/dir": two non-empty path
// elements, neither "." nor "..", relative, without whitespace or control
// characters. That is what pbulk's scan client accepts (exactly one '/',
// not absolute, no "../", spec §4), and the form of every location of a
// real tree; it keeps "${pkgsrc}/${location}" inside the tree.
func CheckLocation(loc string) error {
	switch {
	case loc == "":
		return fmt.Errorf("location is empty")
	case strings.IndexFunc(loc, badNameRune) >= 0:
		return fmt.Errorf("location %q contains whitespace or a control character", loc)
	case strings.HasPrefix(loc, "/"):
		return fmt.Errorf("location %q is absolute: locations are relative to the pkgsrc tree", loc)
	}
	elems := strings.Split(loc, "/")
	for _, el := range elems {
		if el == ".." {
			return fmt.Errorf("location %q leaves the pkgsrc tree", loc)
		}
	}
	if len(elems) != 2 || elems[0] == "" || elems[1] == "" || elems[0] == "." || elems[1] == "." {
		return fmt.Errorf("location %q is not category/dir", loc)
	}
	return nil
}

// badNameRune is whitespace or a control character (bytes, for invalid
// UTF-8 is let through: pbulk compares bytes).
func badNameRune(r rune) bool {
	return r <= ' ' || r == 0x7f
}
