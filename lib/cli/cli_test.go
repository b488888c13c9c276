package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type echoCmd struct {
	Fail  bool     `help:"Fail with a work failure."`
	Bad   bool     `help:"Fail with a plain error."`
	Words []string `arg:"" optional:""`
}

func (c *echoCmd) Run(ctx context.Context, g *Globals) error {
	if ctx == nil {
		return errors.New("no context bound")
	}
	switch {
	case c.Fail:
		return fmt.Errorf("build: %w", Failed("3 packages failed"))
	case c.Bad:
		return errors.New("scan.txt:3: line without '='")
	}
	fmt.Fprintln(g.Stdout, strings.Join(c.Words, " "))
	return nil
}

type grammar struct {
	Echo echoCmd `cmd:"" help:"Print the words."`
	// Many flags, so that printing the help on a mistake would show.
	Wide wideCmd `cmd:"" help:"A command with many flags."`
}

type wideCmd struct {
	A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T bool `help:"A flag with a long help text that takes room on the screen when help is printed."`
}

func (c *wideCmd) Run() error { return nil }

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{"ok", []string{"echo", "a", "b"}, 0, "a b\n", ""},
		{"work failed", []string{"echo", "--fail"}, 1, "", "tool: build: 3 packages failed"},
		{"bad input", []string{"echo", "--bad"}, 2, "", "tool: scan.txt:3: line without '='"},
		{"unknown flag", []string{"echo", "--nope"}, 2, "", "unknown flag --nope"},
		{"unknown command", []string{"frob"}, 2, "", "tool:"},
		{"help", []string{"--help"}, 0, "Print the words", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			g := &Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
			code := Run(context.Background(), "tool", "A test tool.", &grammar{}, tt.args, g)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if tt.stdout != "" && !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.stdout)
			}
			if tt.code == 2 && out.Len() > 0 {
				t.Errorf("stdout must stay clean on a usage error, got %q", out.String())
			}
			if tt.stderrIn != "" && !strings.Contains(errb.String(), tt.stderrIn) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderrIn)
			}
		})
	}
}

// TestUsageErrorIsShort: a usage mistake prints the error and a pointer to
// the right --help on stderr, two lines in all, and exits 2; stdout stays
// empty (it may be a pipe that expects data).
func TestUsageErrorIsShort(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
		help string
	}{
		{[]string{"wide", "--nope"}, "tool: unknown flag --nope", "tool: run 'tool wide --help' for usage"},
		{[]string{"wide", "--a", "extra"}, "tool: unexpected argument extra", "tool: run 'tool wide --help' for usage"},
		{[]string{"frob"}, "tool: unexpected argument frob", "tool: run 'tool --help' for usage"},
		{[]string{}, "tool: expected one of", "tool: run 'tool --help' for usage"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			g := &Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
			code := Run(context.Background(), "tool", "A test tool.", &grammar{}, tt.args, g)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out.Len() > 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
			lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], tt.msg) || lines[1] != tt.help {
				t.Errorf("stderr:\n%s\nwant two lines: %q... and %q", errb.String(), tt.msg, tt.help)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 2 || ExitCode(fmt.Errorf("w: %w", ErrFailed)) != 1 {
		t.Fatal("ExitCode mapping is wrong")
	}
}
