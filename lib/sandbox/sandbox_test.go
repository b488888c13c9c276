package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

func need(t testing.TB) {
	t.Helper()
	if err := sandbox.Available(); err != nil {
		testenv.Skip(t, "sandbox", err.Error())
	}
}

// job is the host side of one sandbox: its root and its own directories.
type job struct {
	dir, root, prefix, tmp string
}

func newJob(t testing.TB, base string) job {
	t.Helper()
	dir, err := os.MkdirTemp(base, "job.")
	if err != nil {
		t.Fatal(err)
	}
	j := job{dir: dir, root: filepath.Join(dir, "root"), prefix: filepath.Join(dir, "prefix"), tmp: filepath.Join(dir, "tmp")}
	for _, d := range []string{j.root, j.prefix, j.tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// spec runs script with sh in j's sandbox: the job's prefix at /usr/pkg,
// its tmp at /tmp, base hidden.
func (j job) spec(base, script string) sandbox.Spec {
	return sandbox.Spec{
		Root: j.root,
		Mounts: []sandbox.Mount{
			{Target: "/usr/pkg", Source: j.prefix, Writable: true},
			{Target: "/tmp", Source: j.tmp, Writable: true},
		},
		Hide: []string{base},
		Cmd:  sandbox.Cmd{Path: "/bin/sh", Args: []string{"-c", script}, Dir: "/", Env: []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin"}},
	}
}

func run(t testing.TB, s sandbox.Spec) (proc.Result, string) {
	t.Helper()
	var out bytes.Buffer
	res, err := sandbox.Run(context.Background(), s, proc.Cmd{Output: &out})
	if err != nil {
		t.Fatalf("sandbox.Run: %v\n%s", err, out.String())
	}
	return res, out.String()
}

// TestConfinement runs, in one sandbox, what a hostile build would try, and
// checks each attempt's exit status from inside and the host afterwards.
func TestConfinement(t *testing.T) {
	need(t)
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	if err := os.Mkdir(canary, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := newJob(t, base)
	upper, work := filepath.Join(j.dir, "upper"), filepath.Join(j.dir, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	cases := []struct {
		name, script string
		wantOK       bool
	}{
		{"write the prefix", "echo built > /usr/pkg/file", true},
		{"write /tmp", "echo x > /tmp/x", true},
		{"write the host's /usr", "touch /usr/pkgbulk-escape", false},
		{"write the host's /etc", "echo x >> /etc/passwd", false},
		{"see the hidden base", "ls " + base + "/canary", false},
		{"read the hidden secret", "cat " + secret, false},
		{"write the canary", "touch " + canary + "/escaped", false},
		{"hard-link out of the prefix", "ln /etc/passwd /usr/pkg/passwd", false},
		{"remount /usr read-write", "mount -o remount,rw /usr", false},
		{"mount a tmpfs", "mount -t tmpfs none /usr/pkg", false},
		{"make a device", "mknod /tmp/disk b 254 0", false},
		{"see host processes", "test $(ls -d /proc/[0-9]* | wc -l) -le 6 && grep -q " + sandbox.InitArg + " /proc/1/cmdline", true},
		{"no network but loopback", "test ! -e /sys/class/net/eth0 || ! grep -q eth0 /proc/net/dev", true},
		{"see /root", "ls /root/.ssh", false},
		{"see the host /tmp", "ls " + base, false},
		{"var/tmp is the job's", "test -z \"$(ls -A /var/tmp)\" && touch /var/tmp/x", true},
		{"kit overlay at /var/pkgvar", "touch /var/pkgvar/x && test -d /var/lib", true},
		{"write the host's /var", "touch /var/lib/pkgbulk-escape", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := j.spec(base, c.script)
			s.Mounts = append(s.Mounts, sandbox.Mount{Target: "/var/pkgvar", Lower: []string{canary}, Upper: upper, Work: work})
			res, out := run(t, s)
			if res.Why != proc.Finished {
				t.Fatalf("stopped by %v", res.Why)
			}
			if ok := res.ExitCode == 0; ok != c.wantOK {
				t.Errorf("%q exited %d, want success=%v; output:\n%s", c.script, res.ExitCode, c.wantOK, out)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(j.prefix, "file")); err != nil || string(b) != "built\n" {
		t.Errorf("the prefix write did not reach the job's directory: %q, %v", b, err)
	}
	if _, err := os.Stat("/usr/pkgbulk-escape"); err == nil {
		os.Remove("/usr/pkgbulk-escape")
		t.Error("a sandboxed command wrote /usr on the host")
	}
	if ents, _ := os.ReadDir(canary); len(ents) != 0 {
		t.Errorf("the canary outside the sandbox is not empty: %v", ents)
	}
}

// TestHiddenBelowPrivate hides a path below /var/tmp, which the sandbox
// replaces with the job's own: the work root of pkgbulk's README lives
// there (/var/tmp/pkgbulk).
func TestHiddenBelowPrivate(t *testing.T) {
	need(t)
	base, err := os.MkdirTemp("/var/tmp", "pkgbulk-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	j := newJob(t, base)
	res, out := run(t, j.spec(base, "ls -A /var/tmp; test ! -e "+base))
	if !res.OK() || out != "" {
		t.Errorf("exit %d, output %q; want an empty /var/tmp of the job's own", res.ExitCode, out)
	}
}

// TestLayers: with Spec.Layers a build may write anywhere (a package whose
// PREFIX is /, create-usergroup's /etc/passwd); the writes stay in the
// job's layers, persist from one command of the job to the next, and the
// host never sees them. The layers live below /var/tmp here, so /var
// itself cannot be an overlay and is split.
func TestLayers(t *testing.T) {
	need(t)
	base, err := os.MkdirTemp("/var/tmp", "pkgbulk-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	j := newJob(t, base)
	layers := filepath.Join(j.dir, "layers")
	os.Mkdir(layers, 0o755)
	marker := "pkgbulk-layer-test-" + filepath.Base(j.dir)
	steps := []string{
		"mkdir -p /etc/rc.d && echo one > /etc/rc.d/" + marker + " && echo 'x:x:4242:4242::/:/bin/sh' >> /etc/passwd && touch /usr/" + marker + " /var/lib/" + marker,
		"cat /etc/rc.d/" + marker + " && grep -q 4242 /etc/passwd && test -e /usr/" + marker + " && test -e /var/lib/" + marker,
	}
	for i, script := range steps {
		s := j.spec(base, script)
		s.Layers = layers
		res, out := run(t, s)
		if !res.OK() {
			t.Fatalf("step %d: exit %d:\n%s", i, res.ExitCode, out)
		}
	}
	for _, p := range []string{"/etc/rc.d/" + marker, "/usr/" + marker, "/var/lib/" + marker} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s reached the host", p)
		}
	}
	if b, _ := os.ReadFile("/etc/passwd"); strings.Contains(string(b), "4242") {
		t.Error("the host's /etc/passwd changed")
	}
	// A fresh job (new layers) sees none of it.
	res, _ := run(t, j.spec(base, "test ! -e /etc/rc.d/"+marker))
	if !res.OK() {
		t.Error("another job saw the first job's /etc")
	}
}

// TestTwoJobs runs two sandboxes at once; each sees only its own prefix at
// /usr/pkg, and neither sees the other's while both are running.
func TestTwoJobs(t *testing.T) {
	need(t)
	base := t.TempDir()
	a, b := newJob(t, base), newJob(t, base)
	os.WriteFile(filepath.Join(a.prefix, "owner"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(b.prefix, "owner"), []byte("b\n"), 0o644)
	// Each waits until the other has written its marker into its own /tmp
	// (seen through the host), so they overlap in time.
	script := func(me, other job) string {
		return fmt.Sprintf(`cat /usr/pkg/owner; touch /tmp/started; i=0
while [ ! -e %s ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
ls -a /usr/pkg; ls %s 2>&1 || true; cat /usr/pkg/owner`, "/tmp/go", other.prefix)
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	for i, pair := range [][2]job{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, outs[i] = run(t, pair[0].spec(base, script(pair[0], pair[1])))
		}()
	}
	// Both started: release them together.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, e1 := os.Stat(filepath.Join(a.tmp, "started"))
		_, e2 := os.Stat(filepath.Join(b.tmp, "started"))
		if e1 == nil && e2 == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.WriteFile(filepath.Join(a.tmp, "go"), nil, 0o644)
	os.WriteFile(filepath.Join(b.tmp, "go"), nil, 0o644)
	wg.Wait()
	for i, want := range []string{"a", "b"} {
		other := []string{"b", "a"}[i]
		lines := strings.Fields(outs[i])
		if len(lines) == 0 || lines[0] != want || lines[len(lines)-1] != want {
			t.Errorf("job %s saw the prefix of another job:\n%s", want, outs[i])
		}
		if strings.Contains(outs[i], "\n"+other+"\n") {
			t.Errorf("job %s saw %s's owner file:\n%s", want, other, outs[i])
		}
		if !strings.Contains(outs[i], "No such file") {
			t.Errorf("job %s could list the other job's directory:\n%s", want, outs[i])
		}
	}
}

// TestKilledLeavesNothing kills a sandbox's caller-side process group in the
// middle of a command that started background processes: no process of it
// and no mount of it may remain.
func TestKilledLeavesNothing(t *testing.T) {
	need(t)
	base := t.TempDir()
	j := newJob(t, base)
	marker := uniqueSleep()
	s := j.spec(base, "sleep "+marker+" & sleep "+marker+" & touch /tmp/ready; wait")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan proc.Result, 1)
	go func() {
		var out bytes.Buffer
		res, _ := sandbox.Run(ctx, s, proc.Cmd{Output: &out})
		done <- res
	}()
	waitFor(t, filepath.Join(j.tmp, "ready"))
	if n := countProcs(marker); n != 2 {
		t.Fatalf("%d sandboxed sleeps running, want 2", n)
	}
	cancel()
	res := <-done
	if res.Why != proc.Canceled {
		t.Errorf("Why = %v, want cancelled", res.Why)
	}
	time.Sleep(100 * time.Millisecond)
	if n := countProcs(marker); n != 0 {
		t.Errorf("%d processes of the killed sandbox still run", n)
	}
	if m := mountsUnder(j.dir); len(m) > 0 {
		t.Errorf("mounts left on the host: %v", m)
	}
}

// TestParentKilled kills -9 a process that runs a sandbox: the sandbox dies
// with it (the init's parent-death signal).
func TestParentKilled(t *testing.T) {
	need(t)
	if os.Getenv("PKGBULK_SANDBOX_CHILD") != "" {
		base := os.Getenv("PKGBULK_SANDBOX_CHILD")
		j := job{dir: base, root: filepath.Join(base, "root"), prefix: filepath.Join(base, "prefix"), tmp: filepath.Join(base, "tmp")}
		run(t, j.spec(filepath.Dir(base), "sleep "+os.Getenv("PKGBULK_SANDBOX_SLEEP")+" & touch /tmp/ready; wait"))
		return
	}
	base := t.TempDir()
	j := newJob(t, base)
	cmd := exec.Command(os.Args[0], "-test.run=^TestParentKilled$")
	marker := uniqueSleep()
	cmd.Env = append(os.Environ(), "PKGBULK_SANDBOX_CHILD="+j.dir, "PKGBULK_SANDBOX_SLEEP="+marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, filepath.Join(j.tmp, "ready"))
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for countProcs(marker) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := countProcs(marker); n != 0 {
		t.Errorf("%d processes survived their caller's kill -9", n)
	}
	if m := mountsUnder(j.dir); len(m) > 0 {
		t.Errorf("mounts left on the host: %v", m)
	}
}

// TestOverlay: a job writes over a shared read-only lower directory; the
// lower stays as it was and the change lands in the job's upper directory.
func TestOverlay(t *testing.T) {
	need(t)
	base := t.TempDir()
	kit := filepath.Join(base, "kit")
	os.MkdirAll(filepath.Join(kit, "bin"), 0o755)
	os.WriteFile(filepath.Join(kit, "bin", "tool"), []byte("kit\n"), 0o644)
	j := newJob(t, base)
	upper, work := filepath.Join(j.dir, "upper"), filepath.Join(j.dir, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	s := j.spec(base, "cat /opt/pkg/bin/tool && echo job > /opt/pkg/bin/tool && rm -f /opt/pkg/bin/tool && echo new > /opt/pkg/new")
	s.Mounts = append(s.Mounts, sandbox.Mount{Target: "/opt/pkg", Lower: []string{kit}, Upper: upper, Work: work})
	res, out := run(t, s)
	if !res.OK() || out != "kit\n" {
		t.Fatalf("exit %d, output %q", res.ExitCode, out)
	}
	if b, _ := os.ReadFile(filepath.Join(kit, "bin", "tool")); string(b) != "kit\n" {
		t.Errorf("the shared lower directory changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "new")); string(b) != "new\n" {
		t.Errorf("the job's write is not in its upper directory: %q", b)
	}
}

// TestSetupError: a sandbox that cannot be built is an ErrSetup, not a
// failed command.
func TestSetupError(t *testing.T) {
	need(t)
	base := t.TempDir()
	j := newJob(t, base)
	s := j.spec(base, "true")
	s.Mounts = append(s.Mounts, sandbox.Mount{Target: "/opt/x", Lower: []string{filepath.Join(base, "nonexistent")}, Upper: j.tmp, Work: j.prefix})
	_, err := sandbox.Run(context.Background(), s, proc.Cmd{Output: &bytes.Buffer{}})
	if !errors.Is(err, sandbox.ErrSetup) {
		t.Fatalf("err = %v, want ErrSetup", err)
	}
	s = j.spec(base, "true")
	s.Cmd.Path = "/nonexistent/program"
	if _, err := sandbox.Run(context.Background(), s, proc.Cmd{Output: &bytes.Buffer{}}); !errors.Is(err, sandbox.ErrSetup) {
		t.Fatalf("missing program: err = %v, want ErrSetup", err)
	}
}

// TestUser runs the command as an unprivileged user.
func TestUser(t *testing.T) {
	need(t)
	base := t.TempDir()
	j := newJob(t, base)
	s := j.spec(base, "id -u; touch /usr/pkg/x")
	s.Cmd.UserSet, s.Cmd.Uid, s.Cmd.Gid = true, 65534, 65534
	res, out := run(t, s)
	if res.OK() || !strings.HasPrefix(out, "65534\n") {
		t.Errorf("as nobody: exit %d, output %q (want uid 65534 and a refused write to root's prefix)", res.ExitCode, out)
	}
}

func waitFor(t testing.TB, file string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(file); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", file)
}

// uniqueSleep is a sleep duration no other process uses, to find the
// sleeps of one test in /proc.
func uniqueSleep() string {
	return fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1000000)
}

func countProcs(marker string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), "sleep\x00") && strings.Contains(string(b), marker) {
			n++
		}
	}
	return n
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// BenchmarkSandbox is the set-up and tear-down of one sandboxed command
// (true) with a prefix, a tmp and an overlay.
func BenchmarkSandbox(b *testing.B) {
	need(b)
	base := b.TempDir()
	kit := filepath.Join(base, "kit")
	os.MkdirAll(kit, 0o755)
	j := newJob(b, base)
	upper, work := filepath.Join(j.dir, "upper"), filepath.Join(j.dir, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	s := j.spec(base, "true")
	s.Cmd = sandbox.Cmd{Path: "/bin/true"}
	s.Mounts = append(s.Mounts, sandbox.Mount{Target: "/var/pkgvar", Lower: []string{kit}, Upper: upper, Work: work})
	for _, net := range []bool{false, true} {
		s.Network = net
		b.Run(fmt.Sprintf("network=%v", net), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res, err := sandbox.Run(context.Background(), s, proc.Cmd{Output: &bytes.Buffer{}})
				if err != nil || !res.OK() {
					b.Fatal(err, res)
				}
			}
		})
	}
}
