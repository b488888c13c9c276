package build

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// BenchmarkUpToDate measures the incremental-build path: a job whose
// package is already in the store (skew check with bmake, the store read
// of the package head, the +BUILD_VERSION digests, the dependency ages).
// In an incremental bulk build most jobs end here.
func BenchmarkUpToDate(b *testing.B) {
	e := newEnv(b)
	bl := e.builder(nil)
	for _, rec := range []string{helloJob, greeterJob} {
		if res := e.run(bl, rec); res.Status != job.StatusDone {
			b.Fatalf("%s: %s", res.PkgName, res.Message)
		}
	}
	j, _ := ParseJob("bench", strings.NewReader(greeterJob))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := bl.Run(context.Background(), j)
		if err != nil || res.Status != job.StatusUpToDate {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkInstallDeinstall measures the built-in installer on the fixture
// package hello (3 files): the depends phase and the install test use it.
func BenchmarkInstallDeinstall(b *testing.B) {
	e := newEnv(b)
	if res := e.run(e.builder(nil), helloJob); res.Status != job.StatusDone {
		b.Fatal(res.Message)
	}
	pkg := filepath.Join(e.storeDir, "All", "hello-1.0.tgz")
	in, _, _ := newTestInstaller(b)
	in.script = nil
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := in.install(ctx, pkg); err != nil {
			b.Fatal(err)
		}
		if err := in.deinstall(ctx, "hello-1.0"); err != nil {
			b.Fatal(err)
		}
	}
}
