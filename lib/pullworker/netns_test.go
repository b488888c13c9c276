package pullworker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// The network of the end-to-end tests: a server namespace (pkgsched and
// its pull server) joined by one veth pair to each worker namespace, and
// one to this test's own namespace (the test's probe client). Worker
// namespaces drop every new inbound connection (nftables, conntrack lets
// the replies of their own connections in): like a volunteer's box behind
// NAT, a worker reaches the server and nothing reaches it.
type netTopo struct {
	t      *testing.T
	prefix string // of namespace and interface names
	net    string // "10.X." of the addresses
	server string // the server namespace
	// probe is the test's own link to the server: the server's address
	// as the test sees it.
	probe string
}

// wNS is one worker namespace.
type wNS struct {
	ns         string
	serverIf   string // the link's end in the server namespace (down = the link is cut)
	addr       string // the worker's address
	serverAddr string // the server's address on the worker's link
	probePort  string // a listener in the worker namespace
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// needNetns skips (fails under PKGBULK_TEST_REQUIRE) when namespaces and
// nftables cannot be used here.
func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "netns", "needs root for ip netns, nftables and pkgrun's sandbox")
	}
	for _, p := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, "netns", p+" is not installed (scripts/setup.sh --test installs iproute2 and nftables)")
		}
	}
	probe := fmt.Sprintf("pkgbulk-pwprobe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		testenv.Skip(t, "netns", fmt.Sprintf("cannot make network namespaces: %v %s", err, out))
	}
	exec.Command("ip", "netns", "del", probe).Run()
}

