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
}

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

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 2 || ExitCode(fmt.Errorf("w: %w", ErrFailed)) != 1 {
		t.Fatal("ExitCode mapping is wrong")
	}
}
