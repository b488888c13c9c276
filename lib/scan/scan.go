// Package scan reads and writes pbulk scan records: the output of
// `make pbulk-index` as collected by pbulk-scan (a "pscan" file), and the
// same records with a DEPENDS line added by pbulk-resolve (a "presolve"
// file). The format is described in ../shared/spec/scan-format.md §3.
//
// A record is a run of KEY=VALUE lines that starts at a line beginning with
// "PKGNAME=" and ends before the next such line or at the end of the file.
// Parse keeps every byte: a Record's Text is exactly the bytes read, so
// Write(Parse(x)) reproduces x. Records share the one input buffer; Parse
// stores only line offsets, never a string per line, which keeps a 160 MB
// full-tree scan at a few tens of milliseconds.
//
// Validation follows pbulk (spec §3.2):
//
//   - anything before the first PKGNAME= line is invalid input;
//   - the PKGNAME value must be at least 2 bytes long (pbulk-scan's rule;
//     pbulk-resolve's stricter 4-byte rule is applied by lib/dag) and hold
//     no space or tab;
//   - a non-blank line without '=' is invalid input (pbulk would carry it
//     silently; pkgbulk treats it as a corrupted file);
//   - blank lines are kept in the text and mean "no field";
//   - the data must end with '\n';
//   - no line may hold a NUL byte (pbulk-scan drops such output, and every
//     pbulk tool reads records as C strings);
//   - errors are reported in file order: the first bad line is named, so
//     reading in chunks (ReadAll) and reading at once (Parse) agree;
//   - a key that appears twice: Get returns the first occurrence;
//   - unknown keys are kept in the text and can be read with Get.
package scan

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Keys of the fields of a record (spec §3), in the order pbulk-index-item
// emits them (PKG_LOCATION is inserted second by pbulk-scan, DEPENDS is
// appended by pbulk-resolve).
const (
	KeyPkgName        = "PKGNAME"
	KeyPkgLocation    = "PKG_LOCATION"
	KeyAllDepends     = "ALL_DEPENDS"
	KeyPkgSkipReason  = "PKG_SKIP_REASON"
	KeyPkgFailReason  = "PKG_FAIL_REASON"
	KeyNoBinOnFTP     = "NO_BIN_ON_FTP"
	KeyRestricted     = "RESTRICTED"
	KeyCategories     = "CATEGORIES"
	KeyMaintainer     = "MAINTAINER"
	KeyUseDestdir     = "USE_DESTDIR"
	KeyBootstrapPkg   = "BOOTSTRAP_PKG"
	KeyUsergroupPhase = "USERGROUP_PHASE"
	KeyScanDepends    = "SCAN_DEPENDS"
	KeyMakeJobsSafe   = "MAKE_JOBS_SAFE"
	KeyPbulkWeight    = "PBULK_WEIGHT"
	KeyMultiVersion   = "MULTI_VERSION"
	KeyDepends        = "DEPENDS"
)

// Keys lists every key of spec §3 in emission order.
var Keys = []string{
	KeyPkgName, KeyPkgLocation, KeyAllDepends, KeyPkgSkipReason, KeyPkgFailReason,
	KeyNoBinOnFTP, KeyRestricted, KeyCategories, KeyMaintainer, KeyUseDestdir,
	KeyBootstrapPkg, KeyUsergroupPhase, KeyScanDepends, KeyMakeJobsSafe,
	KeyPbulkWeight, KeyMultiVersion, KeyDepends,
}

// DefaultPbulkWeight is the weight of a package without a valid PBULK_WEIGHT.
const DefaultPbulkWeight = 100

// MinPkgNameLen is pbulk-scan's lower bound for the length of a PKGNAME.
// pbulk-resolve and pbulk-build require MinResolvePkgNameLen.
const (
	MinPkgNameLen        = 2
	MinResolvePkgNameLen = 4
)

// Record is one scan record. Text is the record exactly as read: every line
// including its '\n'. Records returned by Parse share the input buffer, so
// the caller must not modify it while the records are in use.
type Record struct {
	Text []byte

	// lines holds the offset in Text of every line start after the first
	// (the first line always starts at 0). nil for a Record built by hand,
	// in which case Get scans Text.
	lines []int32
	file  string
	line  int // 1-based line of PKGNAME= in file; 0 when unknown
}

// NewRecord wraps text (which must be whole lines) as a Record, for records
// built in memory. It does not validate.
func NewRecord(text []byte) Record { return Record{Text: text} }

// Get returns the value of the first line that starts with key+"=" (pbulk's
// find_content), without the trailing newline.
func (r *Record) Get(key string) (value string, ok bool) {
	b, ok := r.GetBytes(key)
	return string(b), ok
}

// GetBytes is Get without the string conversion; the result aliases Text.
func (r *Record) GetBytes(key string) (value []byte, ok bool) {
	t := r.Text
	if r.lines == nil {
		for start := 0; start < len(t); {
			end := bytes.IndexByte(t[start:], '\n')
			if end < 0 {
				end = len(t)
			} else {
				end += start
			}
			if v, ok := lineValue(t[start:end], key); ok {
				return v, true
			}
			start = end + 1
		}
		return nil, false
	}
	start := 0
	for i := 0; i <= len(r.lines); i++ {
		end := len(t)
		if i < len(r.lines) {
			end = int(r.lines[i])
		}
		if v, ok := lineValue(t[start:end], key); ok {
			return v, true
		}
		start = end
	}
	return nil, false
}

var nl = []byte{'\n'}

func lineValue(line []byte, key string) ([]byte, bool) {
	if len(line) <= len(key) || line[len(key)] != '=' || string(line[:len(key)]) != key {
		return nil, false
	}
	return bytes.TrimSuffix(line[len(key)+1:], nl), true
}

