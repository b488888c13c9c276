// Package cli is the shared frame of every pkgbulk command: kong parsing,
// a signal-aware context, "tool: msg" errors on stderr and one mapping from
// errors to exit codes.
//
// Exit codes, the same for every tool:
//
//	0  success
//	1  the work ran and some of it failed (a package failed to build, a
//	   location failed to scan, a signature did not verify)
//	2  the tool could not do its job: bad usage, bad input, an unreachable
//	   store, an I/O error
//
// Errors are classified by wrapping: return an error that wraps ErrFailed
// for exit 1; anything else that is not nil exits 2. That default is
// deliberate: an unexpected error is never reported as "some packages
// failed".
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"golang.org/x/term"
)

// ErrFailed marks an error as "the work itself failed" (exit 1).
var ErrFailed = errors.New("work failed")

// Failed returns an error that prints as the formatted message and wraps
// ErrFailed, so the tool exits 1.
func Failed(format string, args ...any) error {
	return &failedError{msg: fmt.Sprintf(format, args...)}
}

type failedError struct{ msg string }

func (e *failedError) Error() string        { return e.msg }
func (e *failedError) Is(target error) bool { return target == ErrFailed }

// ExitCoder is an error that carries its own exit code (pkgrun's
// job.ExitNoSpace, say).
type ExitCoder interface {
	error
	ExitCode() int
}

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	var coded ExitCoder
	switch {
	case err == nil:
		return 0
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.Is(err, ErrFailed):
		return 1
	default:
		return 2
	}
}

// Globals are bound into every command's Run so commands can reach the
// standard streams without touching os.* directly (tests swap them).
type Globals struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// IsTerminal reports whether w is a terminal: progress output goes to
// stderr only when it is one.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Main parses args into grammar (a kong struct whose commands have a
// Run(...) error method), runs the selected command with ctx, *Globals and
// the extra bindings, prints a failure as "name: msg" on stderr and returns
// the exit code. A usage mistake (unknown flag, missing argument, bad
// value) prints "name: msg" and "name: run 'name cmd --help' for usage",
// never the help itself, and returns 2. Only main() calls os.Exit.
func Main(name, description string, grammar any, args []string, g *Globals, bindings ...any) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, name, description, grammar, args, g, bindings...)
}

// Run is Main with a caller-supplied context; tests call it directly.
func Run(ctx context.Context, name, description string, grammar any, args []string, g *Globals, bindings ...any) int {
	if g == nil {
		g = &Globals{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	}
	exited := -1
	parser, err := kong.New(grammar,
		kong.Name(name),
		kong.Description(description),
		kong.Writers(g.Stdout, g.Stderr),
		kong.Exit(func(code int) { exited = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(g),
	)
	if err != nil {
		fmt.Fprintf(g.Stderr, "%s: %v\n", name, err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 {
		// --help (and kong's own exits) land here; help is success.
		if exited == 0 {
			return 0
		}
		return 2
	}
	if err != nil {
		// A usage mistake gets one line and a pointer to the help, not the
		// help itself: a typo must not bury its message under a screenful.
		// Both go to stderr: stdout may be a pipe that expects data
		// (pkgrun's JSON, pkgscan's records).
		fmt.Fprintf(g.Stderr, "%s: %v\n", name, oneLine(err))
		var perr *kong.ParseError
		if errors.As(err, &perr) {
			fmt.Fprintf(g.Stderr, "%s: run '%s --help' for usage\n", name, commandPath(name, perr.Context))
		}
		return 2
	}
	err = kctx.Run(bindings...)
	if err != nil {
		fmt.Fprintf(g.Stderr, "%s: %v\n", name, err)
	}
	return ExitCode(err)
}

// commandPath is "tool" or "tool cmd sub": the help that explains the
// command the user was typing.
func commandPath(name string, k *kong.Context) string {
	path := []string{name}
	if k != nil {
		for _, p := range k.Path {
			if p.Command != nil {
				path = append(path, p.Command.Name)
			}
		}
	}
	return strings.Join(path, " ")
}

// oneLine joins the lines of an error message, so a usage error is one
// line whatever kong put in it.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

// FlagGiven reports whether the long flag name was typed on the command
// line, as opposed to holding its default: settings that can also come
// from a file must not be overridden by a flag's default.
func FlagGiven(k *kong.Context, name string) bool {
	if k == nil {
		return false
	}
	for _, p := range k.Path {
		if p.Flag != nil && p.Flag.Name == name {
			return true
		}
	}
	return false
}
