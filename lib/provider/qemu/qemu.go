// Package qemu is a provider (lib/provider) of builder machines that are
// qemu VMs on the master's own machine, booting the worker image of
// lib/vmimage straight into `pkgrun worker`.
//
// Each VM gets the server's URL, pin, its worker name and labels on the
// kernel command line, and its one-session token through fw_cfg
// (opt/pkgbulk/token) read from a FIFO: the token is handed to qemu once
// and never lies in a file. The VM's only network is qemu's user-mode
// network with restrict=on: the guest can reach nothing but the guest
// forwards to the master's port (and, when Config.IMDS is set, to an
// instance-metadata service), each connection relayed by busybox nc.
//
// With Config.Metadata a VM boots as an EC2 instance does instead
// (lib/provider/ec2/ec2test): nothing on the kernel command line or in
// fw_cfg, an address by DHCP, and its settings as user data from a
// metadata service at the real 169.254.169.254 (the user network is then
// 169.254.0.0/16, so that qemu forwards that address). Image.Disk boots
// the AMI's disk under UEFI firmware (OVMF) rather than kernel and
// initramfs directly.
//
// Machines are kept in Config.Dir, one directory per VM holding its pid,
// its tags and its serial console's log, so that List finds the VMs of a
// master that crashed and Stop kills them (their process group). A VM
// powers itself off when its worker exits.
package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
)

// Guest-side addresses of the user network's forwards.
const (
	// MasterAddr is where a guest reaches the master's server port.
	MasterAddr = "10.0.2.100"
	// IMDSAddr is where a guest reaches Config.IMDS (port 80).
	IMDSAddr = "10.0.2.101"
	// EC2MasterAddr is MasterAddr on the user network of a VM booted
	// as an EC2 instance (Config.Metadata).
	EC2MasterAddr = "169.254.0.100"
	// EC2MetadataAddr is the metadata service's address on EC2 (port
	// 80), where such a VM finds Config.Metadata's service.
	EC2MetadataAddr = "169.254.169.254"
)

// ec2Net is the user network of a VM booted as an EC2 instance: the
// link-local /16 that holds the metadata service's address (qemu
// forwards only addresses inside the guest's network).
const ec2Net = "net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3,dhcpstart=169.254.0.15"

// Config configures the provider.
type Config struct {
	// Dir keeps one directory per VM (made if missing). Use one Dir per
	// master: List reports every VM in it.
	Dir string
	// Image is the worker image to boot.
	Image vmimage.Image
	// MemoryMB and CPUs size each VM (default 1024 MiB, 1 CPU).
	MemoryMB, CPUs int
	// Qemu is the qemu-system-x86_64 binary (default: found on PATH).
	Qemu string
	// Busybox relays the guest forwards (default /usr/bin/busybox).
	Busybox string
	// IMDS is a host address (host:port) of an instance-metadata service
	// that guests reach at http://IMDSAddr and whose spot notices the
	// workers of spot VMs watch (pkgrun worker --spot-imds); "" for none.
	// Not with Metadata.
	IMDS string
	// Metadata, when set, boots each VM the way an EC2 instance boots
	// (lib/provider/ec2/ec2test): it returns the host address (host:port)
	// of the worker's own metadata service, which the guest reaches at
	// http://EC2MetadataAddr and reads its user data from; guestURL is
	// the server's URL as the guest reaches it (for that user data).
	// No setting goes on the kernel command line or through fw_cfg.
	Metadata func(w provider.Worker, cfg provider.WorkerConfig, guestURL string) (string, error)
	// Firmware is the UEFI firmware that boots Image.Disk (default
	// /usr/share/ovmf/OVMF.fd, from Debian's ovmf).
	Firmware string
}

// Provider starts qemu VMs.
type Provider struct {
	cfg Config

	mu    sync.Mutex
	procs map[string]*exec.Cmd // VMs this process started (reaped by wait)
}

