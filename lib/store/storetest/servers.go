package storetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// SSHServer is a throwaway OpenSSH sshd on 127.0.0.1, started by
// StartSSHD and stopped when the test ends.
type SSHServer struct {
	Host         string // "127.0.0.1"
	Port         int
	User         string // the current user, whom sshd lets in
	IdentityFile string // the client's private key (ed25519, no passphrase)
	KnownHosts   string // a known_hosts file holding the server's host key
	Dir          string // a scratch directory for stores on this server
	stop         func()
	pid          int
}

// Stop stops the server before the test ends (to test lost servers).
func (s *SSHServer) Stop() { s.stop() }

// DropSessions kills the server's per-connection processes but keeps it
// listening, as when a network link breaks; it returns how many it
// killed.
func (s *SSHServer) DropSessions() int {
	kids := descendants(s.pid)
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(kids)
}

// URL returns sftp://user@127.0.0.1:port/<Dir>/<sub>.
func (s *SSHServer) URL(sub string) string {
	return fmt.Sprintf("sftp://%s@%s/%s", s.User, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		strings.TrimPrefix(filepath.Join(s.Dir, sub), "/"))
}

// StartSSHD starts Debian's /usr/sbin/sshd with its own configuration,
// host key and authorized_keys in a temporary directory, on a free port
// of 127.0.0.1, running as the current user. Without sshd or ssh-keygen
// the test skips through testenv.Skip(t, "sshd", ...).
func StartSSHD(t testing.TB) *SSHServer {
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		if p, lerr := exec.LookPath("sshd"); lerr == nil {
			sshd = p
		} else {
			testenv.Skip(t, "sshd", "OpenSSH sshd is not installed (scripts/setup.sh --test installs openssh-server)")
		}
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		testenv.Skip(t, "sshd", "ssh-keygen is not installed (openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root insists on its privilege separation
		// directory, which Debian creates at boot only when sshd is
		// enabled as a service.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			testenv.Skip(t, "sshd", "cannot create /run/sshd: "+err.Error())
		}
	}
	dir := t.TempDir()
	for _, k := range []string{"host_key", "client_key"} {
		out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "pkgbulk-test-"+k, "-f", filepath.Join(dir, k)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	clientPub, err := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), clientPub)
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(hostPub))
	srv := startServer(t, "sshd", "SSH-", 10*time.Second, func(port int) *exec.Cmd {
		writeFile(t, filepath.Join(dir, "known_hosts"), fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", port, fields[0], fields[1]))
		cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding no
X11Forwarding no
LogLevel ERROR
Subsystem sftp internal-sftp
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
		writeFile(t, filepath.Join(dir, "sshd_config"), []byte(cfg))
		return exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	})
	store := filepath.Join(dir, "stores")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	return &SSHServer{
		Host: "127.0.0.1", Port: srv.port, User: u.Username,
		IdentityFile: filepath.Join(dir, "client_key"),
		KnownHosts:   filepath.Join(dir, "known_hosts"),
		Dir:          store,
		stop:         srv.stop,
		pid:          srv.pid,
	}
}

// S3Server is a throwaway S3 server (versitygw with its POSIX backend) on
// 127.0.0.1 with random credentials and one bucket, started by StartS3.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string // the POSIX backend's directory
	stop      func()
}

// Stop stops the server before the test ends (to test lost servers).
func (s *S3Server) Stop() { s.stop() }

// URL returns s3://bucket/prefix?endpoint=...; the credentials are not in it.
func (s *S3Server) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s", s.Bucket, prefix, s.Endpoint)
}

// FindVersityGW returns the versitygw binary (PATH, then $GOPATH/bin),
// or "".
func FindVersityGW() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, d := range filepath.SplitList(gopath) {
		p := filepath.Join(d, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// StartS3 starts versitygw on a free port of 127.0.0.1 with random root
// credentials over a temporary directory and creates one bucket. Without
// versitygw the test skips through testenv.Skip(t, "s3", ...).
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := FindVersityGW()
	if bin == "" {
		testenv.Skip(t, "s3", "versitygw is not installed (scripts/setup.sh --test installs it: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "gw")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &S3Server{
		Region:    "us-east-1",
		AccessKey: "AK" + randHex(t, 9),
		SecretKey: randHex(t, 20),
		Bucket:    "pkgbulk-" + randHex(t, 4),
		Dir:       root,
	}
	srv := startServer(t, "versitygw", "", 15*time.Second, func(port int) *exec.Cmd {
		cmd := exec.Command(bin, "--port", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region, "--quiet", "posix", root)
		// Keep the caller's AWS/VGW settings from leaking into the server.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		return cmd
	})
	s.stop = srv.stop
	hostPort := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port))
	s.Endpoint = "http://" + hostPort
	c, err := minio.New(hostPort, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region: s.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("create bucket %s on %s: %v\noutput:\n%s", s.Bucket, s.Endpoint, err, srv.out.String())
	}
	return s
}

// stopper kills cmd and the processes it forked (sshd's per-connection
// children detach into their own sessions) at the end of the test, and
// reports cmd's output if the test failed; it returns a function that
// stops them at once.
func stopper(t testing.TB, cmd *exec.Cmd, name string, out *testenv.Buffer) (stop func(), exited <-chan struct{}) {
	// Children that outlive cmd hold its output pipe open; do not let
	// Wait wait for them.
	cmd.WaitDelay = time.Second
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			pids := append(descendants(cmd.Process.Pid), cmd.Process.Pid)
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGTERM)
			}
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				<-done
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return stop, done
}

// server is a started server process.
type server struct {
	port int
	pid  int
	stop func()
	out  *testenv.Buffer
}

// startServer starts the command mk makes for a free port and waits until
// the port answers (with a line starting with banner, if not empty). Should
// the port be taken between freePort and the server's bind, it tries again
// on another port.
func startServer(t testing.TB, name, banner string, limit time.Duration, mk func(port int) *exec.Cmd) server {
	t.Helper()
	var lastErr error
	var lastOut string
	for range 3 {
		port := freePort(t)
		cmd := mk(port)
		out := &testenv.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		stop, exited := stopper(t, cmd, name, out)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err := waitBanner(addr, banner, limit, exited)
		if err == nil {
			select {
			case <-exited: // someone else answered on the port
				err = fmt.Errorf("%s exited", name)
			default:
				return server{port: port, pid: cmd.Process.Pid, stop: stop, out: out}
			}
		}
		stop()
		lastErr, lastOut = fmt.Errorf("on %s: %w", addr, err), out.String()
	}
	t.Fatalf("%s did not come up %v\noutput:\n%s", name, lastErr, lastOut)
	return server{}
}

// descendants returns the pids of the processes below pid (Linux /proc;
// elsewhere none, and only pid itself is stopped).
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	parent := make(map[int]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state ppid ...
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				parent[p] = pp
			}
		}
	}
	var out []int
	frontier := []int{pid}
	for len(frontier) > 0 {
		var next []int
		for p, pp := range parent {
			if slices.Contains(frontier, pp) {
				out = append(out, p)
				next = append(next, p)
			}
		}
		frontier = next
	}
	return out
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClosedPortAddr returns "127.0.0.1:port" where nothing listens, for tests
// of unreachable servers.
func ClosedPortAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

// waitBanner waits until addr accepts connections and, if banner is not
// empty, sends a line starting with it.
func waitBanner(addr, banner string, limit time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	err := fmt.Errorf("nothing answered within %v", limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the server exited")
		default:
		}
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			if banner == "" {
				c.Close()
				return nil
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, banner) {
				return nil
			}
			err = fmt.Errorf("banner %q: %v", line, rerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
