package dag

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/scan"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestPresolveIllumos resolves the real 29,022-record scan and compares the
// output with pbulk-resolve's, byte for byte.
func TestPresolveIllumos(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the full-tree resolve in -short mode")
	}
	scanPath := testenv.SharedData(t, "scan/pscan-illumos-2026.txt.zst")
	wantPath := testenv.SharedData(t, "scan/presolve-illumos-2026.txt.zst")
	recs, err := scan.ReadFile(scanPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Resolve(context.Background(), recs, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := g.WritePresolve(&got, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := scan.Decompress(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		gl, wl := bytes.Split(got.Bytes(), []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if !bytes.Equal(gl[i], wl[i]) {
				t.Fatalf("presolve differs at line %d:\n got %.300s\nwant %.300s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("presolve differs in length: got %d lines, want %d", len(gl), len(wl))
	}
	if n := g.NumUnresolved(); n < 6 {
		t.Errorf("%d unresolved patterns, want at least the 6 records pbulk rewrote", n)
	}
}

func BenchmarkResolveIllumos(b *testing.B) {
	recs, err := scan.ReadFile(testenv.SharedData(b, "scan/pscan-illumos-2026.txt.zst"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(context.Background(), recs, 0); err != nil {
			b.Fatal(err)
		}
	}
}
