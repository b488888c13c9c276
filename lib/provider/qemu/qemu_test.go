package qemu_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

// probeInit replaces the worker image's /init in TestProbeVMs: it reads
// what a worker would (the kernel command line, the fw_cfg token), tries
// to reach the host directly (restrict=on must stop it), then reports to
// the master through the guest forward and obeys its answer: "stay"
// (keep running until stopped) or "off" (power off).
const probeInit = `#!/usr/bin/busybox sh
bb=/usr/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
while read -r m; do $bb insmod "$m"; done < /etc/pkgbulk/modules
$bb ip link set lo up
$bb ip link set eth0 up
$bb ip addr add 10.0.2.15/24 dev eth0
$bb ip route add default via 10.0.2.2
server= name=
for w in $($bb cat /proc/cmdline); do
	case $w in
	pkgbulk.server=*) server=${w#*=} ;;
	pkgbulk.name=*) name=${w#*=} ;;
	esac
done
tok=$($bb cat /sys/firmware/qemu_fw_cfg/by_name/opt/pkgbulk/token/raw)
blocked=$($bb timeout 20 $bb wget -q -O - "$server/blocked-port")
direct=no
$bb timeout 3 $bb wget -q -O /dev/null "http://10.0.2.2:$blocked/" && direct=yes
reply=$($bb timeout 20 $bb wget -q -O - --header "X-Token: $tok" "$server/report?name=$name&direct=$direct&cmdline=$($bb cat /proc/cmdline | $bb tr ' ' '+')")
echo "probe: $name reported, told $reply" > /dev/console
[ "$reply" = stay ] && exec $bb sleep 100000
$bb poweroff -f
`

type report struct{ name, token, direct, cmdline string }

// TestProbeVMs boots two VMs with a probe /init and checks the provider's
// contract: each VM gets its own token through fw_cfg and its name and
// the rewritten server URL on the kernel command line; the token is in
// no process argument and no file of the state directory; the guest can
// reach the master's port but not another port of the host; List finds
// the VMs by tags, also from a new provider on the same directory (a
// restarted master); Stop kills one; a VM that powers itself off leaves
// List; Stop of unknown ids is no error.
func TestProbeVMs(t *testing.T) {
	img := vmimagetest.Image(t, "probe", vmimage.Spec{Packages: []string{}, Init: []byte(probeInit)})

	// A port on the host that the guest must not reach.
	blocked, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocked.Close()
	var reachedBlocked sync.WaitGroup
	reached := make(chan bool, 4)
	reachedBlocked.Add(1)
	go func() {
		defer reachedBlocked.Done()
		for {
			c, err := blocked.Accept()
			if err != nil {
				return
			}
			reached <- true
			c.Close()
		}
	}()
	_, bport, _ := net.SplitHostPort(blocked.Addr().String())

	reports := make(chan report, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/blocked-port":
			io.WriteString(w, bport)
		case "/report":
			q := r.URL.Query()
			rep := report{name: q.Get("name"), token: r.Header.Get("X-Token"), direct: q.Get("direct"), cmdline: q.Get("cmdline")}
			reports <- rep
			if rep.name == "w2" {
				io.WriteString(w, "off")
			} else {
				io.WriteString(w, "stay")
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	dir := t.TempDir()
	p, err := qemu.New(qemu.Config{Dir: dir, Image: img, MemoryMB: 256})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tags := map[string]string{provider.TagRun: "/tmp/run.db"}
	req := provider.StartRequest{
		Workers: []provider.Worker{{Name: "w1", Token: "tok-one-secret"}, {Name: "w2", Token: "tok-two-secret"}},
		Config:  provider.WorkerConfig{ServerURL: srv.URL, Fingerprint: "sha256:00ff", Labels: map[string]string{"capacity": "spot"}},
		Spot:    true,
		Tags:    tags,
	}
	ins, err := p.Start(ctx, req)
	t.Cleanup(func() { p.Stop(context.Background(), provider.IDs(ins)) })
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 2 || ins[0].Name != "w1" || ins[1].Name != "w2" || !ins[0].Spot || ins[0].Tags[provider.TagWorker] != "w1" {
		t.Fatalf("started %+v", ins)
	}
	// The token is in no argv and no file (the FIFOs are gone).
	for _, in := range ins {
		b, err := os.ReadFile(filepath.Join(dir, in.ID, "pid"))
		if err != nil {
			t.Fatal(err)
		}
		cl, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cl), "secret") {
			t.Errorf("a token is in qemu's arguments: %q", cl)
		}
	}
	filepath.Walk(dir, func(f string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(f, "serial.log") {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), "secret") {
				t.Errorf("a token is in %s", f)
			}
		}
		if err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
			t.Errorf("FIFO %s left behind", f)
		}
		return nil
	})

	got := map[string]report{}
	for len(got) < 2 {
		select {
		case r := <-reports:
			got[r.name] = r
		case <-ctx.Done():
			for _, in := range ins {
				b, _ := os.ReadFile(p.SerialLog(in.ID))
				t.Logf("%s serial:\n%s", in.Name, b)
			}
			t.Fatalf("only %d reports", len(got))
		}
	}
	for _, w := range req.Workers {
		r := got[w.Name]
		if r.token != w.Token+"\n" && r.token != w.Token {
			t.Errorf("%s got token %q", w.Name, r.token)
		}
		if r.direct != "no" {
			t.Errorf("%s reached the host's port %s directly", w.Name, bport)
		}
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
		for _, want := range []string{"pkgbulk.server=http://" + qemu.MasterAddr + ":" + port, "pkgbulk.pin=sha256:00ff", "pkgbulk.label=capacity=spot", "pkgbulk.name=" + w.Name} {
			if !strings.Contains(r.cmdline, want) {
				t.Errorf("%s's kernel command line %q lacks %q", w.Name, r.cmdline, want)
			}
		}
	}
	select {
	case <-reached:
		t.Error("a guest connected to the blocked host port")
	default:
	}

	// w2 powers itself off: it leaves List. A new provider on the same
	// directory (a restarted master) lists w1 by its tags.
	p2, err := qemu.New(qemu.Config{Dir: dir, Image: img})
	if err != nil {
		t.Fatal(err)
	}
	var ls []provider.Instance
	for deadline := time.Now().Add(60 * time.Second); ; {
		ls, err = p2.List(ctx, tags)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(ls) != 1 || ls[0].Name != "w1" || ls[0].ID != ins[0].ID || ls[0].Tags[provider.TagSpot] != "true" {
		t.Fatalf("List after w2 powered off: %+v", ls)
	}
	if other, _ := p2.List(ctx, map[string]string{provider.TagRun: "/other.db"}); len(other) != 0 {
		t.Errorf("List of another run: %+v", other)
	}
	pidb, _ := os.ReadFile(filepath.Join(dir, ins[0].ID, "pid"))
	var pid int
	fmt.Sscan(string(pidb), &pid)
	if err := p2.Stop(ctx, []string{ins[0].ID, "vm-unknown", "i-123"}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z") {
			t.Errorf("qemu %d still runs after Stop", pid)
		}
	}
	if ls, _ := p.List(ctx, nil); len(ls) != 0 {
		t.Errorf("List after Stop: %+v", ls)
	}
	if err := p.Stop(ctx, []string{ins[0].ID}); err != nil {
		t.Errorf("Stop again: %v", err)
	}
}
