package merge

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sync/errgroup"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

type format struct {
	object   string
	compress func(w io.Writer, b []byte) error
}

// formats are the published forms of pkg_summary. Levels follow the tools
// pbulk runs: gzip -c (6), bzip2 -c (9), xz -c (6).
var formats = map[string]format{
	"plain": {"All/pkg_summary", func(w io.Writer, b []byte) error { _, err := w.Write(b); return err }},
	"gz": {"All/pkg_summary.gz", func(w io.Writer, b []byte) error {
		zw, err := gzip.NewWriterLevel(w, 6)
		if err != nil {
			return err
		}
		return writeClose(zw, b)
	}},
	"bz2": {"All/pkg_summary.bz2", func(w io.Writer, b []byte) error { return Bzip2(w, b) }},
	"xz": {"All/pkg_summary.xz", func(w io.Writer, b []byte) error {
		zw, err := xz.WriterConfig{DictCap: 8 << 20}.NewWriter(w)
		if err != nil {
			return err
		}
		return writeClose(zw, b)
	}},
	"zst": {"All/pkg_summary.zst", func(w io.Writer, b []byte) error {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		return writeClose(zw, b)
	}},
}

// Bzip2 writes b to w compressed as `bzip2 -9` would.
func Bzip2(w io.Writer, b []byte) error {
	zw, err := bzip2.NewWriter(w, &bzip2.WriterConfig{Level: 9})
	if err != nil {
		return err
	}
	return writeClose(zw, b)
}

func writeClose(wc io.WriteCloser, b []byte) error {
	if _, err := wc.Write(b); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}

// publish compresses the summary into every format (in parallel), puts
// them in order, then SHA512.bz2 (see the package comment for why this
// order).
func publish(ctx context.Context, s store.Store, o Options, pkgs []*pkg, sum []byte, res *Result) error {
	outs := make([][]byte, len(o.Formats))
	var g errgroup.Group
	for i, name := range o.Formats {
		g.Go(func() error {
			var b bytes.Buffer
			b.Grow(len(sum) / 4)
			if err := formats[name].compress(&b, sum); err != nil {
				return fmt.Errorf("compress pkg_summary (%s): %w", name, err)
			}
			outs[i] = b.Bytes()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var lines [][2]string // path, digest line
	for i, name := range o.Formats {
		obj := formats[name].object
		if err := s.Put(ctx, obj, bytes.NewReader(outs[i]), int64(len(outs[i]))); err != nil {
			return fmt.Errorf("publish %s: %w", obj, err)
		}
		res.Published = append(res.Published, obj)
		d := sha512.Sum512(outs[i])
		lines = append(lines, [2]string{obj, digestLine(obj, hex.EncodeToString(d[:]))})
	}
	if !o.SHA512 {
		return nil
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
	var b bytes.Buffer
	if err := Bzip2(&b, []byte(text.String())); err != nil {
		return fmt.Errorf("compress SHA512.bz2: %w", err)
	}
	if err := s.Put(ctx, "SHA512.bz2", bytes.NewReader(b.Bytes()), int64(b.Len())); err != nil {
		return fmt.Errorf("publish SHA512.bz2: %w", err)
	}
	res.Published = append(res.Published, "SHA512.bz2")
	return nil
}

// digestLine is what `digest SHA512 path` prints.
func digestLine(path, hexDigest string) string {
	return "SHA512 (" + path + ") = " + hexDigest + "\n"
}
