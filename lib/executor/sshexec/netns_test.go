package sshexec_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// nsHost is a builder machine made of a network namespace joined to this
// one by a veth pair, with its own OpenSSH sshd. It shares the file
// system (so a file:// store and the pkgrun binary are reachable) but not
// the network: cutting its link or stopping its processes is like losing
// a real host.
type nsHost struct {
	ns, addr, hostIf string
	sshd, cfg        string
	mu               sync.Mutex
	cmd              *exec.Cmd
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// startNSHost makes host i: namespace, link, address, sshd on port 22.
func startNSHost(t *testing.T, i int, dir, hostKey, authKeys string) *nsHost {
	pid := os.Getpid()
	h := &nsHost{ns: fmt.Sprintf("pkgbulk-%d-%d", pid, i), hostIf: fmt.Sprintf("pbh%d%d", pid%100000, i)}
	peer := fmt.Sprintf("pbn%d%d", pid%100000, i)
	net := fmt.Sprintf("10.231.%d.", pid%250)
	hostAddr, nsAddr := net+strconv.Itoa(4*i+1), net+strconv.Itoa(4*i+2)
	h.addr = nsAddr
	run(t, "ip", "netns", "add", h.ns)
	t.Cleanup(func() {
		h.stopSSHD()
		if out, err := exec.Command("ip", "netns", "pids", h.ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if p, err := strconv.Atoi(f); err == nil {
					syscall.Kill(p, syscall.SIGCONT)
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", h.ns).Run()
		exec.Command("ip", "link", "del", h.hostIf).Run()
	})
	run(t, "ip", "link", "add", h.hostIf, "type", "veth", "peer", "name", peer, "netns", h.ns)
	run(t, "ip", "addr", "add", hostAddr+"/30", "dev", h.hostIf)
	run(t, "ip", "link", "set", h.hostIf, "up")
	run(t, "ip", "netns", "exec", h.ns, "ip", "addr", "add", nsAddr+"/30", "dev", peer)
	run(t, "ip", "netns", "exec", h.ns, "ip", "link", "set", peer, "up")
	run(t, "ip", "netns", "exec", h.ns, "ip", "link", "set", "lo", "up")
	h.cfg = filepath.Join(dir, fmt.Sprintf("sshd_config.%d", i))
	conf := fmt.Sprintf(`Port 22
ListenAddress %s
HostKey %s
PidFile none
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxSessions 30
MaxStartups 30
X11Forwarding no
LogLevel ERROR
`, nsAddr, hostKey, authKeys)
	if err := os.WriteFile(h.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	h.sshd = "/usr/sbin/sshd"
	h.startSSHD(t)
	return h
}

func (h *nsHost) startSSHD(t *testing.T) {
	cmd := exec.Command("ip", "netns", "exec", h.ns, h.sshd, "-D", "-e", "-f", h.cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.cmd = cmd
	h.mu.Unlock()
	for i := 0; i < 100; i++ {
		if exec.Command("ip", "netns", "exec", h.ns, "sh", "-c", "exec 3<>/dev/tcp/"+h.addr+"/22").Run() == nil {
			return
		}
		// dash has no /dev/tcp: look for the listening socket instead.
		if out, _ := exec.Command("ip", "netns", "exec", h.ns, "ss", "-ltn").Output(); bytes.Contains(out, []byte(h.addr+":22")) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sshd in %s did not start", h.ns)
}

// sshdPids are the host's sshd processes (listener and per connection).
func (h *nsHost) sshdPids() []int {
	out, _ := exec.Command("ip", "netns", "pids", h.ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		p, _ := strconv.Atoi(f)
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.HasPrefix(string(b), "sshd") {
			pids = append(pids, p)
		}
	}
	return pids
}

// stopSSHD kills every sshd of the host.
func (h *nsHost) stopSSHD() {
	for _, p := range h.sshdPids() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	h.mu.Lock()
	if h.cmd != nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
		h.cmd = nil
	}
	h.mu.Unlock()
}

// signalAll sends sig to every process of the host.
func (h *nsHost) signalAll(sig syscall.Signal) int {
	out, _ := exec.Command("ip", "netns", "pids", h.ns).Output()
	n := 0
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil && syscall.Kill(p, sig) == nil {
			n++
		}
	}
	return n
}

// pkgruns counts the host's pkgrun processes.
func (h *nsHost) pkgruns() int {
	out, _ := exec.Command("ip", "netns", "pids", h.ns).Output()
	n := 0
	for _, f := range strings.Fields(string(out)) {
		if b, _ := os.ReadFile("/proc/" + f + "/comm"); strings.TrimSpace(string(b)) == "pkgrun" {
			n++
		}
	}
	return n
}

// starts checks that every start event of a package follows the end of
// its previous run, and returns the workers the jobs ran on.
func starts(t *testing.T, path string) map[string]int {
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT COALESCE(pkg_id, 0), event, detail FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	running := map[int64]bool{}
	events := map[string]int{}
	for rows.Next() {
		var id int64
		var ev, detail string
		rows.Scan(&id, &ev, &detail)
		events[ev]++
		switch ev {
		case "start":
			if running[id] {
				t.Errorf("package %d started twice without an end between", id)
			}
			running[id] = true
		case "init", "cleanup":
		default:
			running[id] = false
		}
	}
	return events
}

// TestNetnsExampleTree builds the example tree with the real pkgrun once
// on local slots, then over one local slot and two ssh hosts in network
// namespaces while the first host's sshd is killed (and started again),
// the second host's link goes down (and up) and the first host is
// stopped with SIGSTOP (and continued). Both runs must end with the same
// states and the same packages; no package may start again before its
// last run ended, and no pkgrun may be left on the hosts.
func TestNetnsExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example tree twice")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "netns", "needs root for ip netns and pkgrun's sandbox")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Skip(t, "netns", "ip (iproute2) is not installed")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		testenv.Skip(t, "netns", "OpenSSH sshd is not installed")
	}
	if out, err := exec.Command("ip", "netns", "add", fmt.Sprintf("pkgbulk-probe-%d", os.Getpid())).CombinedOutput(); err != nil {
		testenv.Skip(t, "netns", fmt.Sprintf("cannot make network namespaces: %v %s", err, out))
	}
	exec.Command("ip", "netns", "del", fmt.Sprintf("pkgbulk-probe-%d", os.Getpid())).Run()
	mk := testenv.Program(t, "bmake")
	x := executortest.NewExampleTree(t, "local.db", "mixed.db")
	dir, bin, tree := x.Dir, x.Bin, x.Tree
	common := []string{"--pkgrun", filepath.Join(bin, "pkgrun"), "--pkgsrc", tree, "--make", mk, "--max-time", "5m", "--json"}
	sched := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(bin, "pkgsched"), append(append([]string{"run"}, args...), common...)...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}

	// The reference: local slots only.
	storeL := filepath.Join(dir, "store-local")
	start := time.Now()
	outL, codeL := sched("--db", filepath.Join(dir, "local.db"), "-j", "2", "--store", "file://"+storeL, "--work-root", filepath.Join(dir, "work-local"))
	t.Logf("local run: exit %d in %v", codeL, time.Since(start).Round(time.Second))

	// Two hosts.
	for _, k := range []string{"host_key", "client_key"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	f := strings.Fields(string(hostPub))
	var known bytes.Buffer
	var hosts []*nsHost
	var specs []string
	for i := 1; i <= 2; i++ {
		h := startNSHost(t, i, dir, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
		hosts = append(hosts, h)
		fmt.Fprintf(&known, "%s %s %s\n", h.addr, f[0], f[1])
		specs = append(specs, "--executor", fmt.Sprintf("ssh://root@%s?slots=1&deadline=2s&pkgrun=%s&workroot=%s",
			h.addr, filepath.Join(bin, "pkgrun"), filepath.Join(dir, fmt.Sprintf("work-h%d", i))))
	}
	os.WriteFile(filepath.Join(dir, "known_hosts"), known.Bytes(), 0o644)

	storeM := filepath.Join(dir, "store-mixed")
	done := make(chan struct{})
	var faults []string
	go func() {
		// Faults while the mixed run builds: each host breaks while it
		// has jobs, then comes back.
		step := func(d time.Duration) bool {
			select {
			case <-done:
				return false
			case <-time.After(d):
				return true
			}
		}
		h1, h2 := hosts[0], hosts[1]
		// busy waits (up to 5s) until h builds something.
		busy := func(h *nsHost) bool {
			for i := 0; i < 50 && h.pkgruns() == 0; i++ {
				if !step(100 * time.Millisecond) {
					return false
				}
			}
			return true
		}
		if !step(2 * time.Second) {
			return
		}
		if !busy(h1) {
			return
		}
		faults = append(faults, fmt.Sprintf("kill sshd of host 1 (%d pkgrun)", h1.pkgruns()))
		h1.stopSSHD()
		if !step(1 * time.Second) {
			return
		}
		h1.startSSHD(t)
		if !step(2 * time.Second) {
			return
		}
		if !busy(h2) {
			return
		}
		faults = append(faults, fmt.Sprintf("link of host 2 down (%d pkgrun)", h2.pkgruns()))
		exec.Command("ip", "link", "set", h2.hostIf, "down").Run()
		if !step(3 * time.Second) {
			exec.Command("ip", "link", "set", h2.hostIf, "up").Run()
			return
		}
		exec.Command("ip", "link", "set", h2.hostIf, "up").Run()
		if !step(1 * time.Second) {
			return
		}
		if !busy(h1) {
			return
		}
		faults = append(faults, fmt.Sprintf("SIGSTOP host 1 (%d pkgrun)", h1.pkgruns()))
		h1.signalAll(syscall.SIGSTOP)
		step(4 * time.Second)
		h1.signalAll(syscall.SIGCONT)
	}()
	start = time.Now()
	// Three faults may hit the same package three times (its job is
	// requeued onto the next host to break): lost jobs count as crashes
	// per package, so allow more than the default three.
	args := append([]string{"--db", filepath.Join(dir, "mixed.db"), "--max-crashes", "10", "--executor", "local:1", "--store", "file://" + storeM,
		"--work-root", filepath.Join(dir, "work-mixed"), "--executor-identity", filepath.Join(dir, "client_key"),
		"--executor-known-hosts", filepath.Join(dir, "known_hosts")}, specs...)
	outM, codeM := sched(args...)
	close(done)
	t.Logf("mixed run: exit %d in %v; faults: %v", codeM, time.Since(start).Round(time.Second), faults)
	if codeM != codeL {
		t.Errorf("mixed run: exit %d, local %d\nlocal:\n%s\nmixed:\n%s", codeM, codeL, outL, outM)
	}
	sl, sm := executortest.States(t, filepath.Join(dir, "local.db")), executortest.States(t, filepath.Join(dir, "mixed.db"))
	for p, s := range sl {
		if sm[p] != s {
			t.Errorf("%s: %s over ssh, %s locally", p, sm[p], s)
		}
	}
	if pl, pm := executortest.Packages(storeL), executortest.Packages(storeM); strings.Join(pl, " ") != strings.Join(pm, " ") {
		t.Errorf("packages differ:\nlocal: %v\nmixed: %v", pl, pm)
	}
	ev := starts(t, filepath.Join(dir, "mixed.db"))
	if d, err := db.OpenReadOnly(context.Background(), filepath.Join(dir, "mixed.db")); err == nil {
		rows, err := d.Query(`SELECT worker, count(*), sum(COALESCE(finished_at, 0) - COALESCE(started_at, 0)) FROM build_state WHERE worker IS NOT NULL GROUP BY worker`)
		if err == nil {
			for rows.Next() {
				var w string
				var n, ms int64
				rows.Scan(&w, &n, &ms)
				t.Logf("worker %s: %d packages, %v", w, n, time.Duration(ms)*time.Millisecond)
			}
			rows.Close()
		}
		d.Close()
	}
	t.Logf("mixed run events: %v", ev)
	if len(faults) < 3 {
		t.Errorf("only %d of 3 faults happened before the run ended: %v", len(faults), faults)
	}
	time.Sleep(time.Second)
	for i, h := range hosts {
		if n := h.pkgruns(); n > 0 {
			t.Errorf("host %d: %d pkgrun processes left after the run", i+1, n)
		}
	}
	if testing.Verbose() {
		t.Logf("mixed run output:\n%s", outM)
	}
}
