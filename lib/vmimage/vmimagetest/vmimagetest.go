// Package vmimagetest gives tests a worker image (lib/vmimage) built from
// this checkout once and kept in the test cache, keyed by its manifest.
package vmimagetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	img, _ := image(t, name, spec)
	return img
}

// Disk returns Image's image with its Disk: the raw UEFI disk of an AMI
// (vmimage.WriteDisk, with the bzImage kernel and DiskCmdline), cached
// beside the initramfs. It skips the test (fails it when "qemu" is
// required) when OVMF or the disk tools are missing.
func Disk(t testing.TB, name string, spec vmimage.Spec) vmimage.Image {
	t.Helper()
	Require(t)
	if err := vmimage.CheckDiskTools(); err != nil {
		testenv.Skip(t, "qemu", err.Error())
	}
	if _, err := os.Stat(OVMF); err != nil {
		testenv.Skip(t, "qemu", "no UEFI firmware for qemu (apt-get install ovmf)")
	}
	img, p := image(t, name, spec)
	// The key: the initramfs (its name holds its manifest's hash), the
	// kernel's and the boot loader's content, the command line.
	key := filepath.Join(t.TempDir(), "disk-key")
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n", filepath.Base(img.Initrd), vmimage.DiskCmdline)
	for _, f := range []string{p.Kernel, vmimage.SystemdBoot} {
		c, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%x %s\n", sha256.Sum256(c), f)
	}
	if err := os.WriteFile(key, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	img.Disk = testenv.Cached(t, key, name+".disk", func(path string) error {
		return vmimage.WriteDisk(context.Background(), path, p.Kernel, img.Initrd, "")
	})
	now := time.Now()
	os.Chtimes(img.Disk, now, now)
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(img.Disk), "*-"+name+".disk"))
	for _, f := range old {
		if fi, err := os.Stat(f); err == nil && f != img.Disk && now.Sub(fi.ModTime()) > 24*time.Hour {
			os.Remove(f)
			os.Remove(f + ".lock")
		}
	}
	return img
}

// OVMF is the UEFI firmware qemu boots disk images with (Debian's ovmf).
const OVMF = "/usr/share/ovmf/OVMF.fd"

func image(t testing.TB, name string, spec vmimage.Spec) (vmimage.Image, *vmimage.Plan) {
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
	return vmimage.Image{Kernel: kernel, Initrd: initrd}, p
}