// newTopo makes the server namespace and the test's link to it.
func newTopo(t *testing.T) *netTopo {
	pid := os.Getpid()
	n := &netTopo{t: t, prefix: fmt.Sprintf("pw%d", pid%100000), net: fmt.Sprintf("10.%d.", 100+pid%100)}
	n.server = "pkgbulk-" + n.prefix + "-s"
	runCmd(t, "ip", "netns", "add", n.server)
	t.Cleanup(func() { killNS(n.server); exec.Command("ip", "netns", "del", n.server).Run() })
	runCmd(t, "ip", "-n", n.server, "link", "set", "lo", "up")
	// The test's own link: 10.X.0.1 here, 10.X.0.2 the server.
	hostIf, peer := n.prefix+"t", n.prefix+"ts"
	runCmd(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", peer, "netns", n.server)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostIf).Run() })
	runCmd(t, "ip", "addr", "add", n.net+"0.1/30", "dev", hostIf)
	runCmd(t, "ip", "link", "set", hostIf, "up")
	runCmd(t, "ip", "-n", n.server, "addr", "add", n.net+"0.2/30", "dev", peer)
	runCmd(t, "ip", "-n", n.server, "link", "set", peer, "up")
	n.probe = n.net + "0.2"
	return n
}

// worker makes worker namespace i (1-based) with its link to the server
// and its NAT-like rules, after checking that without them the server
// could connect to it (so that the rules are what stops it).
func (n *netTopo) worker(i int) *wNS {
	t := n.t
	w := &wNS{ns: fmt.Sprintf("pkgbulk-%s-w%d", n.prefix, i), serverIf: fmt.Sprintf("%ss%d", n.prefix, i)}
	peer := fmt.Sprintf("%sw%d", n.prefix, i)
	w.serverAddr, w.addr = fmt.Sprintf("%s%d.1", n.net, i), fmt.Sprintf("%s%d.2", n.net, i)
	runCmd(t, "ip", "netns", "add", w.ns)
	t.Cleanup(func() { killNS(w.ns); exec.Command("ip", "netns", "del", w.ns).Run() })
	runCmd(t, "ip", "-n", w.ns, "link", "set", "lo", "up")
	runCmd(t, "ip", "-n", n.server, "link", "add", w.serverIf, "type", "veth", "peer", "name", peer, "netns", w.ns)
	runCmd(t, "ip", "-n", n.server, "addr", "add", w.serverAddr+"/24", "dev", w.serverIf)
	runCmd(t, "ip", "-n", n.server, "link", "set", w.serverIf, "up")
	runCmd(t, "ip", "-n", w.ns, "addr", "add", w.addr+"/24", "dev", peer)
	runCmd(t, "ip", "-n", w.ns, "link", "set", peer, "up")
	wl := listenIn(t, w.ns, "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(wl)
	w.probePort = port
	if err := dialFrom(t, n.server, net.JoinHostPort(w.addr, port), 5*time.Second); err != nil {
		t.Fatalf("before its rules, the server cannot reach worker %s: %v", w.ns, err)
	}
	rules := `table inet pkgbulk_nat {
	chain input {
		type filter hook input priority 0; policy drop;
		iif "lo" accept
		ct state established,related accept
	}
}
`
	cmd := exec.Command("ip", "netns", "exec", w.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", w.ns, err, out)
	}
	return w
}

// killNS kills every process left in a namespace (stopped ones too).
func killNS(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			syscall.Kill(p, syscall.SIGCONT)
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// nsPids are the processes in a namespace.
func nsPids(ns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// signalNS sends sig to every process of a namespace.
func signalNS(ns string, sig syscall.Signal) int {
	n := 0
	for _, p := range nsPids(ns) {
		if syscall.Kill(p, sig) == nil {
			n++
		}
	}
	return n
}

// inNetns runs f on an OS thread that has joined the namespace ns:
// sockets f makes (net.Listen, net.Dial) live in that namespace.
func inNetns(ns string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			runtime.UnlockOSThread()
			return
		}
		f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread dies with the goroutine, still locked
		errc <- nil
	}()
	return <-errc
}

// listenIn opens a TCP listener on addr in namespace ns that accepts
// and closes connections until the test ends.
func listenIn(t *testing.T, ns, addr string) string {
	var ln net.Listener
	var lerr error
	if err := inNetns(ns, func() { ln, lerr = net.Listen("tcp", addr) }); err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatalf("listen in %s: %v", ns, lerr)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// dialFrom tries a TCP connection from namespace ns.
func dialFrom(t *testing.T, ns, addr string, timeout time.Duration) error {
	var derr error
	if err := inNetns(ns, func() {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.Close()
		}
		derr = err
	}); err != nil {
		t.Fatal(err)
	}
	return derr
}

// checkNAT proves the rule set: the worker reaches a listener in the
// server namespace; the server's connection to the worker's listener
// times out (its SYN is dropped), where it worked before the rules.
func checkNAT(t *testing.T, n *netTopo, w *wNS) {
	t.Helper()
	srv := listenIn(t, n.server, w.serverAddr+":0")
	if err := dialFrom(t, w.ns, srv, 5*time.Second); err != nil {
		t.Fatalf("worker %s cannot reach the server namespace at %s: %v", w.ns, srv, err)
	}
	err := dialFrom(t, n.server, net.JoinHostPort(w.addr, w.probePort), 2*time.Second)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("the server namespace's connection to worker %s at %s:%s: %v, want a timeout (dropped by the NAT-like rules)", w.ns, w.addr, w.probePort, err)
	}
	// The worker's own loopback still works (its builds may use it).
	if err := dialFrom(t, w.ns, "127.0.0.1:"+w.probePort, 2*time.Second); err != nil {
		t.Fatalf("worker %s cannot reach its own listener: %v", w.ns, err)
	}
}

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return cond()
}

// TestNetnsNAT checks the harness itself: workers reach the server, the
// server reaches no worker.
func TestNetnsNAT(t *testing.T) {
	needNetns(t)
	n := newTopo(t)
	for i := 1; i <= 2; i++ {
		checkNAT(t, n, n.worker(i))
	}
	// The test's own link reaches the server namespace.
	srv := listenIn(t, n.server, n.probe+":0")
	if c, err := net.DialTimeout("tcp", srv, 5*time.Second); err != nil {
		t.Fatalf("the test cannot reach the server namespace: %v", err)
	} else {
		c.Close()
	}
}
