package qemu_test

import (
	"context"
	"path/filepath"
	"strings"
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
	providertest.Run(t, providertest.Env{
		New: func(t *testing.T) provider.Provider {
			p, err := qemu.New(qemu.Config{Dir: filepath.Join(dir, "vms"), Image: img, MemoryMB: 512})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Config: provider.WorkerConfig{ServerURL: px.URL(), Fingerprint: px.Fingerprint()},
		Mint: func(t *testing.T, name string) string {
			tok, err := px.MintToken(context.Background(), name, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		},
		Joined: func(t *testing.T) []string {
			var names []string
			for _, w := range px.Workers() {
				names = append(names, strings.TrimPrefix(w.Name, "pull:"))
			}
			return names
		},
		Boot: 2 * time.Minute,
		Spot: true,
	})
}
