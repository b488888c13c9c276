// Package multistream compresses data as a series of independent
// streams, each compressed on its own goroutine, in gzip, bzip2 or xz.
//
// All three formats allow a file to be several complete streams one after
// the other, which a reader decompresses into the concatenation of their
// contents: gzip members (RFC 1952 §2.2), bzip2 streams (as pbzip2 writes
// them) and xz streams (the .xz format, §2). gzip -d, bzip2 -d, xz -d,
// libarchive (bsdcat, and so pkgin), Go's compress/gzip and
// compress/bzip2, klauspost/compress/gzip and ulikunitz/xz all read such
// files.
//
// Splitting costs little: bzip2 blocks are independent anyway, so a
// stream costs its 14 bytes of header and trailer and a last block that
// is not full (2% on a 35 MB pkg_summary cut every 1.8 MB); an xz stream
// of 4 MiB loses the matches across its start but was smaller on a
// pkg_summary than one stream with an 8 MB dictionary. In exchange the
// work spreads over every core: compressing a 35 MB pkg_summary to bzip2
// takes about 4 s on one core, and pkgindex publishes it as gz, bz2 and
// xz at once.
//
// Batch compresses input that arrives piece by piece (pkgindex's summary
// while it still reads fragments) into several formats with one pool of
// goroutines shared by all of their streams, the costliest first, so
// that every core stays busy to the end; Compress does the same for one
// buffer. Writer compresses a stream of writes into one format, for
// output too large to hold (lib/report's report.bz2).
package multistream

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

// Format is a compression and how its input is cut into streams.
type Format struct {
	Name string
	// Chunk is the input of one stream; 0 means the whole input is one
	// stream.
	Chunk int
	// Cost is the rough CPU time per input byte, in nanoseconds, which
	// orders the work (largest first).
	Cost float64
	// New returns an encoder; each goroutine uses its own.
	New func() Encoder
	// NewStream, for a format of one stream (Chunk 0), returns a writer
	// of that stream onto w, which a Batch feeds piece by piece as its
	// input arrives; nil means the stream is compressed at Close.
	NewStream func(w io.Writer) (io.WriteCloser, error)
}

// Encoder appends one complete stream holding src to dst. It may be
// reused for the next stream, on the same goroutine.
type Encoder interface {
	Encode(dst *bytes.Buffer, src []byte) error
}

// bz2Block is the size of a bzip2 -9 block. It bounds the block after
// bzip2's first run-length encoding, so that this much input fills a
// block or a little less.
const bz2Block = 900 * 1000

// Gzip is `gzip -6`, one stream: it is cheap enough (under a tenth of
// bzip2's time) not to need splitting, and a Batch compresses it piece
// by piece while the input arrives.
var Gzip = Format{Name: "gz", Cost: 8, New: func() Encoder { return &gzipEncoder{} },
	NewStream: func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, 6) }}

// Bzip2 is `bzip2 -9` (dsnet/compress), in streams of two blocks: small
// jobs keep the cores evenly loaded.
var Bzip2 = Format{Name: "bz2", Chunk: 2 * bz2Block, Cost: 110, New: func() Encoder { return &bzip2Encoder{} }}

// XZ is ulikunitz/xz with an 8 MB dictionary (like xz -6) in streams of
// 4 MiB.
var XZ = Format{Name: "xz", Chunk: 4 << 20, Cost: 35, New: func() Encoder { return xzEncoder{} }}

type gzipEncoder struct{ zw *gzip.Writer }

func (e *gzipEncoder) Encode(dst *bytes.Buffer, src []byte) error {
	if e.zw == nil {
		zw, err := gzip.NewWriterLevel(dst, 6)
		if err != nil {
			return err
		}
		e.zw = zw
	} else {
		e.zw.Reset(dst)
	}
	return writeClose(e.zw, src)
}

type bzip2Encoder struct{ zw *bzip2.Writer }

func (e *bzip2Encoder) Encode(dst *bytes.Buffer, src []byte) error {
	if e.zw == nil {
		zw, err := bzip2.NewWriter(dst, &bzip2.WriterConfig{Level: bzip2.BestCompression})
		if err != nil {
			return err
		}
		e.zw = zw
	} else if err := e.zw.Reset(dst); err != nil { // keeps the block buffers
		return err
	}
	return writeClose(e.zw, src)
}

type xzEncoder struct{}

func (xzEncoder) Encode(dst *bytes.Buffer, src []byte) error {
	// A dictionary larger than the stream's input buys nothing.
	zw, err := xz.WriterConfig{DictCap: min(8<<20, max(len(src), 4096))}.NewWriter(dst)
	if err != nil {
		return err
	}
	return writeClose(zw, src)
}

func writeClose(wc io.WriteCloser, b []byte) error {
	if _, err := wc.Write(b); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}

// job is one stream to compress.
type job struct {
	format int // index into the formats
	seq    int // stream number within the format
	src    []byte
	cost   float64
	stream bool // a piece of a Format.NewStream stream
	last   bool // the stream's last piece: close it
}

