package slurmexec_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/slurmexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/version"
)

// deadSchedEnv makes the test binary a scheduler that runs one hanging
// job through srun and waits to be killed (see deadScheduler).
const deadSchedEnv = "PKGBULK_SLURM_TEST_SCHEDULER"

func TestMain(m *testing.M) {
	if os.Getenv(deadSchedEnv) != "" && os.Getenv(executortest.FakeEnv) == "" {
		os.Exit(deadScheduler())
	}
	executortest.Main(m)
}

// deadScheduler runs hang-1.0 through a Slurm executor configured by the
// environment; the test kills it with SIGKILL while the job runs.
func deadScheduler() int {
	os.Unsetenv(deadSchedEnv) // srun passes the environment on
	g := os.Getenv
	e, err := slurmexec.New(slurmexec.Config{Partition: g("T_PARTITION"), Slots: 1, Pkgrun: g("T_PKGRUN"), Conf: g("T_CONF"),
		Tag: g("T_TAG"), Settings: executortest.Settings(g("T_DIR"), 0)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := e.Acquire(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s.Run(context.Background(), executor.Job{PkgName: "hang-1.0", Record: []byte("PKGNAME=hang-1.0\nPKG_LOCATION=test/hang\n"), Attempt: 1})
	return 0
}

// TestCleanStale kills a scheduler with SIGKILL while its job runs in
// Slurm (its srun lives on, in its own process group): the next run's
// executor (same tag) scancels that job, waits until Slurm no longer
// lists it and removes its job directory on its node; a job of another
// run with the same name is left alone, and so are stale jobs of other
// executors.
func TestCleanStale(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	pkgrun := executortest.FakePkgrun(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Another run's job of the same name, which must survive.
	other := exec.Command("srun", "--quiet", "--job-name=hang-1.0", "--comment="+slurmexec.Comment("another run"), "--ntasks=1", "--cpus-per-task=1", "sleep", "300")
	other.Env = append(os.Environ(), "SLURM_CONF="+c.Conf)
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-other.Process.Pid, syscall.SIGKILL); other.Wait() }()

	started := time.Now()
	sched := exec.Command(self, "-test.run=^$")
	sched.Env = append(os.Environ(), deadSchedEnv+"=1", "T_PARTITION="+c.Partition, "T_PKGRUN="+pkgrun, "T_CONF="+c.Conf,
		"T_TAG="+t.Name(), "T_DIR="+dir)
	sched.Stderr = os.Stderr
	if err := sched.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, "running.hang-1.0")); err == nil {
			break
		}
		if i == 600 {
			sched.Process.Kill()
			sched.Wait()
			t.Fatalf("the job never started; squeue:\n%s", c.squeue(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	sched.Process.Kill()
	sched.Wait()
	if left := executortest.JobDirs(t, dir); len(left) != 1 {
		t.Fatalf("job directories of the killed scheduler's job: %v, want one", left)
	}
	if q := c.squeue(t); strings.Count(q, "hang-1.0 RUNNING") != 2 {
		t.Fatalf("want both jobs still running after the scheduler died, squeue:\n%s", q)
	}

	e := c.newExec(t, pkgrun, executortest.Settings(dir, 0), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := e.CleanStale(ctx, []executor.StaleJob{{PkgName: "hang-1.0", Worker: "local/1", Started: started}})
	if err != nil || len(got) != 0 {
		t.Fatalf("CleanStale of another executor's job: %v %v", got, err)
	}
	got, err = e.CleanStale(ctx, []executor.StaleJob{{PkgName: "hang-1.0", Worker: "slurm/1", Started: started}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Err != nil || got[0].PkgName != "hang-1.0" || !strings.Contains(got[0].Path, dir+"/hang-1.0.") {
		t.Errorf("CleanStale: %+v, want the job directory of hang-1.0 removed", got)
	}
	if left := executortest.JobDirs(t, dir); len(left) != 0 {
		t.Errorf("job directories left: %v", left)
	}
	if q := c.squeue(t); strings.Count(q, "hang-1.0 RUNNING") != 1 {
		t.Errorf("want only the other run's job left, squeue:\n%s", q)
	}
}

// TestVersionCheck: the first Acquire runs pkgrun version --json on a node
// once; a missing pkgrun or one that speaks another job protocol is an
// error naming both versions, from every Acquire, and no job is started.
func TestVersionCheck(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	mismatch := filepath.Join(dir, "pkgrun-new")
	script := fmt.Sprintf("#!/bin/sh\necho x >> %s\necho '{\"pkgbulk\":\"v9.0.0\",\"protocol\":%d,\"result\":1}'\n", count, job.ProtocolVersion+1)
	if err := os.WriteFile(mismatch, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pkgrun string
		want         string
	}{
		{"missing", filepath.Join(dir, "no-pkgrun"), "no pkgrun at " + filepath.Join(dir, "no-pkgrun")},
		{"mismatch", mismatch, fmt.Sprintf("speaks job protocol %d (pkgbulk v9.0.0), this scheduler speaks %d (pkgbulk %s)",
			job.ProtocolVersion+1, job.ProtocolVersion, version.Current().Pkgbulk)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := c.newExec(t, tc.pkgrun, executortest.Settings(dir, 0), 1)
			for range 2 {
				_, err := e.Acquire(context.Background())
				if !errors.Is(err, version.ErrIncompatible) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "slurm") {
					t.Fatalf("Acquire: %v, want an error saying %q", err, tc.want)
				}
			}
		})
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "x") != 1 {
		t.Errorf("pkgrun asked %d times, want once", strings.Count(string(b), "x"))
	}
	e := c.newExec(t, executortest.FakePkgrun(t), executortest.Settings(dir, 0), 1)
	s, err := e.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	if e.Remote() != version.Current() {
		t.Errorf("the nodes' pkgrun: %+v, want %+v", e.Remote(), version.Current())
	}
}

// TestCores: a slot grows up to cores= and no further, and srun asks for
// the job's MAKE_JOBS (the task sees SLURM_CPUS_PER_TASK).
func TestCores(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	pkgrun := filepath.Join(dir, "pkgrun")
	script := fmt.Sprintf(`#!/bin/sh
case $1 in version) echo '{"pkgbulk":"t","protocol":%d,"result":1}'; exit 0;; esac
name=$(sed -n 's/^PKGNAME=//p')
printf '{"version":1,"pkgname":"%%s","pkgpath":"x/y","status":"done","message":"cpus=%%s"}\n' "$name" "$SLURM_CPUS_PER_TASK"
`, job.ProtocolVersion)
	if err := os.WriteFile(pkgrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := slurmexec.New(slurmexec.Config{Partition: c.Partition, Slots: 2, Cores: 2, Pkgrun: pkgrun, Conf: c.Conf, Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		grow, makeJobs int
		got, want      int // Grow's answer; the CPUs the task got
	}{
		{0, 0, 0, 1},
		{5, 2, 1, 2},
		{1, 0, 1, 2},
	} {
		s, err := e.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cs := s.(executor.CoreSlot)
		if got := cs.Grow(tc.grow); got != tc.got || cs.Cores() != 2 || cs.FreeCores() != 1-got {
			t.Errorf("Grow(%d) = %d, free %d; want %d, %d", tc.grow, got, cs.FreeCores(), tc.got, 1-tc.got)
		}
		rec := []byte("PKGNAME=noop-1.0\nPKG_LOCATION=x/y\n")
		out, err := s.Run(ctx, executor.Job{PkgName: "noop-1.0", Record: rec, Attempt: 1, MakeJobs: tc.makeJobs})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("cpus=%d", tc.want); out.Result.Message != want {
			t.Errorf("grow %d, MAKE_JOBS %d: the task saw %q, want %s", tc.grow, tc.makeJobs, out.Result.Message, want)
		}
	}
}
