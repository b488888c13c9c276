// Package ar reads (and, in writer.go, writes) Unix ar(1) archives, the
// container of pkgsrc's signed binary packages.
//
// Both common variants are read, as libarchive's generic ar reader (the one
// pkg_add uses) does:
//
//   - The archive starts with the 8-byte magic "!<arch>\n". Every member has
//     a 60-byte header: name (16 bytes), mtime (12, decimal), uid (6), gid
//     (6), mode (8, octal), size (10, decimal) and the terminator "`\n";
//     then the data; then one "\n" pad byte when the data length is odd.
//   - BSD: a name longer than 16 bytes (or containing a space) is stored as
//     "#1/<len>" and its bytes precede the data, counted in the size field.
//     Short names are space padded. Trailing NUL padding of a long name
//     (macOS ar pads them) is dropped.
//   - GNU: short names end with "/" ("foo.o/"); a member "//" holds the
//     table of long names and "/<offset>" names refer into it; the member
//     "/" (or "/SYM64/") is the symbol table. The reader consumes the name
//     table and both symbol tables itself and never returns them.
//
// Numeric fields that are blank (GNU ar leaves them blank in "//") read as 0.
// A malformed header is an error that says which member and which field.
package ar

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Magic is the global header of every ar archive.
const Magic = "!<arch>\n"

// HeaderSize is the size of one member header.
const HeaderSize = 60

// MaxNameLen bounds BSD "#1/<len>" and GNU name tables, so that a corrupt
// header cannot make the reader allocate gigabytes.
const MaxNameLen = 1 << 20

// ErrFormat is wrapped by every error about malformed archive contents
// (as opposed to I/O errors from the underlying reader).
var ErrFormat = errors.New("malformed ar archive")

// Header describes one member.
type Header struct {
	Name    string
	ModTime time.Time
	UID     int
	GID     int
	Mode    int64
	Size    int64 // bytes of data, not counting a BSD long name
}

// Reader reads the members of an ar archive in order.
type Reader struct {
	r        *bufio.Reader
	remain   int64 // unread data bytes of the current member
	pad      bool  // a pad byte follows the current member
	n        int   // members returned so far, for messages
	off      int64 // offset of the next byte of r, for messages
	gnuNames []byte
	err      error // sticky error
}

// NewReader checks the global header and returns a reader positioned
// before the first member.
func NewReader(r io.Reader) (*Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	var m [len(Magic)]byte
	n, err := io.ReadFull(br, m[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d bytes, too short for the ar magic", ErrFormat, n)
		}
		return nil, err
	}
	if string(m[:]) != Magic {
		return nil, fmt.Errorf("%w: no \"!<arch>\\n\" magic", ErrFormat)
	}
	return &Reader{r: br, off: int64(len(Magic))}, nil
}

// Next skips the rest of the current member and returns the header of the
// next one, or io.EOF at the end of the archive.
func (ar *Reader) Next() (*Header, error) {
	if ar.err != nil {
		return nil, ar.err
	}
	h, err := ar.next()
	if err != nil {
		ar.err = err
	}
	return h, err
}

func (ar *Reader) next() (*Header, error) {
	for {
		if err := ar.skipRest(); err != nil {
			return nil, err
		}
		var buf [HeaderSize]byte
		n, err := io.ReadFull(ar.r, buf[:])
		if err == io.EOF {
			return nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			// A lone newline after the last member is tolerated, as
			// libarchive does.
			if n == 1 && buf[0] == '\n' {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%w: truncated header of member %d at offset %d (%d of %d bytes)",
				ErrFormat, ar.n+1, ar.off, n, HeaderSize)
		}
		if err != nil {
			return nil, err
		}
		hdrOff := ar.off
		ar.off += HeaderSize
		h, err := ar.parseHeader(buf[:], hdrOff)
		if err != nil {
			return nil, err
		}
		ar.remain = h.Size
		ar.pad = h.Size%2 == 1
		rawName := strings.TrimRight(string(buf[0:16]), " ")
		switch {
		case rawName == "//":
			// GNU long-name table: keep it for "/<offset>" names.
			if h.Size > MaxNameLen {
				return nil, fmt.Errorf("%w: GNU name table of member %d at offset %d is %d bytes (limit %d)",
					ErrFormat, ar.n+1, hdrOff, h.Size, MaxNameLen)
			}
			tab := make([]byte, h.Size)
			if err := ar.readFull(tab, "GNU name table"); err != nil {
				return nil, err
			}
			ar.gnuNames = tab
			continue
		case rawName == "/" || rawName == "/SYM64/":
			continue // GNU symbol table
		case strings.HasPrefix(rawName, "#1/"):
			l, err := strconv.ParseInt(strings.TrimSpace(rawName[3:]), 10, 64)
			if err != nil || l < 0 || l > h.Size || l > MaxNameLen {
				return nil, fmt.Errorf("%w: member %d at offset %d: bad BSD long name length %q (size %d)",
					ErrFormat, ar.n+1, hdrOff, rawName, h.Size)
			}
			name := make([]byte, l)
			if err := ar.readFull(name, "BSD long name"); err != nil {
				return nil, err
			}
			h.Name = string(bytes.TrimRight(name, "\x00"))
			h.Size -= l
		case len(rawName) > 1 && rawName[0] == '/' && rawName[1] >= '0' && rawName[1] <= '9':
			o, err := strconv.ParseInt(rawName[1:], 10, 64)
			if err != nil || o < 0 || o >= int64(len(ar.gnuNames)) {
				return nil, fmt.Errorf("%w: member %d at offset %d: GNU long name %q outside the name table (%d bytes)",
					ErrFormat, ar.n+1, hdrOff, rawName, len(ar.gnuNames))
			}
			rest := ar.gnuNames[o:]
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				rest = rest[:i]
			}
			h.Name = strings.TrimSuffix(string(rest), "/")
		case strings.HasSuffix(rawName, "/"):
			h.Name = rawName[:len(rawName)-1]
		default:
			h.Name = rawName
		}
		if h.Name == "" {
			return nil, fmt.Errorf("%w: member %d at offset %d has an empty name", ErrFormat, ar.n+1, hdrOff)
		}
		ar.n++
		return h, nil
	}
}