// New checks cfg and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Dir == "" {
		return nil, errors.New("qemu provider: no state directory")
	}
	files := []string{cfg.Image.Kernel, cfg.Image.Initrd}
	switch {
	case cfg.Image.Disk != "":
		if cfg.Metadata == nil {
			return nil, errors.New("qemu provider: a disk image boots only as an EC2 instance (no Metadata)")
		}
		if cfg.Firmware == "" {
			cfg.Firmware = "/usr/share/ovmf/OVMF.fd"
		}
		files = []string{cfg.Image.Disk, cfg.Firmware}
	case cfg.Image.Kernel == "" || cfg.Image.Initrd == "":
		return nil, errors.New("qemu provider: no worker image (kernel and initrd, or disk)")
	}
	if cfg.Metadata != nil && cfg.IMDS != "" {
		return nil, errors.New("qemu provider: IMDS and Metadata exclude each other")
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("qemu provider: worker image: %w", err)
		}
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.Qemu == "" {
		p, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			return nil, fmt.Errorf("qemu provider: %w (apt-get install qemu-system-x86)", err)
		}
		cfg.Qemu = p
	}
	if cfg.Busybox == "" {
		cfg.Busybox = "/usr/bin/busybox"
	}
	if _, err := os.Stat(cfg.Busybox); err != nil {
		return nil, fmt.Errorf("qemu provider: the forward relay: %w (apt-get install busybox-static)", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu provider: %w", err)
	}
	return &Provider{cfg: cfg, procs: map[string]*exec.Cmd{}}, nil
}

// Name is "qemu".
func (p *Provider) Name() string { return "qemu" }

// Close does not stop the VMs.
func (p *Provider) Close() error { return nil }

// meta is a VM's record in its directory (meta.json).
type meta struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Spot    bool              `json:"spot"`
	Started time.Time         `json:"started"`
	Tags    map[string]string `json:"tags"`
}

func (p *Provider) vmDir(id string) string { return filepath.Join(p.cfg.Dir, id) }

// guestURL rewrites the server URL to the guest's side of the forward
// (at guestAddr) and returns the host address the forward connects to.
func guestURL(server, guestAddr string) (guest, hostAddr string, err error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", "", fmt.Errorf("server URL %q: %w", server, err)
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		default:
			return "", "", fmt.Errorf("server URL %q: no port", server)
		}
	}
	if u.Hostname() == "" || strings.ContainsAny(u.Hostname()+port, ", \t") {
		// qemu's -netdev list and the relay's command line split there.
		return "", "", fmt.Errorf("server URL %q: bad host or port", server)
	}
	hostAddr = net.JoinHostPort(u.Hostname(), port)
	u.Host = net.JoinHostPort(guestAddr, port)
	return u.String(), hostAddr, nil
}

// Start boots one VM per worker.
func (p *Provider) Start(ctx context.Context, req provider.StartRequest) ([]provider.Instance, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	var out []provider.Instance
	for _, w := range req.Workers {
		in, err := p.start(ctx, req, w)
		if err != nil {
			return out, fmt.Errorf("qemu provider: start %s: %w", w.Name, err)
		}
		out = append(out, in)
	}
	return out, nil
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "vm-" + hex.EncodeToString(b)
}

