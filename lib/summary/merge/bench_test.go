package merge

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// benchStore returns a file store of n fragments with their (tiny)
// package files: $PKGINDEX_BENCH_STORE when set (for example the
// /tmp/idxbench/frag tree that bench/index/run.sh generates from the real
// metadata), else a synthetic one (fragmentStore).
func benchStore(b *testing.B, n int) string {
	if dir := os.Getenv("PKGINDEX_BENCH_STORE"); dir != "" {
		return dir
	}
	return fragmentStore(b, n)
}

// fragmentStore writes n synthetic fragments (about 1.6 kB each) and
// their package files to a new directory.
func fragmentStore(b testing.TB, n int) string {
	dir := b.TempDir()
	for _, sub := range []string{"All", "index"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	desc := strings.Repeat("A line of the package description. ", 20)
	for i := range n {
		name := fmt.Sprintf("pkg%05d-%d.%d", i, i%7, i%13)
		size := 1000 + i%500
		pkgData := make([]byte, size)
		if err := os.WriteFile(filepath.Join(dir, "All", name+".tgz"), pkgData, 0o644); err != nil {
			b.Fatal(err)
		}
		frag := fmt.Sprintf("PKGNAME=%s\nCOMMENT=Package number %d\nSIZE_PKG=%d\nBUILD_DATE=2026-11-22 04:00:00 +0000\n"+
			"CATEGORIES=devel\nHOMEPAGE=https://example.org/%d\nLICENSE=modified-bsd\nMACHINE_ARCH=x86_64\n"+
			"OPSYS=NetBSD\nOS_VERSION=10.0\nPKGPATH=devel/pkg%d\nPKGTOOLS_VERSION=20250417\n"+
			"DESCRIPTION=%s\nDESCRIPTION=%s\nFILE_NAME=%s.tgz\nFILE_SIZE=%d\n\n",
			name, i, i*1000, i, i, desc, desc, name, size)
		if err := os.WriteFile(filepath.Join(dir, "index", name+".pkginfo"), []byte(frag), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkMergeRead is the read phase of a merge of 30,000 fragments
// (listing, reading and checking them), without compression:
//
//	go test -run x -bench MergeRead -cpuprofile cpu.out ./lib/summary/merge
func BenchmarkMergeRead(b *testing.B) {
	s, err := filestore.New(benchStore(b, 30000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := Merge(context.Background(), s, Options{Output: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.SummaryBytes), "summary-bytes")
	}
}

// BenchmarkMergePublish is a whole forced merge: read, compress to gz,
// bz2 and xz, publish.
func BenchmarkMergePublish(b *testing.B) {
	s, err := filestore.New(benchStore(b, 30000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := Merge(context.Background(), s, Options{Force: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.ReadSeconds, "read-s")
	}
}

// BenchmarkMergeS3 is a forced merge of 30,000 fragments from an S3 store
// (a real versitygw on loopback, whose posix back end serves the files of
// a directory tree, so the fragments are written there directly): the
// read phase waits on 30,000 GETs, and compression overlaps it. The
// "reuse" case is the merge after one that listed the same store: the
// entries come from the published summary, only 30 new packages'
// fragments are fetched.
//
//	go test -run x -bench MergeS3 -benchtime 3x ./lib/summary/merge
func BenchmarkMergeS3(b *testing.B) {
	srv := storetest.StartS3(b)
	src := benchStore(b, 30000)
	repo := filepath.Join(srv.Dir, srv.Bucket, "repo")
	if err := os.CopyFS(repo, os.DirFS(src)); err != nil {
		b.Fatal(err)
	}
	// Written an hour ago, before every listing the benchmark makes.
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Chtimes(path, old, old)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	s, err := storeopen.Open(context.Background(), srv.URL("repo"), storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: srv.Endpoint, S3Region: srv.Region}, S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, formats := range [][]string{{"gz"}, nil} {
		name := "default"
		if formats != nil {
			name = strings.Join(formats, ",")
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				res, err := Merge(context.Background(), s, Options{Force: true, NoReuse: true, Formats: formats})
				if err != nil {
					b.Fatal(err)
				}
				if res.Packages != 30000 {
					b.Fatalf("%d packages merged", res.Packages)
				}
				b.ReportMetric(res.ReadSeconds, "read-s")
			}
		})
	}
	b.Run("reuse", func(b *testing.B) {
		// The first merge publishes; the second lists what it
		// published, so its state shows every package as older.
		for range 2 {
			if _, err := Merge(context.Background(), s, Options{}); err != nil {
				b.Fatal(err)
			}
		}
		// 30 packages built since: their fragments are newer than that.
		frags, err := filepath.Glob(filepath.Join(repo, "index", "*.pkginfo"))
		if err != nil || len(frags) < 30000 {
			b.Fatalf("%d fragments (%v)", len(frags), err)
		}
		for _, f := range frags[:30] {
			if err := os.Chtimes(f, time.Now(), time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			res, err := Merge(context.Background(), s, Options{})
			if err != nil {
				b.Fatal(err)
			}
			if res.Packages != 30000 || res.Reused < 29970 {
				b.Fatalf("%d packages merged, %d reused", res.Packages, res.Reused)
			}
			b.ReportMetric(res.ReadSeconds, "read-s")
		}
	})
}
