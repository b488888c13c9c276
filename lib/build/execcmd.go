package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
)

// ExecCommand is `pkgrun exec`: one command in a fresh job sandbox, as a
// build would see the machine. It is how a real pkgsrc tree is scanned on
// a host that was never bootstrapped (pkgrun exec --bootstrap-kit K
// --pkgsrc T -- pkgscan ...), and how packages are tried by hand.
type ExecCommand struct {
	Pkgsrc       string   `required:"" help:"pkgsrc tree root (read-only in the sandbox)." placeholder:"DIR"`
	BootstrapKit string   `help:"Bootstrap kit, as for a build." placeholder:"FILE"`
	Prefix       string   `help:"Without a kit: where the empty prefix is mounted (default /usr/pkg)." placeholder:"DIR"`
	WorkRoot     string   `help:"Directory for the job directory (default $TMPDIR/pkgrun)." placeholder:"DIR"`
	Network      bool     `help:"Keep the host's network."`
	Bind         []string `sep:"none" help:"HOST[:SANDBOX[:rw]]: show a host directory or file in the sandbox (read-only unless :rw; at the same path unless given). Repeatable." placeholder:"SPEC"`
	Env          []string `sep:"none" help:"KEY=VALUE added to the minimal environment (repeatable)." placeholder:"KEY=VALUE"`
	Dir          string   `help:"Working directory in the sandbox (default /)." placeholder:"DIR"`
	Command      []string `arg:"" passthrough:"" help:"The command and its arguments (after --)."`
}

// Help is kong's long help for pkgrun exec.
func (c *ExecCommand) Help() string {
	return `Run one command in a fresh sandbox of a job: the host's system directories
read-only, the tree read-only at its path, the kit at its own paths over a
private layer, a private /tmp; its standard input and output are pkgrun's,
and pkgrun exits with its status. Example: scan a real tree with the kit's
bmake without bootstrapping the host:
  pkgrun exec --pkgsrc /usr/pkgsrc --bootstrap-kit kit.tgz -- \
      $PWD/bin/pkgscan -C /usr/pkgsrc -M /usr/pkg/bin/bmake -j 8 > pscan`
}

// exitStatus is a command's non-zero exit status, passed on by pkgrun.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("the command exited with status %d", int(e)) }
func (e exitStatus) ExitCode() int { return int(e) }

// Run is pkgrun exec.
func (c *ExecCommand) Run(ctx context.Context, g *cli.Globals) error {
	if len(c.Command) > 0 && c.Command[0] == "--" {
		c.Command = c.Command[1:]
	}
	if len(c.Command) == 0 {
		return errors.New("no command given (pkgrun exec [flags] -- CMD ARGS...)")
	}
	b := &Builder{Settings: job.Settings{
		Pkgsrc: c.Pkgsrc, BootstrapKit: c.BootstrapKit, Prefix: c.Prefix,
		WorkRoot: c.WorkRoot, Environment: c.Env,
	}}
	for _, spec := range c.Bind {
		parts := strings.Split(spec, ":")
		m := sandbox.Mount{Source: parts[0], Target: parts[0]}
		if len(parts) > 1 && parts[1] != "" {
			m.Target = parts[1]
		}
		if len(parts) > 2 {
			if parts[2] != "rw" || len(parts) > 3 {
				return fmt.Errorf("--bind %q: want HOST[:SANDBOX[:rw]]", spec)
			}
			m.Writable = true
		}
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return err
		}
		m.Source = abs
		b.testMounts = append(b.testMounts, m)
	}
	if err := b.Check(); err != nil {
		return err
	}
	r := &run{Builder: b, job: &Job{PkgName: "exec"}}
	if b.Settings.BootstrapKit != "" {
		k, err := openKit(b.Settings.BootstrapKit, b.Settings.WorkRoot)
		if err != nil {
			return fmt.Errorf("bootstrap kit %s: %w", b.Settings.BootstrapKit, err)
		}
		r.kit = k
	}
	if err := os.MkdirAll(b.Settings.WorkRoot, 0o755); err != nil {
		return err
	}
	root, err := os.MkdirTemp(b.Settings.WorkRoot, "exec.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	if r.box, err = r.newBox(root); err != nil {
		return err
	}
	dir := c.Dir
	if dir == "" {
		dir = "/"
	}
	res, err := r.inBox(ctx, sandbox.Cmd{Path: c.Command[0], Args: c.Command[1:], Dir: dir}, c.Network,
		proc.Cmd{Stdin: g.Stdin, Output: g.Stdout, Stderr: g.Stderr})
	if err != nil {
		return err
	}
	switch {
	case res.Why != proc.Finished:
		return fmt.Errorf("the command was stopped: %v", res.Why)
	case res.ExitCode != 0:
		return exitStatus(res.ExitCode)
	}
	return nil
}
