package ar

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Writer writes a BSD-variant ar archive byte for byte as libarchive's
// ar_bsd writer (archive_write_set_format_ar_bsd, the one pkg_admin's
// *-sign-package uses) does:
//
//   - the magic is written before the first member (or by Close when the
//     archive is empty);
//   - numeric fields are left-aligned and space padded: mtime, uid, gid
//     and size in decimal, mode in octal; a value that does not fit its
//     field is an error (libarchive refuses such a header too);
//   - a name of up to 16 bytes without spaces is stored in the name field;
//     any other name as "#1/<len>" with the name's bytes in front of the
//     data, counted in the size field;
//   - one "\n" pad byte follows a member whose stored size (name bytes
//     included) is odd.
//
// Names are stored as given after stripping leading directories, as
// libarchive does; an empty name or one ending in "/" is an error.
type Writer struct {
	w      io.Writer
	begun  bool  // magic written
	remain int64 // data bytes the current member still needs
	pad    bool  // current member needs a pad byte
	open   bool  // a member is being written
	err    error // sticky write error
}

// ErrWrite is wrapped by errors about misuse of the Writer (short or long
// member data, values that do not fit a header field).
var ErrWrite = errors.New("ar writer")

// NewWriter returns a Writer that writes an archive to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteHeader finishes the previous member and starts a new one; exactly
// h.Size bytes of data must follow through Write. h.Mode is written as is
// (libarchive writes the full st_mode, file type bits included, e.g.
// 0100644).
func (aw *Writer) WriteHeader(h *Header) error {
	if aw.err != nil {
		return aw.err
	}
	if err := aw.finishMember(); err != nil {
		return err
	}
	name := h.Name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		if i == len(name)-1 {
			return fmt.Errorf("%w: invalid member name %q (ends in /)", ErrWrite, h.Name)
		}
		name = name[i+1:]
	}
	if name == "" {
		return fmt.Errorf("%w: empty member name", ErrWrite)
	}
	if h.Size < 0 {
		return fmt.Errorf("%w: member %s: negative size %d", ErrWrite, name, h.Size)
	}
	var buf [HeaderSize]byte
	for i := range buf {
		buf[i] = ' '
	}
	buf[58], buf[59] = '`', '\n'
	size := h.Size
	long := len(name) > 16 || strings.IndexByte(name, ' ') >= 0
	if long {
		if err := putField(buf[3:16], strconv.Itoa(len(name)), name, "name length"); err != nil {
			return err
		}
		copy(buf[0:3], "#1/")
		size += int64(len(name))
	} else {
		copy(buf[0:16], name)
	}
	mtime := h.ModTime.Unix()
	if h.ModTime.IsZero() {
		mtime = 0
	}
	if mtime < 0 || h.UID < 0 || h.GID < 0 || h.Mode < 0 {
		return fmt.Errorf("%w: member %s: negative mtime, uid, gid or mode", ErrWrite, name)
	}
	for _, f := range []struct {
		b    []byte
		v    string
		what string
	}{
		{buf[16:28], strconv.FormatInt(mtime, 10), "mtime"},
		{buf[28:34], strconv.Itoa(h.UID), "uid"},
		{buf[34:40], strconv.Itoa(h.GID), "gid"},
		{buf[40:48], strconv.FormatInt(h.Mode, 8), "mode"},
		{buf[48:58], strconv.FormatInt(size, 10), "size"},
	} {
		if err := putField(f.b, f.v, name, f.what); err != nil {
			return err
		}
	}
	if !aw.begun {
		if err := aw.write([]byte(Magic)); err != nil {
			return err
		}
		aw.begun = true
	}
	if err := aw.write(buf[:]); err != nil {
		return err
	}
	if long {
		if err := aw.write([]byte(name)); err != nil {
			return err
		}
	}
	aw.remain, aw.pad, aw.open = h.Size, size%2 == 1, true
	return nil
}

func putField(dst []byte, v, name, what string) error {
	if len(v) > len(dst) {
		return fmt.Errorf("%w: member %s: %s %s does not fit the %d-byte ar field", ErrWrite, name, what, v, len(dst))
	}
	copy(dst, v)
	return nil
}

// Write writes data of the current member; writing more than the header's
// size is an error.
func (aw *Writer) Write(p []byte) (int, error) {
	if aw.err != nil {
		return 0, aw.err
	}
	if !aw.open {
		return 0, fmt.Errorf("%w: Write before WriteHeader", ErrWrite)
	}
	if int64(len(p)) > aw.remain {
		return 0, fmt.Errorf("%w: %d bytes written past the member's size", ErrWrite, int64(len(p))-aw.remain)
	}
	n, err := aw.w.Write(p)
	aw.remain -= int64(n)
	if err != nil {
		aw.err = err
	}
	return n, err
}

func (aw *Writer) finishMember() error {
	if !aw.open {
		return nil
	}
	if aw.remain != 0 {
		return fmt.Errorf("%w: member is %d bytes short of its header's size", ErrWrite, aw.remain)
	}
	aw.open = false
	if aw.pad {
		aw.pad = false
		return aw.write([]byte{'\n'})
	}
	return nil
}

func (aw *Writer) write(b []byte) error {
	if _, err := aw.w.Write(b); err != nil {
		aw.err = err
		return err
	}
	return nil
}

// Close finishes the last member (writing its pad byte) and writes the
// magic if no member was written. It does not close the underlying writer.
func (aw *Writer) Close() error {
	if aw.err != nil {
		return aw.err
	}
	if err := aw.finishMember(); err != nil {
		return err
	}
	if !aw.begun {
		aw.begun = true
		return aw.write([]byte(Magic))
	}
	return nil
}
