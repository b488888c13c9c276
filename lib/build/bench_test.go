package build

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
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

// BenchmarkJobSandbox is a job's sandbox cost without any build: the job
// directory and a kit overlay set up, the 12 sandboxed commands of a
// typical job (show-vars, pre-clean, depends, checksum, configure, build,
// install, package, install test, deinstall, clean, plus one) each running
// /bin/true, and the job directory removed. pbulk has no equivalent: its
// client-clean unpacks the kit (tar -xzf) once per job instead.
func BenchmarkJobSandbox(b *testing.B) {
	e := newEnv(b)
	kit := filepath.Join(b.TempDir(), "kit.tgz")
	writePkg(b, kit, []member{{name: "usr/pkg/etc/mk.conf", body: "# kit\n"}, {name: "usr/pkg/pkgdb/", typ: '5'}})
	bl := e.builder(func(s *job.Settings) { s.BootstrapKit = kit })
	if err := bl.Check(); err != nil {
		b.Fatal(err)
	}
	r := &run{Builder: bl, job: &Job{PkgName: "bench-1.0"}}
	k, err := openKit(kit, bl.Settings.WorkRoot)
	if err != nil {
		b.Fatal(err)
	}
	r.kit = k
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		root, err := os.MkdirTemp(bl.Settings.WorkRoot, "bench.")
		if err != nil {
			b.Fatal(err)
		}
		if r.box, err = r.newBox(root); err != nil {
			b.Fatal(err)
		}
		for c := 0; c < 12; c++ {
			res, err := r.inBox(ctx, sandbox.Cmd{Path: "/bin/true"}, false, proc.Cmd{Output: io.Discard})
			if err != nil || !res.OK() {
				b.Fatal(err, res)
			}
		}
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
	}
}
