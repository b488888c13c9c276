package build

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
)

// InstallerArg is the first argument with which pkgrun runs its own
// installer (see installer) inside a job's sandbox, for kits without
// pkg_install: pkgrun __pkgbulk-install add|delete --prefix DIR --pkgdb
// DIR [--script-user UID:GID] -- FILE...|PKGNAME.
const InstallerArg = "__pkgbulk-install"

// Main handles pkgrun's re-executions of itself: the sandbox's init and
// the built-in installer. It returns at once for any other command line;
// call it first thing in main (and in TestMain of tests that build).
func Main() {
	sandbox.Main()
	if len(os.Args) < 2 || os.Args[1] != InstallerArg {
		return
	}
	os.Exit(installerMain(os.Args[2:], os.Stdout))
}

// ErrNoSpace is wrapped by the error of a job that stopped because the
// builder ran out of disk space: pkgrun exits job.ExitNoSpace.
var ErrNoSpace = errors.New("the builder is out of disk space")

// noSpaceError carries pkgrun's exit code for ErrNoSpace.
type noSpaceError struct{ err error }

func (e noSpaceError) Error() string        { return e.err.Error() }
func (e noSpaceError) Unwrap() error        { return e.err }
func (e noSpaceError) Is(target error) bool { return target == ErrNoSpace }
func (e noSpaceError) ExitCode() int        { return job.ExitNoSpace }

func installerMain(args []string, log io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(log, "pkgrun: installer: no operation")
		return 2
	}
	op := args[0]
	fs := flag.NewFlagSet("pkgrun installer", flag.ContinueOnError)
	fs.SetOutput(log)
	prefix := fs.String("prefix", "", "installation prefix")
	pkgdb := fs.String("pkgdb", "", "package database")
	user := fs.String("script-user", "", "run +INSTALL/+DEINSTALL as UID:GID")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *prefix == "" || *pkgdb == "" {
		fmt.Fprintln(log, "pkgrun: installer: --prefix and --pkgdb are required")
		return 2
	}
	var cred *syscall.Credential
	if *user != "" {
		u, g, ok := strings.Cut(*user, ":")
		uid, err1 := strconv.ParseUint(u, 10, 32)
		gid, err2 := strconv.ParseUint(g, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			fmt.Fprintf(log, "pkgrun: installer: --script-user %q is not UID:GID\n", *user)
			return 2
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
	}
	in := &installer{prefix: *prefix, pkgdb: *pkgdb, log: log}
	in.script = func(ctx context.Context, dir string, env []string, argv ...string) error {
		fmt.Fprintf(log, "pkgrun: %s\n", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, append(os.Environ(), env...), log, log
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd.Run()
	}
	ctx := context.Background()
	var err error
	switch op {
	case "add":
		for _, f := range fs.Args() {
			if _, err = in.install(ctx, f); err != nil {
				break
			}
		}
	case "delete":
		for _, p := range fs.Args() {
			if err = in.deinstall(ctx, p); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	if err != nil {
		fmt.Fprintf(log, "pkgrun: %v\n", err)
		if errors.Is(err, syscall.ENOSPC) {
			return job.ExitNoSpace
		}
		return 1
	}
	return 0
}
