package merge

import (
	"bytes"
	stdbzip2 "compress/bzip2"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/pkgbulk/pkgbulk/lib/multistream"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

type format struct {
	object string
	ms     multistream.Format
}

// formats are the published forms of pkg_summary. Levels follow the tools
// pbulk runs: gzip -c (6), bzip2 -c (9), xz -c (6-like dictionary); bz2
// and xz are written as several streams (see the package comment).
var formats = map[string]format{
	"plain": {"All/pkg_summary", multistream.Format{Name: "plain", Cost: 0.1, New: func() multistream.Encoder { return plainEncoder{} }}},
	"gz":    {"All/pkg_summary.gz", multistream.Gzip},
	"bz2":   {"All/pkg_summary.bz2", multistream.Bzip2},
	"xz":    {"All/pkg_summary.xz", multistream.XZ},
	"zst":   {"All/pkg_summary.zst", multistream.Format{Name: "zst", Cost: 5, New: func() multistream.Encoder { return zstEncoder{} }}},
}

type plainEncoder struct{}

func (plainEncoder) Encode(dst *bytes.Buffer, src []byte) error {
	dst.Write(src)
	return nil
}

type zstEncoder struct{}

func (zstEncoder) Encode(dst *bytes.Buffer, src []byte) error {
	zw, err := zstd.NewWriter(dst, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if _, err := zw.Write(src); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// publisher compresses the summary while Merge still reads it and
// publishes it at the end.
//
// Unless forced, nothing is compressed before the summary is known to
// differ from the published one: Merge reads back the published summary
// (loadPrevious) while it reads fragments, and feed compares the summary
// as it grows with it; the first difference starts the compression. An
// unchanged summary costs no compression at all, a changed one is
// compressed during the rest of the reading.
type publisher struct {
	ctx   context.Context
	s     store.Store
	o     Options
	batch *multistream.Batch

	started  bool
	prev     *previous // the published summary; nil when forced
	compared int       // bytes of the summary found equal to prev.sum
	sha512   []byte    // the text of SHA512.bz2, once published (or found)
}

func newPublisher(ctx context.Context, s store.Store, o Options, prev *previous) *publisher {
	var fs []multistream.Format
	for _, name := range o.Formats {
		fs = append(fs, formats[name].ms)
	}
	p := &publisher{ctx: ctx, s: s, o: o, batch: multistream.NewBatch(ctx, fs, 0, 0)} // fed by Extend
	if o.Force {
		p.start()
	} else {
		p.prev = prev
	}
	return p
}

func (p *publisher) start() {
	p.started = true
	p.batch.Start()
	if p.prev != nil {
		p.prev.cancel() // the published summary is not needed any more (Merge waits for the reader)
	}
}

// feed takes the summary so far (it only grows) into the batch and
// compares it with the published one.
func (p *publisher) feed(sum []byte) {
	p.batch.Extend(sum)
	if p.started || !p.prev.ready() {
		return // compare later
	}
	old := p.prev.sum
	if old == nil || len(sum) > len(old) || !bytes.Equal(sum[p.compared:], old[p.compared:len(sum)]) {
		p.start()
		return
	}
	p.compared = len(sum)
}

// abort stops the compression if publish has not run: nothing uses the
// store once Merge returns.
func (p *publisher) abort() {
	if p.batch != nil {
		p.batch.Abort()
		p.batch = nil
	}
}

// publish finishes compressing the summary into every format, puts the
// files in order, then SHA512.bz2 (see the package comment for why this
// order).
func (p *publisher) publish(pkgs []*pkg, sum []byte, res *Result) error {
	ctx, s, o := p.ctx, p.s, p.o
	p.feed(sum)
	if !p.started {
		p.prev.wait()
		if p.prev.err != nil {
			return p.prev.err
		}
		if p.prev.sum != nil && bytes.Equal(p.prev.sum, sum) {
			p.batch.Abort()
			p.batch = nil
			res.Unchanged = true
			var err error
			p.sha512, err = publishSHA512(ctx, s, o, pkgs, nil, p.prev.sha512, res)
			return err
		}
	}
	outs, err := p.batch.Close()
	p.batch = nil
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("compress pkg_summary: %w", err)
	}
	for i, name := range o.Formats {
		obj := formats[name].object
		if err := s.Put(ctx, obj, bytes.NewReader(outs[i]), int64(len(outs[i]))); err != nil {
			return fmt.Errorf("publish %s: %w", obj, err)
		}
		res.Published = append(res.Published, obj)
	}
	var published []byte // the SHA512.bz2 text Merge has read, if any
	if p.prev != nil {
		published = p.prev.sha512
	}
	p.sha512, err = publishSHA512(ctx, s, o, pkgs, outs, published, res)
	return err
}

// publishSHA512 writes SHA512.bz2 for the packages and the pkg_summary
// files (outs, in Formats order; nil means read them back from the
// store), unless the store already holds exactly that text (published,
// when not nil, is the text already read back), and returns the text.
func publishSHA512(ctx context.Context, s store.Store, o Options, pkgs []*pkg, outs [][]byte, published []byte, res *Result) ([]byte, error) {
	if !o.SHA512 {
		return nil, nil
	}
	var lines [][2]string // path, digest line
	for i, name := range o.Formats {
		obj := formats[name].object
		var b []byte
		if outs != nil {
			b = outs[i]
		} else {
			var err error
			if b, err = getAll(ctx, s, obj, 1<<20); err != nil {
				return nil, err
			}
		}
		d := sha512.Sum512(b)
		lines = append(lines, [2]string{obj, digestLine(obj, hex.EncodeToString(d[:]))})
	}
	for _, p := range pkgs {
		if p.err == nil {
			lines = append(lines, [2]string{p.file, digestLine(p.file, p.digest)})
		}
	}
	// pbulk sorts the paths, then digests them in that order.
	slices.SortFunc(lines, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	var text strings.Builder
	for _, l := range lines {
		text.WriteString(l[1])
	}
	if !o.Force {
		old := published
		if old == nil {
			old, _ = getDecompressed(ctx, s, "SHA512.bz2")
		}
		if old != nil && string(old) == text.String() {
			return old, nil
		}
	}
	bz, err := multistream.Compress(ctx, []byte(text.String()), []multistream.Format{multistream.Bzip2}, 0)
	if err != nil {
		return nil, fmt.Errorf("compress SHA512.bz2: %w", err)
	}
	if err := s.Put(ctx, "SHA512.bz2", bytes.NewReader(bz[0]), int64(len(bz[0]))); err != nil {
		return nil, fmt.Errorf("publish SHA512.bz2: %w", err)
	}
	res.Published = append(res.Published, "SHA512.bz2")
	return []byte(text.String()), nil
}

// digestLine is what `digest SHA512 path` prints.
func digestLine(path, hexDigest string) string {
	return "SHA512 (" + path + ") = " + hexDigest + "\n"
}

// oldSummary returns the published summary when every format is present
// in the store, read from one of them (the cheapest to read); nil when a
// format is missing or unreadable.
func oldSummary(ctx context.Context, s store.Store, o Options) ([]byte, error) {
	for _, name := range o.Formats {
		if _, err := s.Stat(ctx, formats[name].object); err != nil {
			if store.IsNotExist(err) {
				return nil, nil
			}
			return nil, err
		}
	}
	pick := o.Formats[0]
	for _, cheap := range []string{"xz", "bz2", "zst", "gz", "plain"} {
		if slices.Contains(o.Formats, cheap) {
			pick = cheap
		}
	}
	old, err := getDecompressed(ctx, s, formats[pick].object)
	if err != nil {
		if store.IsNotExist(err) || errors.Is(err, errCorrupt) {
			return nil, nil
		}
		return nil, err
	}
	return old, nil
}

var errCorrupt = errors.New("corrupt compressed file")

// getDecompressed reads a published file and undoes its compression
// (chosen by suffix).
func getDecompressed(ctx context.Context, s store.Store, name string) ([]byte, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r io.Reader = rc
	switch path.Ext(name) {
	case ".gz":
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", name, errCorrupt, err)
		}
		r = zr
	case ".bz2":
		r = stdbzip2.NewReader(rc)
	case ".xz":
		zr, err := xz.NewReader(rc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", name, errCorrupt, err)
		}
		r = zr
	case ".zst":
		zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %w: %v", name, errCorrupt, err)
	}
	return b, nil
}
