package scanner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// ListEntry is one location of a list and where it was read.
type ListEntry struct {
	Loc  string
	File string // the list's name as given to ReadListEntries
	Line int    // 1-based
}

// ReadList reads a limited list of locations (pbulk's limited_list): one
// location per line. It applies the scan driver's cleaning (spec §7: strip
// "#..." comments and trailing blanks, drop empty lines) and then checks
// every location with scan.CheckLocation (category/dir, inside the tree;
// pbulk-scan's client refuses the same, §4), and returns the locations
// sorted and de-duplicated in byte order, as `sort -u` under LC_ALL=C does.
// name is used in error messages.
func ReadList(name string, r io.Reader) ([]string, error) {
	entries, err := ReadListEntries(name, r)
	if err != nil {
		return nil, err
	}
	// Never nil: an empty list scans nothing, while nil means the whole tree.
	locs := make([]string, len(entries))
	for i, e := range entries {
		locs[i] = e.Loc
	}
	return locs, nil
}

// ReadListEntries is ReadList with the line each location was first read
// from.
func ReadListEntries(name string, r io.Reader) ([]ListEntry, error) {
	var entries []ListEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimRight(line, " \t")
		if line == "" {
			continue
		}
		if err := scan.CheckLocation(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		entries = append(entries, ListEntry{Loc: line, File: name, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	// Sorted by location, the first line of a repeated one kept.
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Loc < entries[j].Loc })
	out := entries[:0]
	for i, e := range entries {
		if i == 0 || e.Loc != entries[i-1].Loc {
			out = append(out, e)
		}
	}
	return append([]ListEntry{}, out...), nil
}

// CleanList applies ReadList's rules to locations given as arguments.
func CleanList(args []string) ([]string, error) {
	var b bytes.Buffer
	for _, a := range args {
		if strings.ContainsAny(a, "\n") {
			return nil, fmt.Errorf("location %q contains a newline", a)
		}
		b.WriteString(a)
		b.WriteByte('\n')
	}
	return ReadList("arguments", &b)
}

// SortUnique sorts in byte order and drops repeats.
func SortUnique(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// badDepend is an ALL_DEPENDS entry that names no location.
type badDepend struct {
	entry string
	err   error
}

// dependLocations returns the locations named by the entries of every
// ALL_DEPENDS line of raw make output (PATTERN:../../LOCATION, split on
// spaces and tabs as pbulk-resolve does), in order and with repeats, and
// the entries that are not of that form or whose location fails
// scan.CheckLocation.
func dependLocations(raw []byte) (locs []string, bad []badDepend) {
	for len(raw) > 0 {
		line := raw
		if nl := bytes.IndexByte(raw, '\n'); nl >= 0 {
			line, raw = raw[:nl], raw[nl+1:]
		} else {
			raw = nil
		}
		v, ok := bytes.CutPrefix(line, []byte(scan.KeyAllDepends+"="))
		if !ok {
			continue
		}
		for _, f := range bytes.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' }) {
			colon := bytes.IndexByte(f, ':')
			if colon < 0 || !bytes.HasPrefix(f[colon:], []byte(":../../")) {
				bad = append(bad, badDepend{string(f), errors.New("not PATTERN:../../PATH")})
				continue
			}
			loc := string(f[colon+len(":../../"):])
			if err := scan.CheckLocation(loc); err != nil {
				bad = append(bad, badDepend{string(f), err})
				continue
			}
			locs = append(locs, loc)
		}
	}
	return locs, bad
}

// subdirWords splits show-subdir-var output the way pbulk does: on spaces,
// tabs and newlines.
func subdirWords(out []byte) []string {
	return strings.FieldsFunc(string(out), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n'
	})
}
