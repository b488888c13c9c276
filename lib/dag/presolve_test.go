package dag

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

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

	// The database of the same scan: records in id order are the presolve
	// file, edges are the DEPENDS words, depths are pbulk's.
	path := filepath.Join(t.TempDir(), "bulk.db")
	_, counts, err := WriteDB(context.Background(), path, g, nil, DBInfo{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	d := openDB(t, path)
	h := sha256.New()
	rows, err := d.Query("SELECT record FROM presolve ORDER BY pkg_id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r []byte
		rows.Scan(&r)
		h.Write(r)
	}
	rows.Close()
	if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Error("records in the database differ from pbulk-resolve's output")
	}
	words := 0
	for _, line := range bytes.Split(want, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("DEPENDS=")); ok {
			words += len(bytes.Fields(v))
		}
	}
	var edges, rewritten int
	d.QueryRow("SELECT count(*) FROM depends").Scan(&edges)
	d.QueryRow(`SELECT count(*) FROM packages WHERE fail_reason LIKE '"could not resolve dependency %' AND depends IS NULL`).Scan(&rewritten)
	if edges != words || counts.Depends != words || rewritten != bytes.Count(want, []byte(`PKG_FAIL_REASON="could not resolve dependency "`)) {
		t.Errorf("%d edges (counted %d), %d DEPENDS words; %d rewritten fail reasons", edges, counts.Depends, words, rewritten)
	}
	// build-and-report.md §4: libnbcompat's PKG_DEPTH in the real report.
	var depth int
	d.QueryRow("SELECT depth FROM packages WHERE pkgname = 'libnbcompat-20251029'").Scan(&depth)
	if depth != 29016 {
		t.Errorf("depth of libnbcompat = %d, want 29016 as in pbulk's report", depth)
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
