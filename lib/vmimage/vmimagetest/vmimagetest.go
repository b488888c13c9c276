// Package vmimagetest gives tests a worker image (lib/vmimage) built from
// this checkout once and kept in the test cache, keyed by its manifest.
package vmimagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
)

// Require skips the test (fails it when "qemu" is required) unless qemu,
// a Debian cloud kernel and busybox-static are installed.
func Require(t testing.TB) {
	t.Helper()
	testenv.Program(t, "qemu-system-x86_64")
	if _, err := vmimage.NewestKernel(); err != nil {
		testenv.Skip(t, "qemu", err.Error())
	}
	if _, err := os.Stat("/usr/bin/busybox"); err != nil {
		testenv.Skip(t, "qemu", "busybox-static is not installed (scripts/setup.sh --test installs it)")
	}
}

// StaticPkgrun builds pkgrun from this checkout with CGO_ENABLED=0.
func StaticPkgrun(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pkgrun")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/pkgrun")
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a static pkgrun: %v\n%s", err, b)
	}
	return out
}

// Image returns the image of spec (Pkgrun defaults to StaticPkgrun's,
// Tree to examples/tree), building it when the cache has none with the
// same manifest; name tells cached images apart in the cache directory.
func Image(t testing.TB, name string, spec vmimage.Spec) vmimage.Image {
	t.Helper()
	Require(t)
	if spec.Pkgrun == "" {
		spec.Pkgrun = StaticPkgrun(t)
	}
	if spec.Tree == "" {
		spec.Tree = filepath.Join(testenv.RepoRoot(t), "examples", "tree")
	}
	p, err := vmimage.NewPlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(t.TempDir(), "manifest")
	f, err := os.Create(man)
	if err != nil {
		t.Fatal(err)
	}
	err = p.WriteManifest(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	initrd := testenv.Cached(t, man, name+".initrd", func(path string) error {
		w, err := os.Create(path)
		if err != nil {
			return err
		}
		err = p.WriteCPIO(w)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	})
	// Images no test used for a day go (each is ~100 MB); not sooner:
	// another checkout's tests may boot theirs now.
	now := time.Now()
	os.Chtimes(initrd, now, now)
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(initrd), "*-"+name+".initrd"))
	for _, f := range old {
		if fi, err := os.Stat(f); err == nil && f != initrd && now.Sub(fi.ModTime()) > 24*time.Hour {
			os.Remove(f)
			os.Remove(f + ".lock")
		}
	}
	kernel := testenv.Cached(t, p.Kernel, "vmlinux", func(path string) error {
		return vmimage.BootKernel(p.Kernel, path)
	})
	return vmimage.Image{Kernel: kernel, Initrd: initrd}
}
