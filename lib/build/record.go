package build

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// Job is one package to build: the fields of its presolve record that
// pbulk's pkg-build reads (spec build-and-report.md §2).
type Job struct {
	PkgName        string
	PkgLocation    string   // category/dir below the pkgsrc tree
	Depends        []string // exact PKGNAMEs
	Categories     []string
	MultiVersion   []string // VAR=value words passed to every make
	UseDestdir     string
	BootstrapPkg   string // non-empty: no install/deinstall test
	UsergroupPhase string
	NoBinOnFTP     string
	// MakeJobs is the MAKE_JOBS the scheduler granted the job (the
	// record's MAKE_JOBS= line, which pbulk does not have; 0: none, the
	// kit's mk.conf decides).
	MakeJobs int
}

// jobKeys are the keys pkg-build reads; every other key is ignored.
var jobKeys = map[string]bool{
	"PKGNAME": true, "PKG_LOCATION": true, "DEPENDS": true, "CATEGORIES": true,
	"MULTI_VERSION": true, "USE_DESTDIR": true, "BOOTSTRAP_PKG": true,
	"USERGROUP_PHASE": true, "NO_BIN_ON_FTP": true, "MAKE_JOBS": true,
}

// ParseJob reads one presolve record (PKGNAME= through DEPENDS=) the way
// pkg-build does: KEY=VALUE lines, keys it does not know are ignored, and
// when a key repeats the last value wins (pkg-build evaluates the lines as
// shell assignments). name names the input in errors ("stdin", a file).
//
// It rejects what would make the build unsafe or meaningless: a missing or
// short PKGNAME, a PKG_LOCATION that is absolute or climbs out of the tree,
// a line without '=', and a second PKGNAME= line after other fields (two
// records on one stdin).
func ParseJob(name string, r io.Reader) (*Job, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read job from %s: %w", name, err)
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	started := false
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		key, val, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not a KEY=VALUE line: %q", name, line, clip(text))
		}
		if !started && key != "PKGNAME" {
			return nil, fmt.Errorf("%s:%d: the record must start with PKGNAME=, not %q", name, line, clip(text))
		}
		if started && key == "PKGNAME" {
			return nil, fmt.Errorf("%s:%d: a second record starts here (one job per run)", name, line)
		}
		started = true
		if jobKeys[key] {
			vals[key] = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read job from %s: %w", name, err)
	}
	j := &Job{
		PkgName:        vals["PKGNAME"],
		PkgLocation:    vals["PKG_LOCATION"],
		Depends:        fields(vals["DEPENDS"]),
		Categories:     fields(vals["CATEGORIES"]),
		MultiVersion:   fields(vals["MULTI_VERSION"]),
		UseDestdir:     strings.TrimSpace(vals["USE_DESTDIR"]),
		BootstrapPkg:   strings.TrimSpace(vals["BOOTSTRAP_PKG"]),
		UsergroupPhase: strings.TrimSpace(vals["USERGROUP_PHASE"]),
		NoBinOnFTP:     vals["NO_BIN_ON_FTP"],
	}
	if v := strings.TrimSpace(vals["MAKE_JOBS"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("%s: %s: MAKE_JOBS=%q is not a number of jobs (1-1024)", name, j.PkgName, clip(v))
		}
		j.MakeJobs = n
	}
	if err := j.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return j, nil
}

func (j *Job) validate() error {
	if j.PkgName == "" {
		return fmt.Errorf("no PKGNAME= line")
	}
	if len(j.PkgName) < 4 || strings.ContainsAny(j.PkgName, " \t/") {
		return fmt.Errorf("invalid PKGNAME %q (4 or more characters, no blanks or slashes)", clip(j.PkgName))
	}
	if j.PkgLocation == "" {
		return fmt.Errorf("%s: no PKG_LOCATION= line", j.PkgName)
	}
	loc := j.PkgLocation
	if path.IsAbs(loc) || path.Clean(loc) != loc || loc == "." || loc == ".." || strings.HasPrefix(loc, "../") || strings.ContainsAny(loc, " \t") {
		return fmt.Errorf("%s: invalid PKG_LOCATION %q (want category/dir inside the tree)", j.PkgName, clip(loc))
	}
	for _, d := range j.Depends {
		if len(d) < 2 || strings.Contains(d, "/") {
			return fmt.Errorf("%s: invalid DEPENDS name %q", j.PkgName, clip(d))
		}
	}
	for _, w := range j.MultiVersion {
		if k, _, ok := strings.Cut(w, "="); !ok || k == "" {
			return fmt.Errorf("%s: MULTI_VERSION word %q is not VAR=value", j.PkgName, clip(w))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// fields splits a word list; an empty list is nil.
func fields(s string) []string {
	if f := strings.Fields(s); len(f) > 0 {
		return f
	}
	return nil
}
