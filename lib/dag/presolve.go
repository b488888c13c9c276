package dag

import (
	"bufio"
	"bytes"
	"io"

	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// AppendPresolve appends package i's record as pbulk-resolve writes it:
// the text as read, PKG_FAIL_REASON rewritten when a pattern was
// unresolved, and a DEPENDS line when HasDepends.
func (g *Graph) AppendPresolve(dst []byte, i int) []byte {
	r := &g.Recs[i]
	p := &g.Pkgs[i]
	if p.Predepends {
		return append(dst, r.Text...)
	}
	if len(p.Unresolved) > 0 && !p.Predepends {
		return appendReplacedFailReason(dst, r.Text, g.FailReason(i))
	}
	dst = append(dst, r.Text...)
	if len(p.Deps) > 0 {
		dst = append(dst, "DEPENDS="...)
		for j, d := range p.Deps {
			if j > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, g.Pkgs[d.Pkg].Name...)
		}
		dst = append(dst, '\n')
	}
	return dst
}

// appendReplacedFailReason copies text with its first PKG_FAIL_REASON line
// replaced. A record without one (pbulk-index always writes it) gets the
// line appended, so the reason is never lost.
func appendReplacedFailReason(dst, text []byte, reason string) []byte {
	key := []byte(scan.KeyPkgFailReason + "=")
	for start := 0; start < len(text); {
		end := bytes.IndexByte(text[start:], '\n') + start + 1
		if bytes.HasPrefix(text[start:end], key) {
			dst = append(dst, text[:start]...)
			dst = append(dst, key...)
			dst = append(dst, reason...)
			dst = append(dst, '\n')
			return append(dst, text[end:]...)
		}
		start = end
	}
	dst = append(dst, text...)
	dst = append(dst, key...)
	dst = append(dst, reason...)
	return append(dst, '\n')
}

// WritePresolve writes pbulk-resolve's output for the packages for which
// include returns true (all when include is nil), in input order.
func (g *Graph) WritePresolve(w io.Writer, include func(i int) bool) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var buf []byte
	for i := range g.Pkgs {
		if include != nil && !include(i) {
			continue
		}
		buf = g.AppendPresolve(buf[:0], i)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}
