package report

import (
	"bytes"
	"io"
	"runtime"

	"github.com/dsnet/compress/bzip2"
)

// bz2ChunkSize is the input of one bzip2 stream: nine 900 kB blocks.
const bz2ChunkSize = 9 * 900 * 1000

// bz2Writer compresses what is written to it as independent bzip2
// streams of bz2ChunkSize input bytes each, on up to GOMAXPROCS
// goroutines, and writes the streams in order. The result is a
// multi-stream file as pbzip2 writes it, which bzip2 -d, Go's
// compress/bzip2 and libbz2-based readers read as one. A full tree's
// report is 160 MB, where one bzip2 stream on one core is the slowest
// part of writing the reports.
type bz2Writer struct {
	w       io.Writer
	chunk   int // input bytes per stream
	buf     []byte
	sem     chan struct{}
	pending []chan bz2Result
	err     error
}

type bz2Result struct {
	data []byte
	err  error
}

func newBz2Writer(w io.Writer) *bz2Writer {
	return &bz2Writer{w: w, chunk: bz2ChunkSize, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

func (z *bz2Writer) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n := len(p)
	for len(p) > 0 {
		if z.buf == nil {
			z.buf = make([]byte, 0, z.chunk)
		}
		k := min(len(p), z.chunk-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == z.chunk {
			if err := z.flushChunk(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (z *bz2Writer) flushChunk() error {
	chunk := z.buf
	z.buf = nil
	ch := make(chan bz2Result, 1)
	z.pending = append(z.pending, ch)
	z.sem <- struct{}{}
	go func() {
		defer func() { <-z.sem }()
		ch <- compressBz2(chunk)
	}()
	// Write what is finished; bound the memory held by finished chunks
	// waiting for an earlier one.
	for len(z.pending) > 0 {
		if len(z.pending) > 2*cap(z.sem) {
			if err := z.writeFirst(<-z.pending[0]); err != nil {
				return err
			}
			continue
		}
		select {
		case r := <-z.pending[0]:
			if err := z.writeFirst(r); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

func (z *bz2Writer) writeFirst(r bz2Result) error {
	z.pending = z.pending[1:]
	if r.err != nil {
		z.err = r.err
		return r.err
	}
	if _, err := z.w.Write(r.data); err != nil {
		z.err = err
		return err
	}
	return nil
}

// Close compresses the rest and writes every stream; it does not close
// the underlying writer. An empty input gives one empty stream.
func (z *bz2Writer) Close() error {
	if z.err != nil {
		// Let running compressions finish before returning.
		for _, ch := range z.pending {
			<-ch
		}
		return z.err
	}
	if len(z.buf) > 0 || len(z.pending) == 0 {
		if z.buf == nil {
			z.buf = []byte{}
		}
		if err := z.flushChunk(); err != nil {
			return z.Close()
		}
	}
	for len(z.pending) > 0 {
		if err := z.writeFirst(<-z.pending[0]); err != nil {
			return z.Close()
		}
	}
	return nil
}

func compressBz2(p []byte) bz2Result {
	var out bytes.Buffer
	zw, err := bzip2.NewWriter(&out, &bzip2.WriterConfig{Level: bzip2.BestCompression})
	if err != nil {
		return bz2Result{err: err}
	}
	if _, err := zw.Write(p); err != nil {
		return bz2Result{err: err}
	}
	if err := zw.Close(); err != nil {
		return bz2Result{err: err}
	}
	return bz2Result{data: out.Bytes()}
}
