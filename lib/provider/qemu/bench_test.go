package qemu_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// BenchmarkVMJoin measures a worker VM's join: from the provider's Start
// (qemu started) to the first lease on its console, one VM at a time,
// against a pull master with the whole example tree ready (each VM is
// stopped after its first lease; the lease expires and the job goes
// back). Reports s/join; the target is 5 s under TCG.
func BenchmarkVMJoin(b *testing.B) {
	vmimagetest.Require(b)
	img := vmimagetest.Image(b, "worker", vmimage.Spec{})
	m := qemutest.NewMaster(b, nil)
	var workers []provider.Worker
	for i := 0; i < b.N; i++ {
		name := "join" + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		workers = append(workers, provider.Worker{Name: name, Token: m.Token(name)})
	}
	m.Start("", 20*time.Second)
	p, err := qemu.New(qemu.Config{Dir: filepath.Join(m.X.Dir, "vms"), Image: img, MemoryMB: 1024})
	if err != nil {
		b.Fatal(err)
	}
	qemutest.BenchJoins(b, p, m, workers)
}
