package dag

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/scan"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// BenchmarkBuildIllumos measures the whole of "pkgdag build" on the real
// scan after decompression: parse, resolve, analyse, write the database.
func BenchmarkBuildIllumos(b *testing.B) {
	recs, err := scan.ReadFile(testenv.SharedData(b, "scan/pscan-illumos-2026.txt.zst"))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for b.Loop() {
		g, err := Resolve(context.Background(), recs, 0)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, _, err := WriteDB(context.Background(), filepath.Join(dir, "bulk.db"), g, nil, DBInfo{Now: time.Now()}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "writedb-ms")
	}
}

// BenchmarkAnalyzeIllumos measures the analysis (depths, weights, states,
// cycles) of the real scan's graph alone.
func BenchmarkAnalyzeIllumos(b *testing.B) {
	recs, err := scan.ReadFile(testenv.SharedData(b, "scan/pscan-illumos-2026.txt.zst"))
	if err != nil {
		b.Fatal(err)
	}
	g, err := Resolve(context.Background(), recs, 0)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		g.Analyze(nil)
	}
}