// streamPiece is the least input a piece of a NewStream stream is given
// to a worker with (but the last).
const streamPiece = 1 << 20

// stream is the state of a format compressed by Format.NewStream. Its
// pieces run one after the other: busy says one is queued or running.
type stream struct {
	w      io.WriteCloser
	out    bytes.Buffer
	busy   bool
	closed bool // the last piece is queued
}

// jobHeap is a max-heap of jobs by cost.
type jobHeap []job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].cost > h[j].cost }
func (h jobHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}

// Compress returns src compressed in each of formats (out[i] in
// formats[i]), every format split into streams, all streams compressed
// by `workers` goroutines (0: GOMAXPROCS) taking the costliest first.
func Compress(ctx context.Context, src []byte, formats []Format, workers int) ([][]byte, error) {
	b := NewBatch(ctx, formats, workers, len(src))
	b.Append(src)
	return b.Close()
}

// Batch compresses input that arrives piece by piece into several
// formats: a stream is compressed as soon as its input is complete (and
// the batch started), on a pool of goroutines shared by all formats,
// costliest stream first. pkgindex feeds it the summary while it still
// reads fragments, so that compressing overlaps reading.
//
// Append, Start, Close and Abort are called from one goroutine at a time;
// every batch ends with Close or Abort, which stop its goroutines.
type Batch struct {
	ctx     context.Context
	formats []Format
	stop    func() bool // unregisters the context watch

	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	queued  []int     // per format: input bytes given to streams so far
	streams []*stream // per format: non-nil for the NewStream ones
	outs    [][][]byte
	pending jobHeap
	started bool
	closed  bool // no more input: the workers exit once the heap is empty
	err     error
	wg      sync.WaitGroup
}

// errAborted stops the workers of an aborted batch.
var errAborted = errors.New("batch aborted")

// NewBatch returns a batch of the formats with `workers` goroutines (0:
// GOMAXPROCS); sizeHint is the expected input size. It holds its streams
// until Start or Close.
func NewBatch(ctx context.Context, formats []Format, workers, sizeHint int) *Batch {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	b := &Batch{
		ctx:     ctx,
		formats: formats,
		buf:     make([]byte, 0, max(sizeHint, 0)),
		queued:  make([]int, len(formats)),
		streams: make([]*stream, len(formats)),
		outs:    make([][][]byte, len(formats)),
	}
	for i, f := range formats {
		if f.Chunk <= 0 && f.NewStream != nil {
			b.streams[i] = &stream{}
			b.outs[i] = [][]byte{nil}
		}
	}
	b.cond.L = &b.mu
	b.stop = context.AfterFunc(ctx, func() { b.fail(ctx.Err()) })
	for range workers {
		b.wg.Go(b.work)
	}
	return b
}

func (b *Batch) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Broadcast()
}

// Append adds p to the input (p is copied).
func (b *Batch) Append(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if b.started {
		b.queue(false)
	}
}

// Extend sets the input to in, which begins with the input so far, without
// copying: the caller keeps appending to its buffer and passes the longer
// slice, and never changes a byte it has passed (append to a slice never
// does: it writes past the end, or copies to a new array).
func (b *Batch) Extend(in []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = in
	if b.started {
		b.queue(false)
	}
}

// Start lets the batch compress what it holds and what comes next.
func (b *Batch) Start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.started = true
	b.queue(false)
}

// Len returns the number of input bytes appended so far.
func (b *Batch) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buf)
}

// queue turns the complete chunks of input (all of it when final) into
// jobs. An empty input is one empty stream. b.mu is held.
func (b *Batch) queue(final bool) {
	for i, f := range b.formats {
		if st := b.streams[i]; st != nil {
			lo := b.queued[i]
			rest := len(b.buf) - lo
			if st.busy || st.closed || (!final && rest < streamPiece) {
				continue
			}
			// A sequence of pieces is the critical path: it goes first.
			heap.Push(&b.pending, job{format: i, src: b.buf[lo : lo+rest : lo+rest], cost: math.MaxFloat64, stream: true, last: final})
			b.queued[i] += rest
			st.busy, st.closed = true, final
			continue
		}
		for {
			rest := len(b.buf) - b.queued[i]
			k := f.Chunk
			switch {
			case final && (rest > 0 || len(b.outs[i]) == 0):
				k = rest
				if f.Chunk > 0 {
					k = min(f.Chunk, rest)
				}
			case f.Chunk <= 0 || rest < f.Chunk:
				k = -1
			}
			if k < 0 {
				break
			}
			lo := b.queued[i]
			// A full slice expression: later appends never touch it.
			src := b.buf[lo : lo+k : lo+k]
			heap.Push(&b.pending, job{format: i, seq: len(b.outs[i]), src: src, cost: f.Cost * float64(k)})
			b.outs[i] = append(b.outs[i], nil)
			b.queued[i] += k
			if k == 0 {
				break
			}
		}
	}
	b.cond.Broadcast()
}

