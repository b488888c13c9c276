package vmimage_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// TestPlan makes the image of a static pkgrun, busybox and the example
// tree (no Debian packages) and checks its manifest and cpio: the init,
// the tree, the modules in load order, no host /etc and nothing secret;
// the same plan gives the same bytes.
func TestPlan(t *testing.T) {
	vmimagetest.Require(t)
	kit := writeKit(t, "/usr/bin/openssl")
	p, err := vmimage.NewPlan(vmimage.Spec{Pkgrun: "/usr/bin/busybox", Packages: []string{"dash"}, Tree: "../../examples/tree", Kit: kit})
	if err != nil {
		t.Fatal(err)
	}
	var man bytes.Buffer
	if err := p.WriteManifest(&man); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" init\n", " usr/pkgsrc/mk/bsd.pkg.mk\n", " usr/bin/pkgrun\n", " etc/pkgbulk/modules\n", " etc/pkgbulk/udhcpc.sh\n", " usr/pkgbulk/kit/kit.tar.gz\n", "/libcrypto.so.3\n", "/virtio_net.ko\n", "/ena.ko\n", "usr/bin/dash\n", "l - usr/bin bin\n"} {
		if !strings.Contains(man.String(), want) {
			t.Errorf("manifest lacks %q", strings.TrimSpace(want))
		}
	}
	for _, bad := range []string{" etc/shadow\n", " etc/ssh", "usr/share/doc/"} {
		if strings.Contains(man.String(), bad) {
			t.Errorf("manifest has %q", strings.TrimSpace(bad))
		}
	}
	var a, b bytes.Buffer
	if err := p.WriteCPIO(&a); err != nil {
		t.Fatal(err)
	}
	p.WriteCPIO(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.HasPrefix(a.Bytes(), []byte("070701")) || !bytes.Contains(a.Bytes(), []byte("TRAILER!!!")) {
		t.Error("the cpio is not a stable newc archive")
	}
	if _, err := vmimage.NewPlan(vmimage.Spec{Pkgrun: "/usr/bin/bmake"}); err == nil {
		t.Error("a dynamically linked pkgrun was accepted")
	}
	if _, err := vmimage.NewPlan(vmimage.Spec{Pkgrun: "/usr/bin/busybox", Packages: []string{"dash"}, Kit: kit + ".gone"}); err == nil || !strings.Contains(err.Error(), "kit.tar.gz.gone") {
		t.Errorf("a missing kit: %v", err)
	}
	notKit := filepath.Join(t.TempDir(), "kit.tgz")
	os.WriteFile(notKit, []byte("not a tar"), 0o644)
	if _, err := vmimage.NewPlan(vmimage.Spec{Pkgrun: "/usr/bin/busybox", Packages: []string{"dash"}, Kit: notKit}); err == nil || !strings.Contains(err.Error(), notKit) {
		t.Errorf("a kit that is no tarball: %v", err)
	}
}

// writeKit writes a bootstrap kit whose pkg_info is the host's program
// prog (it loads a library of the host that dash does not: libcrypto).
func writeKit(t *testing.T, prog string) string {
	t.Helper()
	b, err := os.ReadFile(prog)
	if err != nil {
		t.Skipf("no %s: %v", prog, err)
	}
	kit := filepath.Join(t.TempDir(), "kit.tar.gz")
	f, err := os.Create(kit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "usr/pkg/sbin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "usr/pkg/sbin/pkg_info", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b))})
	tw.Write(b)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return kit
}

// TestExtractPVH takes the uncompressed kernel out of the Debian cloud
// kernel; a file that holds none is an error.
func TestExtractPVH(t *testing.T) {
	vmimagetest.Require(t)
	k, _ := vmimage.NewestKernel()
	out := filepath.Join(t.TempDir(), "vmlinux")
	if err := vmimage.ExtractPVH(k, out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !vmimage.HasPVH(b) {
		t.Fatal("the extracted kernel has no PVH note")
	}
	if err := vmimage.ExtractPVH("/usr/bin/busybox", out+"2"); err == nil {
		t.Error("busybox gave a kernel")
	}
}

func FuzzHasPVH(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { vmimage.HasPVH(b) })
}

// TestWriteDisk writes a disk image from a small kernel and initramfs
// and reads it back with the tools an operator has: sfdisk sees one EFI
// system partition at 1 MiB filling the disk, mtools finds systemd-boot
// at the removable-media path, the loader entry with the command line,
// and the kernel and initramfs byte for byte. A missing kernel leaves
// no file behind.
func TestWriteDisk(t *testing.T) {
	if err := vmimage.CheckDiskTools(); err != nil {
		testenv.Skip(t, "qemu", err.Error()) // setup.sh --test installs them
	}
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	os.WriteFile(kernel, bytes.Repeat([]byte("K"), 3<<20+7), 0o644)
	os.WriteFile(initrd, bytes.Repeat([]byte("I"), 5<<20+3), 0o644)
	out := filepath.Join(dir, "disk.img")
	ctx := context.Background()
	if err := vmimage.WriteDisk(ctx, out, kernel, initrd, "console=ttyS0 x=1"); err != nil {
		t.Fatal(err)
	}
	js, err := exec.Command("sfdisk", "--json", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string
			LastLBA    int64 `json:"lastlba"`
			Partitions []struct {
				Start, Size int64
				Type        string
			}
		}
	}
	if err := json.Unmarshal(js, &pt); err != nil {
		t.Fatal(err)
	}
	ps := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "gpt" || len(ps) != 1 || ps[0].Start != 2048 || ps[0].Type != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" ||
		ps[0].Start+ps[0].Size > pt.PartitionTable.LastLBA+1 {
		t.Fatalf("partition table: %s", js)
	}
	img := out + "@@1M"
	read := func(f string) []byte {
		b, err := exec.Command("mtype", "-i", img, f).Output()
		if err != nil {
			t.Fatalf("mtype %s: %v", f, err)
		}
		return b
	}
	if e := string(read("::/loader/entries/pkgbulk.conf")); !strings.Contains(e, "linux /vmlinuz\n") ||
		!strings.Contains(e, "initrd /initrd.img\n") || !strings.Contains(e, "options console=ttyS0 x=1\n") {
		t.Errorf("loader entry:\n%s", e)
	}
	boot, _ := os.ReadFile(vmimage.SystemdBoot)
	for f, want := range map[string]string{"::/EFI/BOOT/BOOTX64.EFI": string(boot), "::/vmlinuz": kernel, "::/initrd.img": initrd} {
		w := []byte(want)
		if f != "::/EFI/BOOT/BOOTX64.EFI" {
			w, _ = os.ReadFile(want)
		}
		if got := read(f); !bytes.Equal(got, w) {
			t.Errorf("%s: %d bytes, want %d", f, len(got), len(w))
		}
	}
	out2 := filepath.Join(dir, "bad.img")
	if err := vmimage.WriteDisk(ctx, out2, filepath.Join(dir, "nokernel"), initrd, ""); err == nil {
		t.Error("a missing kernel was accepted")
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("a failed WriteDisk left its file")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".disk-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
