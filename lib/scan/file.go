package scan

import (
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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data, err = Decompress(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data)
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
func ReadAll(name string, r io.Reader) ([]Record, error) {
	var buf bytes.Buffer
	// Stdin redirected from a file: read it in one allocation.
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			// ReadFrom wants MinRead bytes free before each read.
			buf.Grow(int(st.Size()) + bytes.MinRead)
		}
	}
	_, err := buf.ReadFrom(r)
	data := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	data, err = Decompress(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return Parse(name, data)
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
