// Package pkgtest builds binary packages for tests and benchmarks of the
// packages that read them (pkgfile, summary, pkgindex): real tar archives
// with pkg_create's member order, compressed as asked, from metadata files
// such as the real ones in ../shared/data/pkg_summary.
package pkgtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
)

// Member is one tar member.
type Member struct {
	Name string
	Data []byte
	Mode int64
}

// createOrder is the metadata order pkg_create writes (spec §2).
var createOrder = []string{
	"+CONTENTS", "+COMMENT", "+DESC", "+INSTALL", "+DEINSTALL", "+DISPLAY",
	"+BUILD_VERSION", "+BUILD_INFO", "+SIZE_PKG", "+SIZE_ALL", "+PRESERVE",
}

// MetaMembers returns the metadata files in pkg_create's order; files it
// does not know come last, sorted.
func MetaMembers(files map[string][]byte) []Member {
	var ms []Member
	seen := map[string]bool{}
	for _, n := range createOrder {
		if d, ok := files[n]; ok {
			mode := int64(0o444)
			switch n {
			case "+CONTENTS":
				mode = 0o644
			case "+INSTALL", "+DEINSTALL":
				mode = 0o555
			}
			ms = append(ms, Member{Name: n, Data: d, Mode: mode})
			seen[n] = true
		}
	}
	var rest []string
	for n := range files {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		ms = append(ms, Member{Name: n, Data: files[n], Mode: 0o444})
	}
	return ms
}

// Build writes a tar archive of members, compressed with c, to w.
func Build(w io.Writer, c pkgfile.Compression, members []Member) error {
	cw, closeFn, err := compressor(w, c)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	mt := time.Date(2022, 4, 21, 9, 17, 9, 0, time.UTC)
	for _, m := range members {
		h := &tar.Header{
			Typeflag: tar.TypeReg, Name: m.Name, Size: int64(len(m.Data)), Mode: m.Mode,
			Uname: "root", Gname: "wheel", ModTime: mt, Format: tar.FormatUSTAR,
		}
		if len(m.Name) > 100 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(m.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return closeFn()
}

func compressor(w io.Writer, c pkgfile.Compression) (io.Writer, func() error, error) {
	switch c {
	case pkgfile.None, "":
		return w, func() error { return nil }, nil
	case pkgfile.Gzip:
		zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		return zw, zw.Close, nil
	case pkgfile.Bzip2:
		zw, err := bzip2.NewWriter(w, &bzip2.WriterConfig{Level: 6})
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	case pkgfile.XZ:
		zw, err := xz.NewWriter(w)
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	case pkgfile.Zstd:
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %q", c)
}

// Package returns a package (compressed with c) of the metadata files plus a
// payload of files listed in +CONTENTS (up to payloadSize bytes in total,
// deterministic from seed and about as compressible as typical binaries).
func Package(files map[string][]byte, c pkgfile.Compression, payloadSize int, seed uint64) ([]byte, error) {
	ms := MetaMembers(files)
	ms = append(ms, PayloadMembers(files["+CONTENTS"], payloadSize, seed)...)
	var b bytes.Buffer
	if err := Build(&b, c, ms); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// PayloadMembers returns payload members for the file lines of a packing
// list (at most 64 of them), sharing size bytes between them.
func PayloadMembers(contents []byte, size int, seed uint64) []Member {
	var names []string
	es, _ := pkgfile.ParseContents(contents)
	for _, e := range es {
		if e.Cmd == "" && !strings.HasPrefix(e.Arg, "+") {
			names = append(names, path.Clean(e.Arg))
		}
		if len(names) == 64 {
			break
		}
	}
	if len(names) == 0 {
		names = []string{"share/doc/payload"}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	per := size / len(names)
	ms := make([]Member, 0, len(names))
	for i, n := range names {
		sz := per
		if i == len(names)-1 {
			sz = size - per*(len(names)-1)
		}
		ms = append(ms, Member{Name: n, Data: Payload(rng, sz), Mode: 0o644})
	}
	return ms
}

// Payload returns n bytes that compress with gzip to roughly 40% of their
// size, like typical executables and libraries: runs of a small alphabet
// of machine-code-like words mixed with random bytes.
func Payload(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	words := make([][]byte, 256)
	for i := range words {
		w := make([]byte, 4+rng.IntN(12))
		for j := range w {
			w[j] = byte(rng.IntN(256))
		}
		words[i] = w
	}
	for len(b) < n {
		if rng.IntN(3) == 0 {
			for range 4 + rng.IntN(8) {
				b = append(b, byte(rng.IntN(256)))
			}
		} else {
			b = append(b, words[rng.IntN(len(words))]...)
		}
	}
	return b[:n]
}

// LoadMetadataTarball reads a tarball of <pkgname>/+FILE members (such as
// fluxer-2022-metadata.tar.gz) into pkgname -> file name -> contents.
func LoadMetadataTarball(r io.Reader) (map[string]map[string][]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	out := map[string]map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		dir, file := path.Split(strings.TrimPrefix(h.Name, "./"))
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" || !strings.HasPrefix(file, "+") {
			continue
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if out[dir] == nil {
			out[dir] = map[string][]byte{}
		}
		out[dir][file] = d
	}
}
