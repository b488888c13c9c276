package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// TestVMWorkersBuildExampleTree builds part of the example tree
// (misc/exbroken-user2: a C library whose build fails and two C packages
// that need it) with two qemu VMs booted from the worker image (a real
// kernel, the static pkgrun, the image's own gcc and bmake) as pull
// workers of pkgsched, and compares the statuses and packages with a
// local build of the same packages. It logs each VM's join time (qemu
// start to first lease). After the run Stop leaves no VM running, and no
// console shows a token.
func TestVMWorkersBuildExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs and builds the example tree twice")
	}
	vmimagetest.Require(t)
	img := vmimagetest.Image(t, "worker", vmimage.Spec{})
	m := qemutest.NewMaster(t, []string{"misc/exbroken-user2"})
	codeL, outL, storeL := m.LocalBuild()

	workers := []provider.Worker{{Name: "vm1", Token: m.Token("vm1")}, {Name: "vm2", Token: m.Token("vm2")}}
	m.Start("", 30*time.Second)
	p, err := qemu.New(qemu.Config{Dir: filepath.Join(m.X.Dir, "vms"), Image: img, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tags := map[string]string{provider.TagRun: m.DB}
	start := time.Now()
	var ins []provider.Instance
	var wg sync.WaitGroup
	for _, w := range workers {
		t0 := time.Now()
		in, err := p.Start(ctx, provider.StartRequest{Workers: []provider.Worker{w}, Tags: tags,
			Config: provider.WorkerConfig{ServerURL: m.URL(), Fingerprint: m.FP}})
		ins = append(ins, in...)
		if err != nil {
			p.Stop(context.Background(), provider.IDs(ins))
			t.Fatal(err)
		}
		wg.Add(1)
		go func(id, name string) {
			defer wg.Done()
			if err := qemutest.WaitConsole(ctx, p.SerialLog(id), qemutest.LeaseRE); err != nil {
				t.Error(err)
				return
			}
			t.Logf("%s joined: qemu start to first lease %.2fs", name, time.Since(t0).Seconds())
		}(in[0].ID, w.Name)
	}
	t.Cleanup(func() { p.Stop(context.Background(), provider.IDs(ins)) })
	codeV := m.Wait(ctx)
	if codeV < 0 {
		for _, in := range ins {
			t.Logf("%s console:\n%s", in.Name, readFile(p.SerialLog(in.ID)))
		}
		t.Fatalf("the VM run did not end; pkgsched:\n%s", m.Out)
	}
	wg.Wait()
	t.Logf("VM run: exit %d in %v", codeV, time.Since(start).Round(time.Second))
	if err := p.Stop(ctx, provider.IDs(ins)); err != nil {
		t.Fatal(err)
	}
	if ls, err := p.List(ctx, nil); err != nil || len(ls) != 0 {
		t.Errorf("VMs left after Stop: %+v %v", ls, err)
	}
	for _, in := range ins {
		for _, w := range workers {
			if strings.Contains(readFile(p.SerialLog(in.ID)), w.Token) {
				t.Errorf("%s's console shows %s's token", in.Name, w.Name)
			}
		}
	}
	if codeV != codeL {
		t.Errorf("VM run: exit %d, local %d\nlocal:\n%s\nVM:\n%s", codeV, codeL, outL, m.Out)
	}
	m.Compare(t, storeL, func() {
		for _, in := range ins {
			t.Logf("%s console:\n%s", in.Name, readFile(p.SerialLog(in.ID)))
		}
	})
}

func readFile(f string) string {
	b, _ := os.ReadFile(f)
	return string(b)
}
