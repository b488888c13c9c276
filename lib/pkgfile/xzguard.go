package pkgfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// xzGuard passes an xz file (one or more streams) through to the xz
// decoder while following its framing (the .xz format 1.0.4: stream
// header, blocks, index, footer, padding), so that it sees every block
// header before the decoder does. A block whose LZMA2 filter asks for a
// dictionary larger than maxDict fails the read: the decoder
// (github.com/ulikunitz/xz) would allocate the whole dictionary, up to
// 4 GiB, as soon as it parsed that header.
//
// The block data is followed through its LZMA2 chunk headers (not the
// optional compressed size of the block header, which could lie), so the
// guard and the decoder agree on where the next block starts. Anything
// that is not valid framing is an error; checksums and the decoding
// itself are left to the decoder.
type xzGuard struct {
	br      *bufio.Reader
	maxDict int64
	pass    int64        // bytes the decoder may read before the next parse
	next    func() error // parses the structure that follows, sets pass and next
	err     error        // sticky

	check    int   // size of the check field of the current stream
	blockLen int64 // header and data bytes of the current block, for its padding
}

func newXZGuard(r io.Reader, maxDict int64) *xzGuard {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, 4096)
	}
	g := &xzGuard{br: br, maxDict: maxDict}
	g.next = g.streamHeader
	return g
}

var errXZ = errors.New("corrupt xz stream")

func (g *xzGuard) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrFormat, errXZ, fmt.Sprintf(format, args...))
}

func (g *xzGuard) Read(p []byte) (int, error) {
	for g.pass == 0 {
		if g.err != nil {
			return 0, g.err
		}
		g.err = g.next()
	}
	if int64(len(p)) > g.pass {
		p = p[:g.pass]
	}
	n, err := g.br.Read(p)
	g.pass -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // inside a structure
	}
	return n, err
}

// peek returns the next n bytes without consuming them; a stream that
// ends first is truncated.
func (g *xzGuard) peek(n int) ([]byte, error) {
	b, err := g.br.Peek(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF || (err == nil && len(b) < n) {
		return nil, io.ErrUnexpectedEOF
	}
	return b, err
}

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// streamHeader: magic, flags (the check type), CRC32.
func (g *xzGuard) streamHeader() error {
	b, err := g.peek(12)
	if err != nil {
		return err
	}
	if !bytes.Equal(b[:6], xzMagic) {
		return g.fail("no stream header")
	}
	if b[6] != 0 || b[7]&0xf0 != 0 {
		return g.fail("unsupported stream flags %#x %#x", b[6], b[7])
	}
	// Check sizes by type: 0, then 4, 8, 16, 32, 64 bytes for each
	// group of three IDs.
	if t := int(b[7] & 0x0f); t == 0 {
		g.check = 0
	} else {
		g.check = 4 << ((t - 1) / 3)
	}
	g.pass, g.next = 12, g.blockOrIndex
	return nil
}

// blockOrIndex: a block header (its first byte is its size) or the index
// (indicator 0).
func (g *xzGuard) blockOrIndex() error {
	b, err := g.peek(1)
	if err != nil {
		return err
	}
	if b[0] == 0 {
		return g.index()
	}
	size := (int(b[0]) + 1) * 4
	h, err := g.peek(size)
	if err != nil {
		return err
	}
	if err := g.checkBlockHeader(h); err != nil {
		return err
	}
	g.blockLen = int64(size)
	g.pass, g.next = int64(size), g.chunk
	return nil
}

// checkBlockHeader checks the dictionary of an LZMA2 filter in a block
// header (size, flags, optional sizes, filter flags, padding, CRC32).
func (g *xzGuard) checkBlockHeader(h []byte) error {
	flags := h[1]
	if flags&0x3c != 0 {
		return g.fail("reserved block flags %#x", flags)
	}
	rest := h[2 : len(h)-4]
	for _, bit := range []byte{0x40, 0x80} { // compressed, uncompressed size
		if flags&bit != 0 {
			_, n, err := xzVarint(rest)
			if err != nil {
				return g.fail("block header: %v", err)
			}
			rest = rest[n:]
		}
	}
	for range int(flags&3) + 1 {
		id, n, err := xzVarint(rest)
		if err != nil {
			return g.fail("block header filter: %v", err)
		}
		rest = rest[n:]
		psize, n, err := xzVarint(rest)
		if err != nil || psize > uint64(len(rest)-n) {
			return g.fail("block header filter properties")
		}
		props := rest[n : n+int(psize)]
		rest = rest[n+int(psize):]
		if id != 0x21 { // not LZMA2: the decoder refuses what it does not know
			continue
		}
		if len(props) != 1 || props[0] > 40 {
			return g.fail("bad LZMA2 dictionary size")
		}
		if d := xzDictSize(props[0]); d > g.maxDict {
			return fmt.Errorf("%w: xz block asks for a dictionary of %s, more than the %s allowed (xz -9 uses 64 MiB)",
				ErrFormat, FormatSize(d), FormatSize(g.maxDict))
		}
	}
	return nil
}

// xzDictSize decodes an LZMA2 dictionary size byte (0..40).
func xzDictSize(c byte) int64 {
	if c == 40 {
		return 1<<32 - 1
	}
	return int64(2|c&1) << (c/2 + 11)
}

// xzVarint decodes an xz variable-length integer (at most 9 bytes).
func xzVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("integer runs past its field")
		}
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, 0, errors.New("integer not in its shortest form")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("integer longer than 9 bytes")
}

