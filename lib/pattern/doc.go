// Package pattern matches pkgsrc package patterns against package names and
// compares pkgsrc ("dewey") versions, reproducing the two C implementations
// that pkgsrc ships:
//
//   - pbulk's lib/match.c (MatchPbulk, BestPbulk, PreferPbulk): what
//     pbulk-resolve uses to turn DEPENDS patterns into package names. pkgdag
//     must use this variant so its presolve output equals pbulk's.
//   - pkg_install's lib/opattern.c + dewey.c (MatchPkgInstall,
//     BestPkgInstall, PreferPkgInstall): what pkg_add, pkg_info -E and friends
//     use at install time.
//
// The contract is /work/shared/spec/patterns.md (in the repository's shared
// spec set). In short, a pattern is dispatched in this order:
//
//  1. it contains '{': csh-style alternates. The first '{' and its matching
//     '}' are expanded, and each expansion is matched again with the whole
//     algorithm (so nested and later groups expand too). Any expansion
//     matching is a match.
//  2. it contains '<' or '>': a dewey pattern BASE OP1 V1 [OP2 V2]. The
//     package's base (text before its last '-') must equal BASE byte for byte
//     and its version must satisfy the relation(s). Only after '>' or '>='
//     does a later '<' start an upper bound; after '<' or '<=' the rest is
//     the version (so "foo<2>1" means "< 2.1").
//  3. it contains '*', '?', '[' or ']': fnmatch(3) with FNM_PERIOD.
//  4. otherwise an exact byte comparison.
//
// pbulk stops at the first applicable step. pkg_install lets a failed glob
// fall through to the exact comparison and, when that fails too, tries the
// glob PATTERN-[0-9]* (so "foo" matches "foo-1.0" there, never in pbulk).
// The C code's quick first-two-characters reject is not a separate step
// here: it can never change a result (a pattern starting with literal
// characters can only match names starting with them), so it is folded into
// each compiled alternative's literal-prefix check.
//
// # Compiling
//
// Compile does all the work that does not depend on the package name: brace
// expansion, dewey operator parsing, version parsing, glob tokenising and the
// pkg_install fallback glob. Matching a compiled pattern does not allocate.
// Compile returns an error for unbalanced braces (where the C code aborts with
// "Malformed alternate"; the C code aborts only for names that pass its quick
// reject, Compile rejects the pattern outright) and for patterns whose
// alternates expand to more than MaxExpansions strings (the C code would
// grind through them; real pkgsrc patterns expand to a handful). The C code
// copies each expansion into a PATH_MAX buffer and the lower dewey bound of a
// range into a 1024-byte buffer; the first truncation is not reproduced (no
// real pattern comes near it), the second is (versions are cut to 1023
// bytes).
//
// # Globs
//
// The glob matcher follows NetBSD's current fnmatch(3) with only FNM_PERIOD
// set (glibc agrees on everything pkgsrc uses): '*' and '?' and bracket
// expressions with '!' or '^' negation, ranges, a ']' right after '[' or
// '[!' taken literally, and backslash escapes (inside brackets too). '/' is
// an ordinary character. A '.' at the start of the name matches only a
// literal '.'. An unterminated '[' matches a literal '['. A trailing
// backslash matches a literal backslash (NetBSD; glibc would fail the match).
// Characters are bytes, compared without locale or case folding; POSIX
// character classes such as [[:digit:]] are not supported (pkgsrc does not
// use them; '[' ':' etc. are then ordinary members of the set). Names and
// patterns are Go strings: a NUL byte is an ordinary byte, where the C code
// would stop at it.
//
// # Versions
//
// ParseVersion reads a version left to right: a digit run appends its value;
// "alpha", "beta", "pre"/"rc", "pl" append -3, -2, -1, 0; '_' and '.' append
// 0; "nb" followed by digits sets the PKGREVISION (a later one wins) without
// appending; any other ASCII letter appends 0 and then its alphabet position
// (a=1 ... z=26); all other bytes are ignored. Keywords and letters are
// case-insensitive. Two versions compare element by element, padding the
// shorter with zeros, and then by PKGREVISION.
//
// Integer overflow: pkg_install and pbulk store each number in a C int, so
// digit runs of ten or more digits overflow there (undefined behaviour; in
// practice they wrap). This package instead compares every number exactly, as
// an arbitrary-size decimal: leading zeros are dropped, numbers of up to 18
// significant digits are held in an int64, longer ones are compared by digit
// count and then digit by digit. Date-stamp versions such as 20240101123456
// therefore sort as their value says. Version.Overflows reports whether a
// version holds a number above 2147483647, i.e. whether the C tools could
// disagree with this package about it.
//
// # Best match
//
// BestPbulk keeps the matching candidate with the greatest version and, on
// equal versions (including textually different equal ones such as "1.0" and
// "1.0.0"), the name that is greater by byte comparison (pbulk's pkg_order).
// BestPkgInstall also prefers the greatest version but breaks ties toward the
// smaller name. Both orders are total, so the candidates' order never
// matters.
package pattern
