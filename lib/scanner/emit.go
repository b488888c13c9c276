package scanner

import (
	"bytes"
	"fmt"
	"io"
)

// Emitter turns raw `make pbulk-index` output into pscan records, following
// pbulk-scan's write_single_job (spec §2.4) to the byte:
//
//   - a record starts at a line beginning with "PKGNAME=" and runs to the
//     next such line or the end of the output;
//   - its first line must be "PKGNAME=<name>\n", name ≥ 2 bytes without
//     space or tab, else "pbulk-index output not recognized for <loc>" and
//     the rest of the location's output is dropped;
//   - an unterminated last line gives the same warning (after the duplicate
//     warning, if the record was also a duplicate: pbulk checks in that order);
//   - a PKGNAME already written by any earlier record is dropped with
//     "Duplicate package: <name>" (first occurrence in job order wins);
//   - a kept record is written as its PKGNAME line, "PKG_LOCATION=<loc>\n",
//     then its remaining lines unchanged.
//
// An Emitter is not safe for concurrent use: records must be emitted in job
// order, which is what makes the duplicate rule deterministic.
type Emitter struct {
	w    io.Writer
	warn func(msg string)
	seen map[string]struct{}
}

// NewEmitter returns an Emitter writing to w and reporting pbulk's warnings
// through warn (one message per call, without a trailing newline).
func NewEmitter(w io.Writer, warn func(msg string)) *Emitter {
	return &Emitter{w: w, warn: warn, seen: make(map[string]struct{})}
}

// Emitted says what Emit did with one location's output.
type Emitted struct {
	Records    int // records written
	Duplicates int // records dropped as duplicates
	// Complete is true when every byte of the output ended up in a written
	// record: the raw output can then be rebuilt from the records alone by
	// deleting their PKG_LOCATION lines (what the reuse cache relies on).
	Complete bool
	// Unrecognized is true when (part of) the output was dropped as not
	// recognized.
	Unrecognized bool
}

// Emit writes the records of one location's raw output. Only a write error
// is returned; malformed output is reported through warn, as pbulk does.
func (e *Emitter) Emit(loc string, raw []byte) (Emitted, error) {
	res := Emitted{Complete: true}
	rest := raw
	for len(rest) > 0 {
		name, ok := recordName(rest)
		if !ok {
			e.warn(fmt.Sprintf("pbulk-index output not recognized for %s", loc))
			res.Unrecognized, res.Complete = true, false
			break
		}
		_, dup := e.seen[name]
		if dup {
			e.warn(fmt.Sprintf("Duplicate package: %s", name))
		}
		end, ok := recordEnd(rest)
		if !ok {
			e.warn(fmt.Sprintf("pbulk-index output not recognized for %s", loc))
			res.Unrecognized, res.Complete = true, false
			break
		}
		rec := rest[:end]
		rest = rest[end:]
		if dup {
			res.Duplicates++
			res.Complete = false
			continue
		}
		first := bytes.IndexByte(rec, '\n') + 1
		if err := e.write(rec[:first], loc, rec[first:]); err != nil {
			return res, err
		}
		e.seen[name] = struct{}{}
		res.Records++
	}
	return res, nil
}

func (e *Emitter) write(first []byte, loc string, body []byte) error {
	buf := make([]byte, 0, len(first)+len("PKG_LOCATION=\n")+len(loc)+len(body))
	buf = append(buf, first...)
	buf = append(buf, "PKG_LOCATION="...)
	buf = append(buf, loc...)
	buf = append(buf, '\n')
	buf = append(buf, body...)
	_, err := e.w.Write(buf)
	return err
}

var pkgnamePrefix = []byte("PKGNAME=")

// recordName returns the PKGNAME of the record starting at b, if its first
// line is acceptable to pbulk-scan.
func recordName(b []byte) (string, bool) {
	if !bytes.HasPrefix(b, pkgnamePrefix) {
		return "", false
	}
	v := b[len(pkgnamePrefix):]
	nl := bytes.IndexByte(v, '\n')
	if nl < 2 || bytes.ContainsAny(v[:nl], " \t") {
		return "", false
	}
	return string(v[:nl]), true
}

// recordEnd returns the length of the record starting at b: up to the next
// line beginning with PKGNAME= or the end of b. ok is false when a line of
// the record has no newline.
func recordEnd(b []byte) (int, bool) {
	pos := 0
	for {
		nl := bytes.IndexByte(b[pos:], '\n')
		if nl < 0 {
			return 0, false
		}
		pos += nl + 1
		if pos == len(b) || bytes.HasPrefix(b[pos:], pkgnamePrefix) {
			return pos, true
		}
	}
}

// scanDepends returns the words of every SCAN_DEPENDS line of raw output,
// in order, and whether every record (every PKGNAME= line) had a non-empty
// one.
// pbulk splits the value on single spaces (strtok " "); so do we, which
// keeps the rules of the cache and of the pbulk fallback the same.
func scanDepends(raw []byte) (words []string, all bool) {
	records, withDeps := 0, 0
	inRecord := false
	for len(raw) > 0 {
		line := raw
		if nl := bytes.IndexByte(raw, '\n'); nl >= 0 {
			line, raw = raw[:nl], raw[nl+1:]
		} else {
			raw = nil
		}
		switch {
		case bytes.HasPrefix(line, pkgnamePrefix):
			records++
			inRecord = false
		case bytes.HasPrefix(line, []byte("SCAN_DEPENDS=")):
			n := 0
			for _, w := range bytes.Split(line[len("SCAN_DEPENDS="):], []byte(" ")) {
				if len(w) > 0 {
					words = append(words, string(w))
					n++
				}
			}
			// An empty SCAN_DEPENDS says nothing about what was read: it
			// counts as missing (pbulk would reuse such a record forever).
			if n > 0 && !inRecord {
				withDeps++
				inRecord = true
			}
		}
	}
	return words, records > 0 && records == withDeps
}
