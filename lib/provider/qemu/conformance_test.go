package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/providertest"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// TestConformance runs the provider suite with worker VMs that register
// with a real pull server (in this process, on loopback).
func TestConformance(t *testing.T) {
	img := vmimagetest.Image(t, "worker", vmimage.Spec{})
	dir := t.TempDir()
	px := PullServer(t, dir)
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

// PullServer opens a pull executor on an empty database (no jobs) on
// loopback, closed when the test ends.
func PullServer(t *testing.T, dir string) *pullexec.Executor {
	dbPath := filepath.Join(dir, "bulk.db")
	d, err := db.Create(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	px, err := pullexec.Open(context.Background(), "pull://127.0.0.1:0?poll=2s", job.Settings{Store: "file://" + store}, dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}
