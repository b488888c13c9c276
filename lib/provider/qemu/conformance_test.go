package qemu_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/providertest"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// TestConformance runs the provider suite with worker VMs that register
// with a real pull server (in this process, on loopback).
func TestConformance(t *testing.T) {
	img := vmimagetest.Image(t, "worker", vmimage.Spec{})
	dir := t.TempDir()
	px := qemutest.PullServer(t, dir)
	env := providertest.PullEnv(px)
	env.New = func(t *testing.T) provider.Provider {
		p, err := qemu.New(qemu.Config{Dir: filepath.Join(dir, "vms"), Image: img, MemoryMB: 512})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	env.Boot = 2 * time.Minute
	env.Spot = true
	providertest.Run(t, env)
}
