package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// stderrKeep is how much of a make's stderr is kept (its tail): enough for
// the last StderrTailLines lines of any sane make error.
const stderrKeep = 64 << 10

// StderrTailLines is how many lines of a failed make's stderr are reported.
const StderrTailLines = 20

// makeRun is the outcome of one make invocation.
type makeRun struct {
	out    []byte // stdout, nil when the run failed
	stderr []byte // tail of stderr
	// fail says why the run counts as failed ("" when it did not): pbulk's
	// two reasons (non-zero exit, NUL in the output) and, for a package scan,
	// empty output.
	fail  string
	start time.Time
}

// runMake runs `make args...` in dir the way pbulk's read_from_child does:
// stdout captured whole, environment and stdin inherited (stdin is not
// given to make here: a scan must not read the terminal). The make and its
// children run in their own process group so that a cancelled scan kills
// the whole group.
func runMake(ctx context.Context, makeProg, dir string, args ...string) makeRun {
	r := makeRun{start: time.Now()}
	cmd := exec.CommandContext(ctx, makeProg, args...)
	cmd.Dir = dir
	var stdout bytes.Buffer
	tail := &tailBuffer{max: stderrKeep}
	cmd.Stdout = &stdout
	cmd.Stderr = tail
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r.stderr = tail.Bytes()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.fail = fmt.Sprintf("%s %s %s", makeProg, joinArgs(args), exitErr.ProcessState.String())
		return r
	default:
		r.fail = fmt.Sprintf("%s %s: %v", makeProg, joinArgs(args), err)
		return r
	}
	if bytes.IndexByte(stdout.Bytes(), 0) >= 0 {
		r.fail = fmt.Sprintf("%s %s printed a NUL byte", makeProg, joinArgs(args))
		return r
	}
	r.out = stdout.Bytes()
	return r
}

func joinArgs(args []string) string {
	var b []byte
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	return string(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	if len(t.buf) > t.max {
		return t.buf[len(t.buf)-t.max:]
	}
	return t.buf
}

// lastLines returns the last n lines of b (without a trailing newline).
func lastLines(b []byte, n int) []byte {
	b = bytes.TrimRight(b, "\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return b
		}
		i = j
	}
	if i == 0 {
		return b
	}
	return b[i+1:]
}
