package scan

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// ReadFile reads path, decompressing it when its content starts with the
// zstd or gzip magic, and parses it.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(path, f)
}

// MapFile is ReadFile without the copy: an uncompressed regular file is
// mapped into memory and the records point into the mapping, which saves
// the time and memory of reading a 160 MB scan. The records are valid until
// release is called. The file must not be truncated meanwhile (the process
// would get SIGBUS), so use it only for input files nobody is writing.
// Compressed files and non-regular files are read as ReadFile does.
func MapFile(path string) (recs []Record, release func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, unmap, ok := mapFile(f)
	if !ok || bytes.HasPrefix(data, zstdMagic) || bytes.HasPrefix(data, gzipMagic) {
		if ok {
			unmap()
		}
		recs, err := ReadFile(path)
		return recs, func() error { return nil }, err
	}
	recs, err = Parse(path, data)
	if err != nil {
		unmap()
		return nil, nil, err
	}
	return recs, unmap, nil
}

// ReadAll reads r to the end (decompressing as ReadFile does) and parses it
// under name (e.g. "<stdin>").
//
// A pipe's size is unknown, so the data is read in chunks of at least
// chunkSize bytes, each cut after its last complete record and parsed on its
// own; records point into their chunk. Memory stays at the size of the data
// plus one chunk, where growing one buffer would need up to three times the
// size while copying (600 MB for a full-tree scan).
func ReadAll(name string, r io.Reader) ([]Record, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(magic, zstdMagic):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(8<<30))
		if err != nil {
			return nil, fmt.Errorf("%s: zstd: %w", name, err)
		}
		defer d.Close()
		src = d
	case bytes.HasPrefix(magic, gzipMagic):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", name, err)
		}
		defer z.Close()
		src = z
	default:
		// A plain regular file (stdin redirected from one, or ReadFile):
		// one exact allocation.
		if f, ok := r.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				if n := st.Size(); n > 0 && n < 1<<31 {
					buf := make([]byte, n+1) // +1: see the file grew
					got, err := io.ReadFull(br, buf)
					if err == io.ErrUnexpectedEOF || err == io.EOF {
						return Parse(name, buf[:got])
					}
					if err != nil {
						return nil, fmt.Errorf("read %s: %w", name, err)
					}
					// Longer than it was: read the rest in chunks.
					return readChunks(name, io.MultiReader(bytes.NewReader(buf), br), chunkSize)
				}
			}
		}
	}
	return readChunks(name, src, chunkSize)
}

// chunkSize is the minimum size of the buffers readChunks parses.
const chunkSize = 8 << 20

var recordStart = []byte("\n" + KeyPkgName + "=")

func readChunks(name string, r io.Reader, size int) ([]Record, error) {
	var recs []Record
	lines := 0
	buf := make([]byte, 0, size)
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			recs, _, err = parse(name, buf, lines, recs)
			return recs, err
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		// Full: parse up to the last record start, carry the rest over.
		cut := bytes.LastIndex(buf, recordStart) + 1
		if cut <= 0 {
			// One record (or leading garbage) fills the buffer: grow it.
			bigger := make([]byte, len(buf), 2*cap(buf))
			copy(bigger, buf)
			buf = bigger
			continue
		}
		var nlines int
		recs, nlines, err = parse(name, buf[:cut], lines, recs)
		if err != nil {
			return nil, err
		}
		lines += nlines
		next := make([]byte, len(buf)-cut, max(size, 2*(len(buf)-cut)))
		copy(next, buf[cut:])
		buf = next
	}
}

// Decompress returns data decompressed when it starts with the zstd or gzip
// magic, else data itself. Scan files are plain text, whose first byte is
// 'P', so the magic cannot be mistaken for content.
func Decompress(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, zstdMagic):
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(8<<30))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		out, err := d.DecodeAll(data, nil)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	case bytes.HasPrefix(data, gzipMagic):
		z, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		var buf bytes.Buffer
		buf.Grow(len(data) * 8)
		if _, err := io.Copy(&buf, z); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := z.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return buf.Bytes(), nil
	}
	return data, nil
}
