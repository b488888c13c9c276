package ec2_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/imds"
	"github.com/pkgbulk/pkgbulk/lib/imds/imdstest"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// TestAMIDisk boots the AMI's disk (vmimage.WriteDisk) the way an EC2
// instance in UEFI boot mode does: qemu with the OVMF firmware and the
// disk on NVMe, no kernel, initramfs or command line from qemu and no
// fw_cfg, on a user network with restrict=on where the real
// amazon-ec2-metadata-mock answers at 169.254.169.254 with the
// instance's user data as lib/provider/ec2 writes it, less its imds=
// line. The image's /init must take an address by DHCP, read the user
// data with IMDSv2, register with the master's pull server, watch the
// metadata service for spot notices (the default), and build misc/diamond-a with the status and package of a
// local build. Logs the time from qemu's start to the first lease.
func TestAMIDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under UEFI firmware and builds a package")
	}
	imdstest.Find(t)
	img := vmimagetest.Disk(t, "worker", vmimage.Spec{})
	m := qemutest.NewMaster(t, []string{"misc/diamond-a"})
	codeL, outL, storeL := m.LocalBuild()
	p, err := qemu.New(qemu.Config{Dir: filepath.Join(m.X.Dir, "vms"), Image: img, MemoryMB: 1024, Firmware: vmimagetest.OVMF,
		Metadata: func(w provider.Worker, cfg provider.WorkerConfig, guestURL string) (string, error) {
			cfg.ServerURL = guestURL
			ud, err := ec2.UserData(w, cfg, imds.DefaultURL)
			if err != nil {
				return "", err
			}
			// Without its imds= line: /init must watch the metadata
			// service by default.
			var kept []string
			for _, l := range strings.SplitAfter(string(ud), "\n") {
				if !strings.HasPrefix(l, "imds=") {
					kept = append(kept, l)
				}
			}
			ud = []byte(strings.Join(kept, ""))
			// No spot notice for a day: the worker only watches.
			mock := imdstest.Start(t, append(imdstest.UserData(t, ud), "--mock-delay-sec", "86400")...)
			return mock.Addr, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	m.Start("", 30*time.Second)
	t0 := time.Now()
	ins, err := p.Start(ctx, provider.StartRequest{Workers: []provider.Worker{{Name: "ami1", Token: m.Token("ami1")}},
		Config: provider.WorkerConfig{ServerURL: m.URL(), Fingerprint: m.FP}, Spot: true, Tags: map[string]string{provider.TagRun: m.DB}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background(), provider.IDs(ins))
	console := p.SerialLog(ins[0].ID)
	if err := qemutest.WaitConsole(ctx, console, qemutest.LeaseRE); err != nil {
		t.Fatal(err)
	}
	t.Logf("UEFI disk boot: qemu start to first lease %.1fs", time.Since(t0).Seconds())
	code := m.Wait(ctx)
	if code != codeL {
		t.Errorf("exit %d, local %d\nlocal:\n%s\nVM run:\n%s\nconsole:\n%s", code, codeL, outL, m.Out, readFile(console))
	}
	m.Compare(t, storeL, func() { t.Logf("console:\n%s", readFile(console)) })
	c := readFile(console)
	for _, want := range []string{"BdsDxe: starting Boot0001 \"UEFI QEMU NVMe Ctrl", "lease of 169.254.0.15", "user data from http://169.254.169.254",
		"--name ami1 --server https://" + qemu.EC2MasterAddr + ":", "--spot-imds http://169.254.169.254", "registered as pull:ami1"} {
		if !strings.Contains(c, want) {
			t.Errorf("console lacks %q:\n%s", want, c)
		}
	}
}

// BenchmarkEC2Join measures a VM booted as an EC2 instance from qemu's
// start to its worker's first lease: DHCP, the user data from the real
// metadata mock at 169.254.169.254, registration. "kernel" boots kernel
// and initramfs directly (as ec2test does), "uefi-disk" the AMI's disk
// under OVMF (as TestAMIDisk). Reports s/join for each; each VM is
// stopped after its first lease. The VMs' metadata mocks are started
// before the clock.
func BenchmarkEC2Join(b *testing.B) {
	imdstest.Find(b)
	for _, bc := range []struct {
		name string
		disk bool
	}{{"kernel", false}, {"uefi-disk", true}} {
		b.Run(bc.name, func(b *testing.B) {
			img := vmimagetest.Image(b, "worker", vmimage.Spec{})
			if bc.disk {
				img = vmimagetest.Disk(b, "worker", vmimage.Spec{})
			}
			m := qemutest.NewMaster(b, nil)
			var workers []provider.Worker
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("join%d", i)
				workers = append(workers, provider.Worker{Name: name, Token: m.Token(name)})
			}
			m.Start("", 20*time.Second)
			// Each VM's metadata mock (the user data in its
			// configuration) runs before the clock does.
			mocks := map[string]string{}
			for _, w := range workers {
				ud, err := ec2.UserData(w, provider.WorkerConfig{ServerURL: fmt.Sprintf("https://%s:%d", qemu.EC2MasterAddr, m.Port), Fingerprint: m.FP}, "")
				if err != nil {
					b.Fatal(err)
				}
				mocks[w.Name] = imdstest.Start(b, imdstest.UserData(b, ud)...).Addr
			}
			p, err := qemu.New(qemu.Config{Dir: filepath.Join(m.X.Dir, "vms"), Image: img, MemoryMB: 1024, Firmware: vmimagetest.OVMF,
				Metadata: func(w provider.Worker, cfg provider.WorkerConfig, guestURL string) (string, error) {
					if want := fmt.Sprintf("https://%s:%d", qemu.EC2MasterAddr, m.Port); guestURL != want {
						return "", fmt.Errorf("guest URL %s, want %s", guestURL, want)
					}
					return mocks[w.Name], nil
				}})
			if err != nil {
				b.Fatal(err)
			}
			qemutest.BenchJoins(b, p, m, workers)
		})
	}
}
