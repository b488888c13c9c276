package summary

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrSyntax is wrapped by errors about malformed pkg_summary text.
var ErrSyntax = errors.New("malformed pkg_summary")

// Field is one VARIABLE=VALUE line.
type Field struct{ Name, Value string }

// Record is one pkg_summary entry: its lines in order, and the line number
// of its first line in the input (for messages).
type Record struct {
	Fields []Field
	Line   int
}

// Get returns the value of the first line of name.
func (r *Record) Get(name string) (string, bool) {
	for _, f := range r.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Values returns the values of every line of name, in order.
func (r *Record) Values(name string) []string {
	var vs []string
	for _, f := range r.Fields {
		if f.Name == name {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// PkgName is Get("PKGNAME").
func (r *Record) PkgName() string { v, _ := r.Get("PKGNAME"); return v }

// Bytes returns the record as pkg_summary text, ending with the blank line.
func (r *Record) Bytes() []byte {
	var b bytes.Buffer
	for _, f := range r.Fields {
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(f.Value)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// Reader reads records from a pkg_summary stream. It is tolerant where
// real files vary: any number of blank lines separate records, the last
// record needs no closing blank line, values may be empty, unknown
// variables are kept, and a "\r" before "\n" is part of the value. A
// non-blank line without "=" or with an empty variable name is an error
// naming its line.
type Reader struct {
	r    *bufio.Reader
	name string
	line int
}

// NewReader returns a Reader; name is used in errors.
func NewReader(name string, r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), name: name}
}

// Next returns the next record, or io.EOF after the last one.
func (sr *Reader) Next() (*Record, error) {
	var rec *Record
	for {
		line, err := sr.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: collect it whole.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = sr.r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s:%d: %w", sr.name, sr.line+1, err)
		}
		if len(line) == 0 && err == io.EOF {
			if rec != nil {
				return rec, nil
			}
			return nil, io.EOF
		}
		sr.line++
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if len(line) == 0 {
			if rec != nil {
				return rec, nil
			}
			if err == io.EOF {
				return nil, io.EOF
			}
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%s:%d: %w: line %q is not VARIABLE=VALUE", sr.name, sr.line, ErrSyntax, truncate(line))
		}
		if rec == nil {
			rec = &Record{Line: sr.line}
		}
		rec.Fields = append(rec.Fields, Field{Name: string(line[:eq]), Value: string(line[eq+1:])})
		if err == io.EOF {
			return rec, nil
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// Parse reads all records of a pkg_summary.
func Parse(name string, r io.Reader) ([]*Record, error) {
	sr := NewReader(name, r)
	var recs []*Record
	for {
		rec, err := sr.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}
