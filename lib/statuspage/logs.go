package statuspage

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/pkgbulk/pkgbulk/lib/beneath"
)

// tailBytes is how much of a phase log's end is read for the live tail.
const tailBytes = 16 << 10

// maxLogServed bounds a log served from the store.
const maxLogServed = 64 << 20

// jobLog is the current phase of a running job, found in its job
// directory <work root>/<PKGNAME>.<suffix>/logs/<phase>.log: the phase
// whose log was written last.
type jobLog struct {
	phase    string
	path     string
	modified time.Time
}

// findJobLog looks for pkg's job directories under root and returns the
// newest phase log; ok is false when there is none (not started yet, a
// remote builder, no work root known).
func findJobLog(root, pkg string) (jobLog, bool) {
	if root == "" || pkg == "" || strings.ContainsAny(pkg, "/\x00") {
		return jobLog{}, false
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return jobLog{}, false
	}
	var best jobLog
	found := false
	for _, e := range ents {
		suffix, ok := strings.CutPrefix(e.Name(), pkg+".")
		if !ok || suffix == "" || strings.Contains(suffix, ".") || !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name(), "logs")
		logs, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, l := range logs {
			phase, ok := strings.CutSuffix(l.Name(), ".log")
			// work.log is WRKLOG, written across phases.
			if !ok || phase == "" || phase == "work" || !l.Type().IsRegular() {
				continue
			}
			fi, err := l.Info()
			if err != nil {
				continue
			}
			if !found || fi.ModTime().After(best.modified) {
				best = jobLog{phase: phase, path: filepath.Join(dir, l.Name()), modified: fi.ModTime()}
				found = true
			}
		}
	}
	return best, found
}

// tail returns the last n lines of the file at path, never following a
// symbolic link (a build writes its logs directory and could put a link
// to a secret there), as valid UTF-8 with control characters but tab
// dropped. A missing or unreadable file gives nil.
func tail(path string, n int) []string {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	off := max(fi.Size()-tailBytes, 0)
	buf := make([]byte, fi.Size()-off)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	buf = buf[:k]
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return []string{}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = cleanLine(l)
	}
	return lines
}

// ansi matches a terminal's colour and cursor sequences.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// cleanLine makes a log line printable: valid UTF-8, no control
// characters (escape sequences, carriage returns) but tab, at most 400
// bytes.
func cleanLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.TrimRight(s, "\r")
	s = ansi.ReplaceAllString(s, "")
	if k := strings.LastIndexByte(s, '\r'); k >= 0 {
		s = s[k+1:] // a progress line: what the terminal would show
	}
	s = strings.Map(func(r rune) rune {
		if r == '\t' || (r >= 0x20 && r != 0x7f && (r < 0x80 || r >= 0xa0)) {
			return r
		}
		return -1
	}, s)
	if len(s) > 400 {
		cut := 400
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// storeLogs lists the logs of pkg in a file store's bulklog/<pkg>/ and
// returns links to them on this server.
func storeLogs(storeDir, pkg string) []Link {
	out := []Link{}
	if storeDir == "" || !validName(pkg) {
		return out
	}
	ents, err := os.ReadDir(filepath.Join(storeDir, "bulklog", pkg))
	if err != nil {
		return out
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !validName(e.Name()) {
			continue
		}
		out = append(out, Link{Name: e.Name(), URL: "logs/" + url.PathEscape(pkg) + "/" + url.PathEscape(e.Name())})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// validName accepts one path component.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// readStoreLog reads bulklog/<pkg>/<name> of a file store, inside the
// store's directory whatever links it holds.
func readStoreLog(storeDir, pkg, name string) ([]byte, error) {
	if storeDir == "" || !validName(pkg) || !validName(name) {
		return nil, os.ErrNotExist
	}
	d, err := beneath.Open(storeDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fi, err := d.Lstat("bulklog/" + pkg + "/" + name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, os.ErrNotExist
	}
	return d.ReadFile("bulklog/"+pkg+"/"+name, maxLogServed)
}
