// Package protocol is the pkgrun protocol as every executor speaks it: the
// settings document a builder gets (pkgrun --job FILE), the presolve
// record on its stdin, and the reading of what it left behind (exit code
// or signal, one job.Result on stdout, the tail of stderr) as an
// executor.Outcome or an error wrapping executor.ErrCrash, ErrLost or
// ErrNoSpace. An executor only moves bytes and processes: local runs
// pkgrun as a child, ssh in a session on another machine, and both hand
// what they saw to Interpret.
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

// MaxStdout bounds what is kept of pkgrun's stdout: a result is a few kB.
const MaxStdout = 4 << 20

// StderrTail is how much of pkgrun's stderr is kept for crash reports.
const StderrTail = 4 << 10

// SettingsDocument is the JSON job document handed to every pkgrun.
func SettingsDocument(s job.Settings) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode pkgrun settings: %w", err)
	}
	return append(b, '\n'), nil
}

// Exit is how a builder process ended.
type Exit struct {
	Code    int    // exit status when Signal is 0
	Signal  int    // the signal that killed it, 0 when it exited
	SigName string // the signal's name when known ("killed", "KILL")
}

// Observed is what an executor saw of one pkgrun run.
type Observed struct {
	Worker string // the slot's name, for messages and Result.Host
	Exit   Exit
	Stdout []byte // at most MaxStdout bytes
	Over   bool   // stdout was longer than MaxStdout
	Stderr string // the tail of stderr
}

// Interpret reads a finished pkgrun run: exit 0 with a done or up-to-date
// result and exit 1 with a failed, skew or timeout result are builds;
// exit job.ExitNoSpace is a builder out of disk space
// (*executor.NoSpaceError); anything else (exit 2 or another code, a
// signal, a result that is missing, does not parse or contradicts the exit
// code) is a crash (*executor.CrashError).
func Interpret(o Observed) (*executor.Outcome, error) {
	crash := func(format string, args ...any) error {
		return &executor.CrashError{Worker: o.Worker, Reason: fmt.Sprintf(format, args...), Stderr: o.Stderr}
	}
	if o.Exit.Signal != 0 {
		name := o.Exit.SigName
		if name == "" {
			name = "signal"
		}
		return nil, crash("pkgrun killed by signal %d (%s)", o.Exit.Signal, name)
	}
	code := o.Exit.Code
	if code == job.ExitNoSpace {
		return nil, &executor.NoSpaceError{Worker: o.Worker, Stderr: o.Stderr}
	}
	if code != 0 && code != 1 {
		return nil, crash("pkgrun exit status %d", code)
	}
	if o.Over {
		return nil, crash("pkgrun printed more than %d bytes on stdout", MaxStdout)
	}
	r, err := job.DecodeResult(o.Stdout)
	if err != nil {
		return nil, crash("garbage on pkgrun's stdout (exit status %d): %v: %q", code, err, clip(o.Stdout))
	}
	if r.Status.Success() != (code == 0) {
		return nil, crash("pkgrun exit status %d contradicts its result status %q", code, r.Status)
	}
	if r.Host == "" {
		r.Host = o.Worker
	}
	return &executor.Outcome{Result: r, Stderr: o.Stderr}, nil
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// LimitedBuffer keeps the first Max bytes written and notes overflow in
// Over; writes never fail.
type LimitedBuffer struct {
	bytes.Buffer
	Max  int
	Over bool
}

func (b *LimitedBuffer) Write(p []byte) (int, error) {
	if room := b.Max - b.Len(); len(p) > room {
		b.Over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// TailBuffer keeps the last Max bytes written.
type TailBuffer struct {
	b   []byte
	Max int
}

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

func (t *TailBuffer) String() string { return string(t.b) }
