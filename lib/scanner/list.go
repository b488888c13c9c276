package scanner

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// ReadList reads a limited list of locations (pbulk's limited_list): one
// location per line. It applies the scan driver's cleaning (spec §7: strip
// "#..." comments and trailing blanks, drop empty lines) and then
// pbulk-scan's own rules (§2.2), and returns the locations sorted and
// de-duplicated in byte order, as `sort -u` under LC_ALL=C does. name is
// used in error messages.
func ReadList(name string, r io.Reader) ([]string, error) {
	var locs []string
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
		if err := CheckLocation(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		locs = append(locs, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	// Never nil: an empty list scans nothing, while nil means the whole tree.
	return append([]string{}, SortUnique(locs)...), nil
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

// CheckLocation rejects locations that would leave the tree: absolute paths
// and ".." elements (pbulk's scan client refuses them too, §4). Deeper
// locations ("cat/sub/pkg") are allowed as in pbulk's standalone mode.
func CheckLocation(loc string) error {
	if strings.HasPrefix(loc, "/") {
		return fmt.Errorf("location %q is absolute: locations are relative to the pkgsrc tree", loc)
	}
	if strings.IndexByte(loc, 0) >= 0 {
		return fmt.Errorf("location %q contains a NUL byte", loc)
	}
	for _, el := range strings.Split(loc, "/") {
		if el == ".." {
			return fmt.Errorf("location %q leaves the pkgsrc tree", loc)
		}
	}
	return nil
}

// subdirWords splits show-subdir-var output the way pbulk does: on spaces,
// tabs and newlines.
func subdirWords(out []byte) []string {
	return strings.FieldsFunc(string(out), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n'
	})
}
