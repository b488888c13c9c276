package slurmexec_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/slurmexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// cluster is a slurmctld and a slurmd on loopback with their own munged.
type cluster struct {
	Conf      string // slurm.conf, for SLURM_CONF
	Partition string
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDaemon starts a background program killed at cleanup.
func startDaemon(t testing.TB, log string, env []string, name string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
	})
}

// killStepds kills the slurmstepd processes with a file open in dir.
func killStepds(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		comm, _ := os.ReadFile(p + "/comm")
		if !strings.HasPrefix(string(comm), "slurmstepd") {
			continue
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, dir+"/") {
				if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
	}
}

// startCluster starts munged, slurmctld and slurmd (one node: this host,
// 2 CPUs, partition "debug") in a temporary directory, without systemd,
// and waits until the node is idle. It skips when Slurm is not installed.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	for _, p := range []string{"slurmctld", "slurmd", "munged", "srun", "sinfo"} {
		if _, err := exec.LookPath(p); err != nil {
			if _, err := os.Stat("/usr/sbin/" + p); err != nil {
				testenv.Skip(t, "slurm", p+" is not installed (scripts/setup.sh --test installs slurm-wlm and munge)")
			}
		}
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "slurm", "slurmd and the test jobs need root")
	}
	dir, err := os.MkdirTemp("", "pkgbulk-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// After the daemons: slurmstepds of cancelled steps can outlive
	// slurmd; kill those of this cluster (they hold its slurmd.log).
	t.Cleanup(func() { killStepds(dir) })
	for _, d := range []string{"state", "spool", "run", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Read(key)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "munge.key")
	if err := os.WriteFile(keyFile, key, 0o400); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "munge.sock")
	munged := exec.Command("munged", "--foreground", "--force", "--socket="+sock, "--key-file="+keyFile,
		"--pid-file="+filepath.Join(dir, "run", "munged.pid"), "--log-file="+filepath.Join(dir, "log", "munged.log"),
		"--seed-file="+filepath.Join(dir, "run", "munge.seed"))
	if _, err := exec.LookPath("munged"); err != nil {
		munged.Path = "/usr/sbin/munged"
	}
	startDaemon(t, filepath.Join(dir, "log", "munged.out"), nil, munged.Path, munged.Args[1:]...)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ = strings.Cut(host, ".")
	conf := filepath.Join(dir, "slurm.conf")
	text := fmt.Sprintf(`ClusterName=pkgbulktest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[4]s
StateSaveLocation=%[5]s/state
SlurmdSpoolDir=%[5]s/spool
SlurmctldPidFile=%[5]s/run/slurmctld.pid
SlurmdPidFile=%[5]s/run/slurmd.pid
SlurmctldLogFile=%[5]s/log/slurmctld.log
SlurmdLogFile=%[5]s/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
KillWait=2
SlurmdParameters=config_overrides
NodeName=%[1]s NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=%[1]s Default=YES MaxTime=INFINITE State=UP
`, host, freePort(t), freePort(t), sock, dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"SLURM_CONF=" + conf}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "log", "munged.log"))
			t.Fatalf("munged did not start:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	startDaemon(t, filepath.Join(dir, "log", "slurmctld.out"), env, "slurmctld", "-D", "-i", "-f", conf)
	startDaemon(t, filepath.Join(dir, "log", "slurmd.out"), env, "slurmd", "-D", "-f", conf)
	for {
		cmd := exec.Command("sinfo", "--noheader", "--format=%t", "--partition=debug")
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.Output()
		if strings.TrimSpace(string(out)) == "idle" {
			break
		}
		if time.Now().After(deadline) {
			var logs string
			for _, l := range []string{"slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"} {
				b, _ := os.ReadFile(filepath.Join(dir, "log", l))
				logs += "--- " + l + "\n" + string(b)
			}
			t.Fatalf("the Slurm node is not idle after 20s (sinfo: %q):\n%s", out, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &cluster{Conf: conf, Partition: "debug"}
}

func (c *cluster) newExec(t testing.TB, pkgrun string, s job.Settings, slots int) *slurmexec.Executor {
	t.Helper()
	e, err := slurmexec.New(slurmexec.Config{Partition: c.Partition, Slots: slots, Pkgrun: pkgrun, Settings: s,
		Tag: t.Name(), Conf: c.Conf, Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// squeue lists the jobs in the cluster's queue.
func (c *cluster) squeue(t testing.TB) string {
	cmd := exec.Command("squeue", "--noheader", "--format=%i %j %T")
	cmd.Env = append(os.Environ(), "SLURM_CONF="+c.Conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("squeue: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSuite runs the conformance suite through a real slurmctld and
// slurmd on loopback.
func TestSuite(t *testing.T) {
	c := startCluster(t)
	pkgrun := executortest.FakePkgrun(t)
	executortest.Run(t, func(t *testing.T, s job.Settings, slots int) executor.Executor {
		return c.newExec(t, pkgrun, s, slots)
	})
	if q := c.squeue(t); q != "" {
		t.Errorf("jobs left in Slurm's queue:\n%s", q)
	}
}

// BenchmarkDispatch measures the wall time per no-op job through srun.
func BenchmarkDispatch(b *testing.B) {
	c := startCluster(b)
	e := c.newExec(b, executortest.FakePkgrun(b), executortest.Settings(b.TempDir(), 0), 2)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := e.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("noop%d-1.0", i)
		rec := []byte("PKGNAME=" + name + "\nPKG_LOCATION=test/noop\n")
		if _, err := s.Run(ctx, executor.Job{PkgName: name, Record: rec, Attempt: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/job")
}

// TestCancelQueued cancels jobs both while Slurm still queues them (every
// CPU is taken) and while they run: Run returns only when Slurm's queue no
// longer holds them.
func TestCancelQueued(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	e := c.newExec(t, executortest.FakePkgrun(t), executortest.Settings(dir, 0), 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ran struct {
		name string
		err  error
	}
	results := make(chan ran, 3)
	for _, name := range []string{"hang-1.0", "hangtoo-1.0", "hangthree-1.0"} {
		s, err := e.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			rec := []byte("PKGNAME=" + name + "\nPKG_LOCATION=test/x\n")
			_, err := s.Run(ctx, executor.Job{PkgName: name, Record: rec, Attempt: 1})
			results <- ran{name, err}
		}()
	}
	// Two run (2 CPUs), one waits in the queue.
	deadline := time.Now().Add(20 * time.Second)
	for {
		q := c.squeue(t)
		if strings.Count(q, "RUNNING") == 2 && strings.Count(q, "PENDING") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 2 running jobs and 1 pending, squeue:\n%s", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	for range 3 {
		r := <-results
		if !errors.Is(r.err, context.Canceled) || errors.Is(r.err, executor.ErrCrash) {
			t.Errorf("%s: error %v, want context.Canceled and no crash", r.name, r.err)
		}
	}
	if q := c.squeue(t); q != "" {
		t.Errorf("jobs left in Slurm's queue after Run returned:\n%s", q)
	}
	if left := executortest.JobDirs(t, dir); len(left) > 0 {
		t.Errorf("cancelled builders left job directories: %v", left)
	}
}
