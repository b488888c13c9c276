package pkgfile

import (
	"bytes"
	"fmt"
)

// PlistEntry is one line of a packing list (+CONTENTS). Cmd is the
// directive without its "@" ("name", "pkgdep", "cwd", ...) or "" for a file
// line, whose path is then Arg. Arg has surrounding white space removed.
type PlistEntry struct{ Cmd, Arg string }

// plistCmds are pkg_install's directives in its own lookup order (lib/
// plist.c cmdv): a directive is recognised by prefix in this order, so
// "@namefoo" is @name with argument "foo", exactly as pkg_install reads it.
var plistCmds = []string{
	"cwd", "src", "exec", "unexec", "mode", "owner", "group", "comment",
	"ignore", "name", "display", "pkgdep", "pkgcfl", "pkgdir", "dirrm",
	"option", "blddep",
}

// ParseContents parses +CONTENTS the way pkg_install's parse_plist does:
// lines split at "\n", trailing white space dropped, empty lines skipped,
// the text after a NUL byte ignored (pkg_install reads it as a C string).
// Unrecognised "@" directives are skipped as pkg_install skips them (with
// a warning there); they are not errors. The only error is a packing list
// without a non-empty @name, which no installer accepts.
func ParseContents(b []byte) ([]PlistEntry, error) {
	es := parsePlist(b)
	for _, e := range es {
		if e.Cmd == "name" && e.Arg != "" {
			return es, nil
		}
	}
	return es, fmt.Errorf("%w: %s has no @name line", ErrFormat, ContentsName)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func parsePlist(b []byte) []PlistEntry {
	es := make([]PlistEntry, 0, bytes.Count(b, []byte{'\n'})+1)
	EachLine(b, func(cmd string, arg []byte) bool {
		es = append(es, PlistEntry{Cmd: cmd, Arg: string(arg)})
		return true
	})
	return es
}

// EachLine calls fn for every entry of a packing list, with ParseContents'
// rules but without allocating: cmd is the directive ("" for a file line)
// and arg aliases b. fn returns false to stop.
func EachLine(b []byte, fn func(cmd string, arg []byte) bool) {
	b = CString(b)
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		for len(line) > 0 && isSpace(line[len(line)-1]) {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			continue
		}
		if line[0] != '@' {
			if !fn("", line) {
				return
			}
			continue
		}
		rest := line[1:]
		cmd := ""
		for _, c := range plistCmds {
			if len(rest) >= len(c) && string(rest[:len(c)]) == c {
				cmd = c
				break
			}
		}
		if cmd == "" {
			continue
		}
		arg := rest[len(cmd):]
		for len(arg) > 0 && isSpace(arg[0]) {
			arg = arg[1:]
		}
		if !fn(cmd, arg) {
			return
		}
	}
}

// CString returns b up to its first NUL byte: pkg_install holds metadata
// files in C strings, so nothing after a NUL exists for it.
func CString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