func (b *Batch) work() {
	encoders := make([]Encoder, len(b.formats))
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for b.err == nil && len(b.pending) == 0 && !b.closed {
			b.cond.Wait()
		}
		if b.err != nil || len(b.pending) == 0 {
			return
		}
		if err := b.ctx.Err(); err != nil {
			b.err = err
			b.cond.Broadcast()
			return
		}
		j := heap.Pop(&b.pending).(job)
		b.mu.Unlock()
		if j.stream {
			err := b.writeStream(j)
			b.mu.Lock()
			if err != nil {
				b.failLocked(j, err)
				return
			}
			b.streams[j.format].busy = false
			b.queue(b.closed) // the next piece, if there is one
			continue
		}
		if encoders[j.format] == nil {
			encoders[j.format] = b.formats[j.format].New()
		}
		var out bytes.Buffer
		out.Grow(len(j.src)/8 + 64)
		err := encoders[j.format].Encode(&out, j.src)
		b.mu.Lock()
		if err != nil {
			b.failLocked(j, err)
			return
		}
		b.outs[j.format][j.seq] = out.Bytes()
	}
}

// failLocked records the first error (of job j's format) and wakes the
// waiters. b.mu is held.
func (b *Batch) failLocked(j job, err error) {
	if b.err == nil {
		b.err = fmt.Errorf("%s: %w", b.formats[j.format].Name, err)
	}
	b.cond.Broadcast()
}

// writeStream writes a piece of a NewStream format; only one piece of a
// stream runs at a time, so its state needs no lock.
func (b *Batch) writeStream(j job) error {
	st := b.streams[j.format]
	if st.w == nil {
		w, err := b.formats[j.format].NewStream(&st.out)
		if err != nil {
			return err
		}
		st.w = w
	}
	if _, err := st.w.Write(j.src); err != nil {
		return err
	}
	if !j.last {
		return nil
	}
	if err := st.w.Close(); err != nil {
		return err
	}
	b.mu.Lock()
	b.outs[j.format][0] = st.out.Bytes()
	b.mu.Unlock()
	return nil
}

// Close compresses the rest of the input and returns the outputs, one
// per format (a stream per chunk, concatenated).
func (b *Batch) Close() ([][]byte, error) {
	b.mu.Lock()
	b.started = true
	b.closed = true
	if b.err == nil {
		b.queue(true)
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	b.wg.Wait()
	b.stop()
	if b.err != nil {
		return nil, b.err
	}
	res := make([][]byte, len(b.formats))
	for i, parts := range b.outs {
		res[i] = bytes.Join(parts, nil)
	}
	return res, nil
}

// Abort drops the batch: running streams finish, queued ones are not
// started.
func (b *Batch) Abort() {
	b.fail(errAborted)
	b.wg.Wait()
	b.stop()
}

// Writer compresses what is written to it into one format, a stream per
// Chunk bytes of input, on up to `workers` goroutines, and writes the
// streams in order to the underlying writer. It holds at most about
// 3×workers chunks of memory.
type Writer struct {
	w       io.Writer
	f       Format
	buf     []byte
	sem     chan struct{}
	pending []chan result
	pool    sync.Pool // of Encoder
	streams int       // started
	err     error
}

type result struct {
	data []byte
	err  error
}

// NewWriter returns a Writer of format f onto w; workers 0 means
// GOMAXPROCS. A Format with no Chunk is cut at 8 MiB.
func NewWriter(w io.Writer, f Format, workers int) *Writer {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if f.Chunk <= 0 {
		f.Chunk = 8 << 20
	}
	z := &Writer{w: w, f: f, sem: make(chan struct{}, workers)}
	z.pool.New = func() any { return f.New() }
	return z
}

func (z *Writer) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n := len(p)
	for len(p) > 0 {
		if z.buf == nil {
			z.buf = make([]byte, 0, z.f.Chunk)
		}
		k := min(len(p), z.f.Chunk-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == z.f.Chunk {
			if err := z.flushChunk(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (z *Writer) flushChunk() error {
	chunk := z.buf
	z.buf = nil
	z.streams++
	ch := make(chan result, 1)
	z.pending = append(z.pending, ch)
	z.sem <- struct{}{}
	go func() {
		defer func() { <-z.sem }()
		enc := z.pool.Get().(Encoder)
		var b bytes.Buffer
		b.Grow(len(chunk)/8 + 64)
		err := enc.Encode(&b, chunk)
		z.pool.Put(enc)
		ch <- result{b.Bytes(), err}
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

func (z *Writer) writeFirst(r result) error {
	z.pending = z.pending[1:]
	if r.err != nil {
		z.err = fmt.Errorf("%s: %w", z.f.Name, r.err)
		return z.err
	}
	if _, err := z.w.Write(r.data); err != nil {
		z.err = err
		return err
	}
	return nil
}

// Close compresses the rest and writes every stream; it does not close
// the underlying writer. An empty input gives one empty stream.
func (z *Writer) Close() error {
	if z.err != nil {
		// Let running compressions finish before returning.
		for _, ch := range z.pending {
			<-ch
		}
		z.pending = nil
		return z.err
	}
	if len(z.buf) > 0 || z.streams == 0 {
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
