package multistream

import (
	"bytes"
	stdbzip2 "compress/bzip2"
	stdgzip "compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// text is pkg_summary-like input of at least n bytes.
func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "PKGNAME=pkg%d-1.%d\nCOMMENT=Package %d\nFILE_SIZE=%d\n\n", i, i%13, i*7, i*1000+i%97)
	}
	return b.Bytes()
}

// small returns f with streams of chunk bytes: many streams from a small
// input, so that the tests stay fast.
func small(f Format, chunk int) Format {
	f.Chunk = chunk
	return f
}

// goReaders decompress a whole file the way Go programs do.
var goReaders = map[string][]func([]byte) ([]byte, error){
	"gz": {
		func(b []byte) ([]byte, error) {
			zr, err := stdgzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		},
		func(b []byte) ([]byte, error) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		},
	},
	"bz2": {func(b []byte) ([]byte, error) { return io.ReadAll(stdbzip2.NewReader(bytes.NewReader(b))) }},
	"xz": {func(b []byte) ([]byte, error) {
		zr, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	}},
}

// tools are the real decompressors; bsdcat is libarchive, which pkgin
// uses to read pkg_summary.*.
var tools = map[string][][]string{
	"gz":  {{"gzip", "-dc"}, {"bsdcat"}},
	"bz2": {{"bzip2", "-dc"}, {"bsdcat"}},
	"xz":  {{"xz", "-dc"}, {"bsdcat"}},
}

// CheckDecompress checks that every Go reader and every real tool reads
// the compressed file back as want, byte for byte.
func checkDecompress(t *testing.T, format string, compressed, want []byte) {
	t.Helper()
	for i, read := range goReaders[format] {
		got, err := read(compressed)
		if err != nil {
			t.Fatalf("%s: Go reader %d: %v", format, i, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Go reader %d read %d bytes, want %d", format, i, len(got), len(want))
		}
	}
	file := filepath.Join(t.TempDir(), "x."+format)
	if err := os.WriteFile(file, compressed, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, argv := range tools[format] {
		got, err := exec.Command(testenv.Program(t, argv[0]), append(argv[1:], file)...).Output()
		if err != nil {
			t.Fatalf("%q: %v", argv, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%q read %d bytes, want %d", argv, len(got), len(want))
		}
	}
}

// streamStarts counts the stream headers in a compressed file (a bound
// from above: a header's bytes may also occur inside a stream).
var streamStarts = map[string][]byte{
	"gz":  {0x1f, 0x8b, 8},
	"bz2": []byte("BZh9"),
	"xz":  {0xfd, '7', 'z', 'X', 'Z', 0},
}

func TestCompress(t *testing.T) {
	in := text(300 << 10)
	formats := []Format{Gzip, small(Bzip2, 64<<10), small(XZ, 100<<10)}
	tests := []struct {
		name    string
		in      []byte
		workers int
	}{
		{"empty", nil, 2},
		{"one byte", []byte("x"), 2},
		{"one worker", in, 1},
		{"two workers", in, 2},
		{"more workers than streams", in[:150<<10], 16},
		{"exact chunks", in[:4*64<<10], 3},
	}
	var first [][]byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, err := Compress(context.Background(), tt.in, formats, tt.workers)
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range formats {
				checkDecompress(t, f.Name, outs[i], tt.in)
				if f.Chunk > 0 && len(tt.in) > 0 {
					want := (len(tt.in) + f.Chunk - 1) / f.Chunk
					if got := bytes.Count(outs[i], streamStarts[f.Name]); got < want {
						t.Errorf("%s: %d streams, want %d", f.Name, got, want)
					}
				}
			}
			// The output does not depend on the number of workers.
			if len(tt.in) == len(in) {
				if first == nil {
					first = outs
				} else {
					for i := range outs {
						if !bytes.Equal(outs[i], first[i]) {
							t.Errorf("%s: output differs from the one with another number of workers", formats[i].Name)
						}
					}
				}
			}
		})
	}
}

func TestCompressCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Compress(ctx, text(1<<20), []Format{small(Bzip2, 64<<10)}, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Compress after cancel: %v", err)
	}
}