func (p *Provider) start(ctx context.Context, req provider.StartRequest, w provider.Worker) (provider.Instance, error) {
	masterAddr := MasterAddr
	if p.cfg.Metadata != nil {
		masterAddr = EC2MasterAddr
	}
	guest, hostAddr, err := guestURL(req.Config.ServerURL, masterAddr)
	if err != nil {
		return provider.Instance{}, err
	}
	id := newID()
	dir := p.vmDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return provider.Instance{}, err
	}
	m := meta{ID: id, Name: w.Name, Spot: req.Spot, Started: time.Now().UTC(), Tags: req.MachineTags(w)}
	if err := atomicfile.WriteFile(filepath.Join(dir, "meta.json"), func(f io.Writer) error {
		return json.NewEncoder(f).Encode(m)
	}); err != nil {
		os.RemoveAll(dir)
		return provider.Instance{}, err
	}

	// The token goes through a FIFO that qemu reads once at start-up;
	// nothing of it is left on disk.
	secrets := map[string][]byte{"token": []byte(w.Token + "\n")}
	// mitigations=off: TCG does not execute speculatively, so the
	// kernel's side-channel defences only cost time (a third of a build's
	// fork and exec time under TCG).
	kcmd := []string{"console=ttyS0", "quiet", "panic=-1", "mitigations=off"}
	var mdAddr string
	if p.cfg.Metadata != nil {
		secrets = nil
		mdAddr, err = p.cfg.Metadata(w, req.Config, guest)
		if err != nil {
			os.RemoveAll(dir)
			return provider.Instance{}, err
		}
	} else {
		kcmd = append(kcmd, "pkgbulk.server="+guest, "pkgbulk.name="+w.Name)
		if req.Config.Fingerprint != "" {
			kcmd = append(kcmd, "pkgbulk.pin="+req.Config.Fingerprint)
		}
		for _, l := range provider.LabelArgs(req.Config.Labels) {
			kcmd = append(kcmd, "pkgbulk.label="+l)
		}
		if p.cfg.IMDS != "" && req.Spot {
			// Only a spot machine can be interrupted.
			kcmd = append(kcmd, "pkgbulk.imds=http://"+IMDSAddr)
		}
	}
	for _, a := range kcmd {
		if strings.ContainsAny(a, " \t\n\"'") {
			os.RemoveAll(dir)
			return provider.Instance{}, fmt.Errorf("kernel command line argument %q has a space or a quote", a)
		}
	}

	host, port, _ := net.SplitHostPort(hostAddr)
	netdev := "user,id=n0,restrict=on,guestfwd=tcp:" + masterAddr + ":" + port + "-cmd:" + p.cfg.Busybox + " nc " + host + " " + port
	imdsGuest, imdsHost := IMDSAddr, p.cfg.IMDS
	if p.cfg.Metadata != nil {
		netdev = strings.Replace(netdev, "restrict=on,", "restrict=on,"+ec2Net+",", 1)
		imdsGuest, imdsHost = EC2MetadataAddr, mdAddr
	}
	if imdsHost != "" {
		ih, ip, err := net.SplitHostPort(imdsHost)
		if err != nil || strings.ContainsAny(ih+ip, ", \t") {
			os.RemoveAll(dir)
			return provider.Instance{}, fmt.Errorf("metadata service address %q: bad host or port (%v)", imdsHost, err)
		}
		netdev += ",guestfwd=tcp:" + imdsGuest + ":80-cmd:" + p.cfg.Busybox + " nc " + ih + " " + ip
	}
	boot := []string{"-kernel", p.cfg.Image.Kernel, "-initrd", p.cfg.Image.Initrd, "-append", strings.Join(kcmd, " ")}
	if p.cfg.Image.Disk != "" {
		// The AMI's disk on NVMe, as on a Nitro instance; writes go to
		// a temporary file (VMs share the image).
		boot = []string{"-bios", p.cfg.Firmware,
			"-drive", "file=" + p.cfg.Image.Disk + ",if=none,id=d0,format=raw,snapshot=on",
			"-device", "nvme,drive=d0,serial=pkgbulk"}
	}
	nic := "virtio-net-pci,netdev=n0"
	if p.cfg.Image.Disk != "" {
		// No option ROM: the firmware would try a network boot first.
		nic += ",romfile="
	}
	args := []string{
		"-name", "pkgbulk-" + id, // how Stop and List recognise the process
		"-accel", "tcg", "-m", strconv.Itoa(p.cfg.MemoryMB), "-smp", strconv.Itoa(p.cfg.CPUs),
	}
	args = append(args, boot...)
	args = append(args,
		"-display", "none", "-monitor", "none", "-serial", "file:"+filepath.Join(dir, "serial.log"),
		"-no-reboot", "-nodefaults",
		"-netdev", netdev, "-device", nic,
		// Entropy from the host at once (see vmimage.Modules).
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
	)
	var fifos []string
	for name := range secrets {
		f := filepath.Join(dir, name+".fifo")
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			os.RemoveAll(dir)
			return provider.Instance{}, err
		}
		fifos = append(fifos, f)
		args = append(args, "-fw_cfg", "name=opt/pkgbulk/"+name+",file="+f)
	}
	sort.Strings(fifos)
	// The console's file is there from Start on (qemu makes it only
	// when it gets to it), so that SerialLog names it at once.
	if err := os.WriteFile(filepath.Join(dir, "serial.log"), nil, 0o600); err != nil {
		os.RemoveAll(dir)
		return provider.Instance{}, err
	}
	cmd := exec.Command(p.cfg.Qemu, args...)
	// Its own session: the VM outlives a master that crashes (List and
	// Stop find it again), and Stop kills the process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	log, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		os.RemoveAll(dir)
		return provider.Instance{}, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		os.RemoveAll(dir)
		return provider.Instance{}, err
	}
	log.Close()
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		os.RemoveAll(dir)
		return provider.Instance{}, err
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.procs[id] = cmd
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		close(exited)
		p.mu.Lock()
		delete(p.procs, id)
		p.mu.Unlock()
	}()
	for _, f := range fifos {
		name := strings.TrimSuffix(filepath.Base(f), ".fifo")
		err := feed(ctx, f, secrets[name], exited)
		os.Remove(f)
		if err != nil {
			p.kill(id, pid)
			return provider.Instance{}, fmt.Errorf("hand the %s to qemu: %w (see %s)", name, err, filepath.Join(dir, "qemu.log"))
		}
	}
	return provider.Instance{ID: id, Name: w.Name, State: provider.Running, Spot: req.Spot, Started: m.Started, Tags: m.Tags}, nil
}

