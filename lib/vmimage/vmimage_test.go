package vmimage_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// TestPlan makes the image of a static pkgrun, busybox and the example
// tree (no Debian packages) and checks its manifest and cpio: the init,
// the tree, the modules in load order, no host /etc and nothing secret;
// the same plan gives the same bytes.
func TestPlan(t *testing.T) {
	vmimagetest.Require(t)
	p, err := vmimage.NewPlan(vmimage.Spec{Pkgrun: "/usr/bin/busybox", Packages: []string{"dash"}, Tree: "../../examples/tree"})
	if err != nil {
		t.Fatal(err)
	}
	var man bytes.Buffer
	if err := p.WriteManifest(&man); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" init\n", " usr/pkgsrc/mk/bsd.pkg.mk\n", " usr/bin/pkgrun\n", " etc/pkgbulk/modules\n", "/virtio_net.ko\n", "usr/bin/dash\n", "l - usr/bin bin\n"} {
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
