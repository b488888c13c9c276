// Package imdstest starts amazon-ec2-metadata-mock, the real EC2
// instance-metadata mock, for tests (scripts/setup.sh --test installs it).
package imdstest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// Find returns the ec2-metadata-mock binary (PATH, then $GOPATH/bin), or
// skips the test (fails it when "ec2-metadata-mock" is required).
func Find(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("ec2-metadata-mock"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, d := range filepath.SplitList(gopath) {
		p := filepath.Join(d, "bin", "ec2-metadata-mock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testenv.Skip(t, "ec2-metadata-mock", "ec2-metadata-mock is not installed (scripts/setup.sh --test installs it)")
	return ""
}

// Mock is a running metadata mock.
type Mock struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
}

// Stop ends the mock (its clients then fail to reach it).
func (m *Mock) Stop() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
}

// Start runs the mock on a free loopback port with IMDSv2 only (every
// request needs a session token) and the given arguments, e.g. "spot",
// "--action", "terminate", "--mock-delay-sec", "5". It is stopped when the
// test ends.
func Start(t testing.TB, args ...string) *Mock {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return StartOn(t, port, args...)
}

// StartOn is Start on a given loopback port (one a VM's forward already
// points at).
func StartOn(t testing.TB, port int, args ...string) *Mock {
	t.Helper()
	bin := Find(t)
	home := t.TempDir() // the mock reads (and may write) its config there
	a := append([]string{}, args...)
	a = append(a, "--imdsv2", "--hostname", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd := exec.Command(bin, a...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Dir = home
	log, err := os.Create(filepath.Join(home, "mock.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &Mock{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd}
	m.URL = "http://" + m.Addr
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		log.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, m.URL+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return m
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(filepath.Join(home, "mock.log"))
			t.Fatalf("ec2-metadata-mock did not come up on %s: %v\n%s", m.Addr, err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// UserData returns the mock's arguments that make it serve data as the
// instance's user data (GET /latest/user-data): a configuration file
// (-c FILE) in the test's temporary directory. The mock serves one user
// data per process.
func UserData(t testing.TB, data []byte) []string {
	t.Helper()
	cfg := map[string]any{"userdata": map[string]any{"values": map[string]string{"userdata": base64.StdEncoding.EncodeToString(data)}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "aemm-config.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-c", f}
}
