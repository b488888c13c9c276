package dag

import (
	"bytes"
	"context"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// FuzzResolve feeds arbitrary scans through resolution, analysis and the
// presolve writer: no panic, no hang, and records that resolve completely
// keep their text as a prefix of their presolve record.
func FuzzResolve(f *testing.F) {
	f.Add([]byte(smallScan))
	f.Add([]byte(rec("aaaa-1", "x/a", "aaaa-[0-9]*:../../x/a {b,c}>=1:../../x/b"))) // self-loop, unresolved
	f.Add([]byte("PKGNAME=abcd-1\nPKG_LOCATION=x/y\nALL_DEPENDS=a:../../b\nDEPENDS=abcd-1 abcd-1\n"))
	f.Add([]byte("PKGNAME=../../evil-1\nPKG_LOCATION=../../etc\nALL_DEPENDS=\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := scan.Parse("fuzz", in)
		if err != nil {
			return
		}
		g, err := Resolve(context.Background(), recs, 2)
		if err != nil {
			return
		}
		a := g.Analyze(nil)
		var out bytes.Buffer
		if err := g.WritePresolve(&out, nil); err != nil {
			t.Fatal(err)
		}
		for i := range g.Pkgs {
			if a.Depth[i] < 1 || a.Depth[i] > len(g.Pkgs) {
				t.Fatalf("depth %d of %d packages", a.Depth[i], len(g.Pkgs))
			}
			if len(g.Pkgs[i].Unresolved) == 0 && !bytes.HasPrefix(g.AppendPresolve(nil, i), recs[i].Text) {
				t.Fatalf("presolve record of %s does not start with its scan text", g.Pkgs[i].Name)
			}
		}
		ParseLimited("fuzz", in)
	})
}
