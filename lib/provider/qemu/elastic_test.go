package qemu_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/imds/imdstest"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

var (
	leaseIDRE    = regexp.MustCompile(`lease (\S+) \(attempt \d+\): (\S+)`)
	leaseEndedRE = regexp.MustCompile(`lease (\S+): `)
)

// vm is one VM of a qemu provider's directory.
type vm struct {
	id, dir string
	pid     int
}

// vms lists the VMs whose qemu runs in dir.
func vms(dir string) []vm {
	ents, _ := os.ReadDir(dir)
	var out []vm
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "vm-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "pid"))
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if qemuAlive(pid, e.Name()) {
			out = append(out, vm{id: e.Name(), dir: filepath.Join(dir, e.Name()), pid: pid})
		}
	}
	return out
}

func qemuAlive(pid int, id string) bool {
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cl), "pkgbulk-"+id) {
		return false
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return !strings.Contains(string(st), ") Z")
}

// name is v's worker name.
func (v vm) name() string {
	var m struct{ Name string }
	b, _ := os.ReadFile(filepath.Join(v.dir, "meta.json"))
	json.Unmarshal(b, &m)
	return m.Name
}

// spot reports whether v is a spot VM (only those watch the metadata
// service).
func (v vm) spot() bool {
	b, _ := os.ReadFile(filepath.Join(v.dir, "meta.json"))
	return strings.Contains(string(b), `"pkgbulk-spot":"true"`)
}

// building is the package VM v builds now ("" when it holds no lease):
// its console's last lease has no line after it that ends it.
func (v vm) building() string {
	b, _ := os.ReadFile(filepath.Join(v.dir, "serial.log"))
	s := string(b)
	m := leaseIDRE.FindAllStringSubmatchIndex(s, -1)
	if len(m) == 0 {
		return ""
	}
	last := m[len(m)-1]
	id, pkg := s[last[2]:last[3]], s[last[4]:last[5]]
	for _, e := range leaseEndedRE.FindAllStringSubmatch(s[last[1]:], -1) {
		if e[1] == id {
			return ""
		}
	}
	return pkg
}

