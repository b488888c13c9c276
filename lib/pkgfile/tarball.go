package pkgfile

import (
	"archive/tar"
	"bufio"
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
//
// The decoders' memory is bounded: an xz block that asks for a dictionary
// larger than MaxXZDict, or a zstd frame with a window larger than
// MaxZstdWindow, fails the read (ErrFormat) before anything is allocated
// for it.
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
		xr, err := xz.NewReader(newXZGuard(br, MaxXZDict))
		if err != nil {
			return nil, c, nil, streamErr(c, err)
		}
		return xr, c, nop, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return nil, c, nil, streamErr(c, err)
		}
		return zr, c, zr.Close, nil
	}
	return br, None, nop, nil
}

// streamErr classifies an error from a decompressor or the tar reader.
func streamErr(c Compression, err error) error {
	if errors.Is(err, ErrFormat) {
		return err // already said (the bomb limit, the xz guard)
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return fmt.Errorf("%w: zstd frame asks for a window of more than %s (the limit)", ErrFormat, FormatSize(MaxZstdWindow))
	}
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
	cr := &countingReader{r: dr, limit: MaxMetaStream}
	tr := tar.NewReader(cr)
	m.Files = make(map[string][]byte, 8)
	var total int64 // bytes of metadata files so far
	globals := 0
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
			after := ""
			if len(m.Order) > 0 {
				after = " (after " + m.Order[len(m.Order)-1] + ")"
			}
			return fmt.Errorf("tar member %d%s: %w", i+1, after, streamErr(c, err))
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// libarchive applies pax global headers silently; so do we.
			if globals++; globals > maxGlobalHeaders {
				return fmt.Errorf("%w: more than %d pax global headers before the payload", ErrFormat, maxGlobalHeaders)
			}
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
		if h.Size > MaxMetaFileSize {
			return fmt.Errorf("%w: %s is %d bytes, more than the %s a metadata file may have",
				ErrFormat, h.Name, h.Size, FormatSize(MaxMetaFileSize))
		}
		if total+h.Size > MaxMetaTotal {
			return fmt.Errorf("%w: %s (%d bytes) brings the metadata files to %d bytes, more than the %s allowed in all",
				ErrFormat, h.Name, h.Size, total+h.Size, FormatSize(MaxMetaTotal))
		}
		total += h.Size
		// Exactly the size the header declares (and the limits allow):
		// the tar reader yields that many bytes or fails.
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			return fmt.Errorf("reading %s: %w", h.Name, streamErr(c, err))
		}
		m.Files[h.Name] = b
		m.Order = append(m.Order, h.Name)
	}
	for _, req := range []string{ContentsName, CommentName, DescName} {
		if _, ok := m.Files[req]; !ok {
			return fmt.Errorf("%w: no %s member before the payload", ErrFormat, req)
		}
	}
	return nil
}

// countingReader counts the bytes the tar reader consumed and fails once
// they exceed limit.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		return 0, fmt.Errorf("%w: more than %s of tar data before the payload (a decompression bomb?)",
			ErrFormat, FormatSize(c.limit))
	}
	if room := c.limit - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
