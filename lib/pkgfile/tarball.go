package pkgfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Decompress returns a reader of the decompressed bytes of br, whose
// compression is detected from its first bytes, and the compression found.
// close releases decoder resources (zstd); it does not close br.
func Decompress(br *bufio.Reader) (r io.Reader, c Compression, close func(), err error) {
	head, _ := br.Peek(6)
	c = DetectCompression(head)
	nop := func() {}
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, nil, streamErr(c, err)
		}
		return zr, c, nop, nil
	case Bzip2:
		return bzip2.NewReader(br), c, nop, nil
	case XZ:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, c, nil, streamErr(c, err)
		}
		return xr, c, nop, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, c, nil, streamErr(c, err)
		}
		return zr, c, zr.Close, nil
	}
	return br, None, nop, nil
}

// streamErr classifies an error from a decompressor or the tar reader.
func streamErr(c Compression, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w (%s data ends early)", ErrFormat, ErrTruncated, c)
	}
	if c == None {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return fmt.Errorf("%w: corrupt %s stream: %w", ErrFormat, c, err)
}

func readTarball(br *bufio.Reader, m *Meta) error {
	dr, c, closeFn, err := Decompress(br)
	if err != nil {
		return err
	}
	defer closeFn()
	cr := &countingReader{r: dr}
	tr := tar.NewReader(cr)
	m.Files = make(map[string][]byte, 8)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF && cr.n%512 != 0 {
			// Go's tar reader reports a stream cut inside the padding
			// of a member as a clean end; a tar stream is whole blocks.
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			if i == 0 {
				return fmt.Errorf("%w: no %s: empty tar archive (%s)", ErrFormat, ContentsName, c)
			}
			break
		}
		if err != nil {
			if i == 0 && errors.Is(err, tar.ErrHeader) {
				return fmt.Errorf("%w: not a tar archive (%s compression): %w", ErrFormat, c, err)
			}
			return fmt.Errorf("tar member %d: %w", i+1, streamErr(c, err))
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// libarchive applies pax global headers silently; so do we.
			i--
			continue
		}
		if !IsMetaName(h.Name) {
			if i == 0 {
				return fmt.Errorf("%w: %s not first: the first member is %q", ErrFormat, ContentsName, h.Name)
			}
			break // first payload member: the metadata is complete
		}
		if i == 0 && h.Name != ContentsName {
			return fmt.Errorf("%w: %s not first: the first member is %q", ErrFormat, ContentsName, h.Name)
		}
		if _, dup := m.Files[h.Name]; dup {
			return fmt.Errorf("%w: duplicate member %s", ErrFormat, h.Name)
		}
		if h.Size > MaxMetaSize {
			return fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrFormat, h.Name, h.Size, MaxMetaSize)
		}
		var buf bytes.Buffer
		buf.Grow(int(min(h.Size, 1<<20)) + 1)
		if _, err := buf.ReadFrom(tr); err != nil {
			return fmt.Errorf("reading %s: %w", h.Name, streamErr(c, err))
		}
		m.Files[h.Name] = buf.Bytes()
		m.Order = append(m.Order, h.Name)
	}
	for _, req := range []string{ContentsName, CommentName, DescName} {
		if _, ok := m.Files[req]; !ok {
			return fmt.Errorf("%w: no %s member before the payload", ErrFormat, req)
		}
	}
	return nil
}

// countingReader counts the bytes the tar reader consumed.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