// feed writes data into the FIFO once qemu opened it for reading.
func feed(ctx context.Context, fifo string, data []byte, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			// Blocking writes from here on: qemu reads until EOF.
			if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
				f.Close()
				return err
			}
			_, err = f.Write(data)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		if !errors.Is(err, syscall.ENXIO) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("qemu exited before it read it")
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("qemu did not read it within 30s")
		}
	}
}

// alive returns the pid of VM id's qemu when it is still running.
func (p *Provider) alive(id string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(p.vmDir(id), "pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// The pid may have been reused since: it is our VM only if its
	// command line names it.
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cl), "\x00pkgbulk-"+id+"\x00") {
		return pid, false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && strings.HasPrefix(string(st[i+1:]), " Z") {
			return pid, false // a zombie its parent has not reaped yet
		}
	}
	return pid, true
}

// List returns the running VMs in Dir that carry every tag, and removes
// the directories of VMs that are gone.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	ents, err := os.ReadDir(p.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("qemu provider: %w", err)
	}
	var out []provider.Instance
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "vm-") {
			continue
		}
		id := e.Name()
		b, err := os.ReadFile(filepath.Join(p.vmDir(id), "meta.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // being made or removed
		}
		if err != nil {
			return nil, fmt.Errorf("qemu provider: %w", err)
		}
		var m meta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("qemu provider: %s: %w", filepath.Join(p.vmDir(id), "meta.json"), err)
		}
		if _, ok := p.alive(id); !ok {
			if p.started(id) {
				continue // still starting: no pid file yet, or exiting
			}
			p.forget(id)
			continue
		}
		if provider.Matches(m.Tags, tags) {
			out = append(out, provider.Instance{ID: id, Name: m.Name, State: provider.Running, Spot: m.Spot, Started: m.Started, Tags: m.Tags})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// started reports whether this process started VM id and still waits
// for it.
func (p *Provider) started(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.procs[id]
	return ok
}

// forget removes the directory of a VM that is gone, keeping its serial
// log beside the others as <id>.serial.log for a post-mortem.
func (p *Provider) forget(id string) {
	dir := p.vmDir(id)
	os.Rename(filepath.Join(dir, "serial.log"), filepath.Join(p.cfg.Dir, id+".serial.log"))
	os.RemoveAll(dir)
}

// Stop kills the VMs ids (their qemu's process group) and waits until
// they are gone. Unknown ids are not an error.
func (p *Provider) Stop(ctx context.Context, ids []string) error {
	var errs []error
	for _, id := range ids {
		if strings.ContainsAny(id, "/\x00") || !strings.HasPrefix(id, "vm-") {
			continue // not one of ours
		}
		pid, ok := p.alive(id)
		if ok {
			if err := p.kill(id, pid); err != nil {
				errs = append(errs, fmt.Errorf("qemu provider: stop %s: %w", id, err))
				continue
			}
		}
		if _, err := os.Stat(p.vmDir(id)); err == nil && !p.started(id) {
			p.forget(id)
		}
	}
	return errors.Join(errs...)
}

// kill kills VM id's process group and waits up to 10s for qemu to go.
func (p *Provider) kill(id string, pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for i := 0; i < 1000; i++ {
		// A dying qemu loses its command line (alive says no) before it
		// is a zombie: wait for the pid itself to be done.
		if _, ok := p.alive(id); !ok && exited(pid) {
			// Reaped by our wait goroutine, or by init after a crash.
			for j := 0; j < 200 && p.started(id); j++ {
				time.Sleep(5 * time.Millisecond)
			}
			p.forget(id)
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("qemu pid %d still runs 10s after SIGKILL", pid)
}

// exited reports whether process pid is gone or a zombie (killed, not
// yet reaped by its parent).
func exited(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(st), ')')
	return i > 0 && (strings.HasPrefix(string(st[i+1:]), " Z") || strings.HasPrefix(string(st[i+1:]), " X"))
}

// SerialLog is the file that holds VM id's console output (while it
// runs, and after Stop as <id>.serial.log beside).
func (p *Provider) SerialLog(id string) string {
	f := filepath.Join(p.vmDir(id), "serial.log")
	if _, err := os.Stat(f); err != nil {
		return filepath.Join(p.cfg.Dir, id+".serial.log")
	}
	return f
}