func TestWriter(t *testing.T) {
	const chunk = 100 << 10
	big := text(5*chunk + 12345)
	tests := []struct {
		name   string
		in     []byte
		writes int // split the input into this many writes
	}{
		{"empty", nil, 1},
		{"small", []byte("PKGNAME=a-1\n"), 1},
		{"six streams", big, 7},
		{"exact chunk", big[:chunk], 3},
		{"exact chunks", big[:3*chunk], 1},
	}
	for _, f := range []Format{Bzip2, XZ, Gzip} {
		for _, tt := range tests {
			t.Run(f.Name+"/"+tt.name, func(t *testing.T) {
				var out bytes.Buffer
				zw := NewWriter(&out, small(f, chunk), 2)
				step := len(tt.in)/tt.writes + 1
				for p := tt.in; len(p) > 0; {
					k := min(step, len(p))
					if _, err := zw.Write(p[:k]); err != nil {
						t.Fatal(err)
					}
					p = p[k:]
				}
				if err := zw.Close(); err != nil {
					t.Fatal(err)
				}
				want := max(1, (len(tt.in)+chunk-1)/chunk)
				if got := bytes.Count(out.Bytes(), streamStarts[f.Name]); got < want {
					t.Errorf("%d streams, want %d", got, want)
				}
				checkDecompress(t, f.Name, out.Bytes(), tt.in)
			})
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n--; f.n < 0 {
		return 0, io.ErrShortWrite
	}
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	zw := NewWriter(&failWriter{n: 1}, small(Bzip2, 1000), 2)
	data := bytes.Repeat([]byte("x"), 30*1000+1)
	_, werr := zw.Write(data)
	cerr := zw.Close()
	if werr == nil && cerr == nil {
		t.Fatal("no error from a failing underlying writer")
	}
	if !errors.Is(cerr, io.ErrShortWrite) {
		t.Errorf("Close: %v, want the writer's error", cerr)
	}
}

// go test -run x -bench . ./lib/multistream (the pkg_summary of the
// pkgindex benchmark compresses much like this text).
func BenchmarkCompress(b *testing.B) {
	in := text(8 << 20)
	for _, f := range []Format{Gzip, Bzip2, XZ} {
		b.Run(f.Name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := Compress(context.Background(), in, []Format{f}, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A batch fed piece by piece, held, then started, gives the same files
// as Compress over the whole input; an aborted one stops.
func TestBatch(t *testing.T) {
	in := text(400 << 10)
	formats := []Format{Gzip, small(Bzip2, 64<<10), small(XZ, 100<<10)}
	want, err := Compress(context.Background(), in, formats, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, startAt := range []int{0, 150 << 10, len(in)} {
		t.Run(fmt.Sprintf("start after %d bytes", startAt), func(t *testing.T) {
			b := NewBatch(context.Background(), formats, 2, 0)
			for off := 0; off < len(in); {
				if off >= startAt {
					b.Start()
				}
				k := min(len(in)-off, 777+off%5000)
				b.Append(in[off : off+k])
				off += k
			}
			if b.Len() != len(in) {
				t.Errorf("Len() = %d, want %d", b.Len(), len(in))
			}
			got := closeLike(t, b, formats, want)
			checkDecompress(t, "xz", got[2], in)
		})
	}
	t.Run("abort", func(t *testing.T) {
		b := NewBatch(context.Background(), formats, 2, 0)
		b.Start()
		b.Append(in)
		b.Abort() // returns once the workers are gone
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		b := NewBatch(ctx, formats, 2, 0)
		b.Append(in[:100])
		cancel()
		b.Append(in[100:])
		if _, err := b.Close(); !errors.Is(err, context.Canceled) {
			t.Errorf("Close after cancel: %v", err)
		}
	})
}

// Extend takes the caller's growing buffer without copying it.
func TestBatchExtend(t *testing.T) {
	in := text(300 << 10)
	formats := []Format{small(Bzip2, 64<<10), small(XZ, 100<<10)}
	want, err := Compress(context.Background(), in, formats, 2)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch(context.Background(), formats, 2, 0)
	b.Start()
	var buf []byte // grows by append: reallocated now and then
	for off := 0; off < len(in); off += 1000 {
		buf = append(buf, in[off:min(off+1000, len(in))]...)
		b.Extend(buf)
	}
	closeLike(t, b, formats, want)
}

// closeLike closes b and checks that its outputs equal want (Compress's).
func closeLike(t *testing.T, b *Batch, formats []Format, want [][]byte) [][]byte {
	t.Helper()
	got, err := b.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range formats {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: differs from Compress", formats[i].Name)
		}
	}
	return got
}

// A one-stream format with NewStream (gzip) is compressed piece by piece
// while the input arrives, and gives the same single stream as one
// Encode over the whole input.
func TestBatchStream(t *testing.T) {
	in := text(3*streamPiece + 12345)
	var want bytes.Buffer
	if err := Gzip.New().Encode(&want, in); err != nil {
		t.Fatal(err)
	}
	b := NewBatch(context.Background(), []Format{Gzip, small(XZ, 1<<20)}, 2, 0)
	b.Start()
	var buf []byte
	for off := 0; off < len(in); off += 100 << 10 {
		buf = append(buf, in[off:min(off+100<<10, len(in))]...)
		b.Extend(buf)
	}
	got, err := b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], want.Bytes()) {
		t.Error("gzip fed piece by piece differs from one Encode")
	}
	checkDecompress(t, "gz", got[0], in)
	checkDecompress(t, "xz", got[1], in)
}