// chunk: one LZMA2 chunk of the block's data, or its end marker.
func (g *xzGuard) chunk() error {
	b, err := g.peek(1)
	if err != nil {
		return err
	}
	var n int64
	switch c := b[0]; {
	case c == 0: // end of the LZMA2 data
		g.blockLen++
		g.pass, g.next = 1, g.blockEnd
		return nil
	case c == 1 || c == 2: // uncompressed chunk
		h, err := g.peek(3)
		if err != nil {
			return err
		}
		n = 3 + int64(binary.BigEndian.Uint16(h[1:3])) + 1
	case c >= 0x80: // LZMA chunk, with properties from reset mode 2 on
		hl := 5
		if (c>>5)&3 >= 2 {
			hl = 6
		}
		h, err := g.peek(hl)
		if err != nil {
			return err
		}
		n = int64(hl) + int64(binary.BigEndian.Uint16(h[3:5])) + 1
	default:
		return g.fail("bad LZMA2 chunk control byte %#x", c)
	}
	g.blockLen += n
	g.pass, g.next = n, g.chunk
	return nil
}

// blockEnd: padding to a multiple of four, then the check.
func (g *xzGuard) blockEnd() error {
	pad := (4 - g.blockLen%4) % 4
	g.pass, g.next = pad+int64(g.check), g.blockOrIndex
	if g.pass == 0 {
		return g.blockOrIndex()
	}
	return nil
}

// index: indicator, record count, records (two integers each), padding
// to a multiple of four, CRC32; then the stream footer.
func (g *xzGuard) index() error {
	b, err := g.br.Peek(10)
	if len(b) < 2 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	count, n, verr := xzVarint(b[1:])
	if verr != nil {
		return g.fail("index: %v", verr)
	}
	size := int64(1 + n)
	g.pass = size
	g.next = func() error { return g.records(count, size) }
	return nil
}

func (g *xzGuard) records(left uint64, size int64) error {
	if left == 0 {
		g.pass = (4-size%4)%4 + 4
		g.next = g.footer
		return nil
	}
	b, err := g.br.Peek(18)
	if len(b) == 0 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	_, n1, err1 := xzVarint(b)
	if err1 != nil {
		return g.fail("index record: %v", err1)
	}
	_, n2, err2 := xzVarint(b[n1:])
	if err2 != nil {
		return g.fail("index record: %v", err2)
	}
	size += int64(n1 + n2)
	g.pass = int64(n1 + n2)
	g.next = func() error { return g.records(left-1, size) }
	return nil
}

// footer: CRC32, backward size, flags, "YZ".
func (g *xzGuard) footer() error {
	b, err := g.peek(12)
	if err != nil {
		return err
	}
	if b[10] != 'Y' || b[11] != 'Z' {
		return g.fail("no stream footer")
	}
	g.pass, g.next = 12, g.streamPadding
	return nil
}

// streamPadding: zero bytes in groups of four, then the end or another
// stream.
func (g *xzGuard) streamPadding() error {
	b, err := g.br.Peek(4)
	if len(b) == 0 && err == io.EOF {
		return io.EOF // the end of the file
	}
	if len(b) < 4 {
		if err == nil || err == io.EOF {
			return g.fail("stream padding is not a multiple of four bytes")
		}
		return err
	}
	if bytes.Equal(b, []byte{0, 0, 0, 0}) {
		g.pass, g.next = 4, g.streamPadding
		return nil
	}
	return g.streamHeader()
}