// PkgName returns the PKGNAME value.
func (r *Record) PkgName() string { v, _ := r.Get(KeyPkgName); return v }

// Location returns the PKG_LOCATION value (the pkgpath).
func (r *Record) Location() string { v, _ := r.Get(KeyPkgLocation); return v }

// File returns the name passed to Parse, "" for a hand-built record.
func (r *Record) File() string { return r.file }

// Line returns the 1-based line number of the record's PKGNAME= line in
// File, 0 for a hand-built record.
func (r *Record) Line() int { return r.line }

// LineOf returns the line number in File of the first line that starts
// with key+"=", or the record's own line when there is none (so errors
// about a missing field still point at the record).
func (r *Record) LineOf(key string) int {
	t := r.Text
	start := 0
	for i := 0; ; i++ {
		end := bytes.IndexByte(t[start:], '\n')
		if end < 0 {
			end = len(t)
		} else {
			end += start + 1
		}
		if _, ok := lineValue(t[start:end], key); ok {
			return r.line + i
		}
		if end >= len(t) {
			return r.line
		}
		start = end
	}
}

// NumLines returns the number of lines of the record.
func (r *Record) NumLines() int {
	if r.lines == nil {
		return bytes.Count(r.Text, nl)
	}
	return len(r.lines) + 1
}

// Errorf returns an *Error located at the record's PKGNAME line.
func (r *Record) Errorf(format string, args ...any) *Error {
	return &Error{File: r.file, Line: r.line, Msg: fmt.Sprintf(format, args...)}
}

// PbulkWeight returns PBULK_WEIGHT, or DefaultPbulkWeight when it is absent
// or not a non-negative decimal integer that fits in an int32.
func PbulkWeight(r *Record) int {
	v, ok := r.GetBytes(KeyPbulkWeight)
	if !ok {
		return DefaultPbulkWeight
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 32)
	if err != nil || n < 0 {
		return DefaultPbulkWeight
	}
	return int(n)
}

// Error is a parse error at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

var pkgnamePrefix = []byte(KeyPkgName + "=")

// Parse splits a whole scan or presolve file into records. name is used in
// errors and remembered in each Record. The records alias data.
func Parse(name string, data []byte) ([]Record, error) {
	recs, _, err := parse(name, data, 0, nil)
	return recs, err
}

// parse parses data, whose first line is line firstLine+1 of the file, and
// appends the records to recs. It returns the number of lines read.
func parse(name string, data []byte, firstLine int, recs []Record) ([]Record, int, error) {
	if len(data) == 0 {
		return recs, 0, nil
	}
	if len(data) > 1<<31-1 {
		return nil, 0, &Error{File: name, Line: firstLine + 1, Msg: "file larger than 2 GiB"}
	}
	// One offsets slice for the whole file; records take sub-slices of it.
	offsets := make([]int32, 0, len(data)/256+16)
	if recs == nil {
		recs = make([]Record, 0, len(data)/4096+1)
	}
	lineNo := firstLine
	recStart, recLine, recOff := -1, 0, 0
	finish := func(end int) {
		if recStart < 0 {
			return
		}
		lines := offsets[recOff:len(offsets):len(offsets)]
		if len(lines) == 0 {
			lines = noLines
		}
		recs = append(recs, Record{Text: data[recStart:end:end], lines: lines, file: name, line: recLine})
	}
	for pos := 0; pos < len(data); {
		lineNo++
		n := bytes.IndexByte(data[pos:], '\n')
		if n < 0 {
			return nil, 0, &Error{File: name, Line: lineNo, Msg: "file does not end with a newline (truncated?)"}
		}
		end := pos + n
		line := data[pos:end]
		// Each line is searched while it is in the cache: one pass over
		// the whole file first would cost as much as the parse.
		if nul := bytes.IndexByte(line, 0); nul >= 0 {
			return nil, 0, &Error{File: name, Line: lineNo, Msg: nulMessage(line, nul)}
		}
		if bytes.HasPrefix(line, pkgnamePrefix) {
			finish(pos)
			v := line[len(pkgnamePrefix):]
			if len(v) < MinPkgNameLen {
				return nil, 0, &Error{File: name, Line: lineNo, Msg: fmt.Sprintf("PKGNAME %q shorter than %d characters", v, MinPkgNameLen)}
			}
			if bytes.IndexAny(v, " \t\r") >= 0 {
				return nil, 0, &Error{File: name, Line: lineNo, Msg: fmt.Sprintf("PKGNAME %q contains whitespace", v)}
			}
			recStart, recLine, recOff = pos, lineNo, len(offsets)
		} else {
			if recStart < 0 {
				return nil, 0, &Error{File: name, Line: lineNo, Msg: "invalid input: text before the first PKGNAME= line"}
			}
			if len(line) > 0 && bytes.IndexByte(line, '=') < 0 {
				return nil, 0, &Error{File: name, Line: lineNo, Msg: fmt.Sprintf("line without '=': %q", truncate(line))}
			}
			offsets = append(offsets, int32(pos-recStart))
		}
		pos = end + 1
	}
	finish(len(data))
	return recs, lineNo - firstLine, nil
}

// nulMessage describes a line holding a NUL byte at offset at.
func nulMessage(line []byte, at int) string {
	if eq := bytes.IndexByte(line[:at], '='); eq >= 0 {
		return fmt.Sprintf("NUL byte in the value of %q", truncate(line[:eq]))
	}
	return "NUL byte in a line"
}

// noLines marks a parsed one-line record (non-nil, so Get uses the index).
var noLines = make([]int32, 0)

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// Write writes the records' text, byte for byte.
func Write(w io.Writer, recs []Record) error {
	for i := range recs {
		if _, err := w.Write(recs[i].Text); err != nil {
			return err
		}
	}
	return nil
}