// TestElasticQemu builds (part of) the example tree with pkgsched run on
// elastic builders that are qemu VMs (elastic:qemu): the autoscaler boots
// spot VMs as the work asks and stops them. While it builds, one VM is
// killed with SIGKILL mid-job (a lost machine: its job is requeued, and
// with preempt=1 goes to an on-demand VM), a spot interruption notice
// comes from the real amazon-ec2-metadata-mock (the spot VMs' workers
// release their leases and power off), and pkgsched is killed with
// SIGKILL while VMs run and started again: the VMs the dead master left
// are found by their run tag and stopped. The run must end with a local
// build's statuses and packages, at least two VMs must have been started,
// and none may be left running.
func TestElasticQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs and builds part of the example tree twice")
	}
	vmimagetest.Require(t)
	imdstest.Find(t)
	img := vmimagetest.Image(t, "worker", vmimage.Spec{})
	list := qemutest.Limited
	if qemutest.FullTree() {
		list = nil
	}
	m := qemutest.NewMaster(t, list)
	codeL, outL, storeL := m.LocalBuild()

	mockPort := qemutest.FreePort(t)
	bdir := m.DB + ".builders/qemu"
	spec := fmt.Sprintf("elastic:qemu?max=2&boot=15s&idle=5s&worth=0.01&spot=true&preempt=1&ttl=20s&poll=2s&tick=500ms&list=1s"+
		"&listen=127.0.0.1:%d&kernel=%s&initrd=%s&mem=1024&imds=127.0.0.1:%d", m.Port, img.Kernel, img.Initrd, mockPort)
	t.Cleanup(func() {
		for _, v := range vms(bdir) {
			syscall.Kill(-v.pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	startMaster := func() {
		// Start waits for the certificate: the first run makes it.
		m.Start(spec, 0)
	}
	startMaster()
	seen := map[string]bool{}
	wait := func(what string, d time.Duration, cond func() bool) bool {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			for _, v := range vms(bdir) {
				seen[v.id] = true
			}
			if cond() {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("%s: not within %s", what, d)
		return false
	}

	// A lost machine: SIGKILL a VM mid-job.
	var lost vm
	var lostPkg, lostName string
	var lostDone bool // built before the master was killed
	wait("a spot VM building", 4*time.Minute, func() bool {
		for _, v := range vms(bdir) {
			if p := v.building(); p != "" && v.spot() {
				lost, lostPkg, lostName = v, p, v.name()
				syscall.Kill(-v.pid, syscall.SIGKILL)
				t.Logf("killed %s while it built %s (%.0fs into the run)", v.id, p, time.Since(start).Seconds())
				return true
			}
		}
		return false
	})

	// A spot notice while a VM builds: its worker releases the lease and
	// leaves. The mock is stopped again once the notice was seen, so
	// that the VMs booted next can build.
	var noticed vm
	if wait("a spot VM building", 4*time.Minute, func() bool {
		for _, v := range vms(bdir) {
			if v.id != lost.id && v.spot() && v.building() != "" {
				noticed = v
				return true
			}
		}
		return false
	}) {
		// Every spot VM running watches it; the one that built may have
		// been retired meanwhile: any spot VM's notice will do.
		mock := imdstest.StartOn(t, mockPort, "spot", "--action", "terminate")
		var heard string
		wait("a spot notice on a VM", 2*time.Minute, func() bool {
			logs, _ := filepath.Glob(filepath.Join(bdir, "vm-*", "serial.log"))
			for _, f := range logs {
				if b, _ := os.ReadFile(f); strings.Contains(string(b), "spot interruption notice") {
					heard = filepath.Base(filepath.Dir(f))
					return true
				}
			}
			return false
		})
		mock.Stop()
		t.Logf("spot notice (sent while %s built) heard on %s", noticed.id, heard)
		for _, v := range vms(bdir) {
			if v.id == heard {
				wait(v.id+" powered off", time.Minute, func() bool { return !qemuAlive(v.pid, v.id) })
			}
		}
	}

	// The job lost with the killed VM (preempt=1) is built again, on an
	// on-demand VM, before the master is killed (a restarted master
	// forgets preemptions).
	if lostPkg != "" {
		wait(lostPkg+" built again", 4*time.Minute, func() bool {
			st := executortest.States(t, m.DB)[lostPkg]
			lostDone = st != "" && st != "open" && st != "in_processing"
			return lostDone
		})
	}

	// The master dies while VMs run, and is started again.
	var orphans []vm
	if wait("a VM running after the notice", 4*time.Minute, func() bool {
		for _, v := range vms(bdir) {
			if v.building() != "" {
				return true
			}
		}
		return false
	}) {
		cmd, exit := m.Process()
		cmd.Process.Kill()
		<-exit
		orphans = vms(bdir)
		if len(orphans) == 0 {
			t.Error("no VM outlived the killed master: nothing to find again")
		}
		fmt.Fprintf(m.Out, "=== pkgsched killed; %d VMs left running; restarted\n", len(orphans))
		startMaster()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- m.Wait(ctx) }()
	var codeE int
	for waiting := true; waiting; {
		select {
		case codeE = <-done:
			waiting = false
		case <-time.After(200 * time.Millisecond):
			for _, v := range vms(bdir) {
				seen[v.id] = true
			}
		}
	}
	if codeE < 0 {
		t.Fatalf("the elastic run did not end\n%s", m.Out)
	}
	t.Logf("elastic run on qemu: exit %d in %v, %d VMs", codeE, time.Since(start).Round(time.Second), len(seen))
	if codeE != codeL {
		t.Errorf("elastic run: exit %d, local %d\nlocal:\n%s\nelastic:\n%s", codeE, codeL, outL, m.Out)
	}
	m.Compare(t, storeL, func() {
		logs, _ := filepath.Glob(filepath.Join(bdir, "*.serial.log"))
		for _, f := range logs {
			t.Logf("%s:\n%s", filepath.Base(f), readFile(f))
		}
	})
	// Nothing built twice at once; the job lost on a spot VM (preempt=1)
	// was built at last on an on-demand one.
	by := m.CheckEvents(t)
	if lostPkg != "" {
		w := by[lostPkg]
		switch {
		case lostName != "" && strings.HasSuffix(w, ":"+lostName):
			// Its console lagged: the build was reported before the kill.
			t.Logf("%s finished on %s before the kill: nothing was lost", lostPkg, w)
		case lostDone && !strings.Contains(w, "-od"):
			t.Errorf("the job lost with %s (%s) was built at last on %q, not on an on-demand VM; pkgsched:\n%s", lost.id, lostPkg, w, m.Out)
		}
	}
	if len(seen) < 2 {
		t.Errorf("%d VMs ran; want at least 2", len(seen))
	}
	for _, v := range orphans {
		if qemuAlive(v.pid, v.id) {
			t.Errorf("VM %s (qemu %d) the killed master left still runs", v.id, v.pid)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(bdir, "*.serial.log"))
	for _, f := range logs {
		if c := readFile(f); strings.Contains(c, "could not unload qemu_fw_cfg") || strings.Contains(c, "insmod") {
			t.Errorf("%s: the init did not set up as it should:\n%s", filepath.Base(f), c)
		}
	}
	if left := vms(bdir); len(left) > 0 {
		t.Errorf("VMs left running after the run: %v", left)
	}
	p, err := qemu.New(qemu.Config{Dir: bdir, Image: img})
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := p.List(ctx, nil); err != nil || len(ls) != 0 {
		t.Errorf("the provider lists %v, %v after the run", ls, err)
	}
	if out, err := exec.Command("pgrep", "-f", "pkgbulk-vm-").Output(); err == nil {
		for _, pid := range strings.Fields(string(out)) {
			if cl, _ := os.ReadFile("/proc/" + pid + "/cmdline"); strings.Contains(string(cl), bdir) {
				t.Errorf("qemu %s of this run still runs", pid)
			}
		}
	}
}

func readFile(f string) string {
	b, _ := os.ReadFile(f)
	return string(b)
}