func (ar *Reader) parseHeader(b []byte, off int64) (*Header, error) {
	if b[58] != '`' || b[59] != '\n' {
		return nil, fmt.Errorf("%w: member %d at offset %d: bad header terminator %q (want \"`\\n\")",
			ErrFormat, ar.n+1, off, b[58:60])
	}
	field := func(what string, f []byte, base int) (int64, error) {
		s := strings.TrimRight(string(f), " ")
		if s == "" {
			return 0, nil
		}
		v, err := strconv.ParseInt(s, base, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%w: member %d at offset %d: bad %s field %q", ErrFormat, ar.n+1, off, what, f)
		}
		return v, nil
	}
	mtime, err := field("mtime", b[16:28], 10)
	if err != nil {
		return nil, err
	}
	uid, err := field("uid", b[28:34], 10)
	if err != nil {
		return nil, err
	}
	gid, err := field("gid", b[34:40], 10)
	if err != nil {
		return nil, err
	}
	mode, err := field("mode", b[40:48], 8)
	if err != nil {
		return nil, err
	}
	size, err := field("size", b[48:58], 10)
	if err != nil {
		return nil, err
	}
	if strings.TrimRight(string(b[48:58]), " ") == "" {
		return nil, fmt.Errorf("%w: member %d at offset %d: empty size field", ErrFormat, ar.n+1, off)
	}
	return &Header{
		ModTime: time.Unix(mtime, 0),
		UID:     int(uid),
		GID:     int(gid),
		Mode:    mode,
		Size:    size,
	}, nil
}

// readFull reads len(p) bytes of the current member's data.
func (ar *Reader) readFull(p []byte, what string) error {
	n, err := io.ReadFull(ar.r, p)
	ar.off += int64(n)
	ar.remain -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated %s of member %d: %d of %d bytes", ErrFormat, what, ar.n+1, n, len(p))
		}
		return err
	}
	return nil
}

func (ar *Reader) skipRest() error {
	skip := ar.remain
	if ar.pad {
		skip++
	}
	if skip == 0 {
		return nil
	}
	n, err := ar.r.Discard(int(min(skip, 1<<62)))
	ar.off += int64(n)
	if int64(n) < skip {
		// A missing final pad byte is tolerated (some writers omit it at
		// the end of the archive); missing data is not.
		if ar.pad && int64(n) == ar.remain {
			if _, perr := ar.r.Peek(1); perr == io.EOF {
				ar.remain, ar.pad = 0, false
				return nil
			}
		}
		if err == nil || err == io.EOF {
			return fmt.Errorf("%w: member %d truncated: %d data bytes missing", ErrFormat, ar.n, skip-int64(n))
		}
		return err
	}
	ar.remain, ar.pad = 0, false
	return nil
}

// Read reads from the current member's data; it returns io.EOF at the end
// of the member and an error wrapping ErrFormat when the archive ends
// before the member does.
func (ar *Reader) Read(p []byte) (int, error) {
	if ar.err != nil {
		return 0, ar.err
	}
	if ar.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > ar.remain {
		p = p[:ar.remain]
	}
	n, err := ar.r.Read(p)
	ar.remain -= int64(n)
	ar.off += int64(n)
	if err == io.EOF && ar.remain > 0 {
		ar.err = fmt.Errorf("%w: member %d truncated: %d data bytes missing", ErrFormat, ar.n, ar.remain)
		return n, ar.err
	}
	if err != nil && err != io.EOF {
		return n, err
	}
	return n, nil
}
