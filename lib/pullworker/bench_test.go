package pullworker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/pullworker"
)

// The benchmark's worker runs in a child process (this test binary), so
// that it can be killed with SIGKILL like a real one.
const childEnv = "PKGBULK_PULLWORKER_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(benchChild())
	}
	os.Exit(m.Run())
}

// benchChild is a worker whose build says "building" on stdout and then
// waits for its lease to end.
func benchChild() int {
	cfg := strings.Split(os.Getenv(childEnv), "\n") // URL, fingerprint, token file, work root
	if len(cfg) != 4 {
		return 2
	}
	cl, err := pull.NewClient(pull.ClientConfig{URL: cfg[0], Fingerprint: cfg[1]})
	if err != nil {
		return 2
	}
	tok, err := pullworker.ReadToken(cfg[2])
	if err != nil {
		return 2
	}
	tree := filepath.Join(cfg[3], "tree")
	os.MkdirAll(tree, 0o755)
	build := func(ctx context.Context, s job.Settings, st *pullworker.Staging, rec []byte, w io.Writer) pull.ResultReport {
		fmt.Println("building")
		<-ctx.Done()
		return pull.ResultReport{Exit: pull.Exit{Code: 2}}
	}
	w, err := pullworker.New(pullworker.Options{Client: cl, Reader: pullworker.ServerReader{C: cl}, Token: tok,
		Register: pull.RegisterRequest{Host: "bench", Platform: pullworker.LocalPlatform(), Cores: 1},
		Settings: job.Settings{Pkgsrc: tree, WorkRoot: filepath.Join(cfg[3], "work")}, Build: build, PollWait: time.Second})
	if err != nil {
		return 2
	}
	if err := w.Run(context.Background()); err != nil {
		return 2
	}
	return 0
}

// BenchmarkRequeueAfterKill measures how long after a worker process is
// killed with SIGKILL mid-build its job comes back to the scheduler (the
// pull executor's Run returns ErrLost): about the lease's TTL, less the
// time since the last heartbeat. Figures: s/requeue and the TTL.
func BenchmarkRequeueAfterKill(b *testing.B) {
	ttl := 2 * time.Second
	r := newRig(b, ttl)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench%d", i)
		tok, err := pull.AddToken(context.Background(), r.db, name, nil, false)
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(r.dir, name)
		os.MkdirAll(dir, 0o755)
		tokFile := filepath.Join(dir, "token")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{r.ts.URL, r.fp, tokFile, dir}, "\n"))
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sl, err := r.srv.Acquire(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { _, err := sl.Run(context.Background(), record("foo-1.0")); errc <- err }()
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "building" {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatalf("the worker said %q", line)
		}
		killed := time.Now()
		cmd.Process.Kill()
		cmd.Wait()
		err = <-errc
		took := time.Since(killed)
		if !errors.Is(err, executor.ErrLost) {
			b.Fatalf("Run after the kill: %v, want ErrLost", err)
		}
		total += took
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/requeue")
	b.ReportMetric(ttl.Seconds(), "ttl-s")
}
