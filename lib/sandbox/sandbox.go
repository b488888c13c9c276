// Package sandbox runs a build's commands in a view of the machine made for
// one job, the way bob's sandboxes and poudriere's jails isolate jobs, so
// that real pkgsrc packages are built at the fixed paths their bootstrap
// kit was made for (/usr/pkg, its pkgdb, VARBASE) while several jobs build
// at once on one host, each seeing only its own prefix.
//
// Every command runs in fresh Linux namespaces (mount, PID, IPC and,
// unless Spec.Network, network) whose first process is the calling program
// itself, re-executed (see Main): it builds the job's root on a tmpfs,
// pivots into it, drops the capabilities a build has no use for, starts
// the command and reaps everything the command leaves behind. Nothing of a
// sandbox exists outside its processes: when the command ends, or the
// caller is killed (the init dies with its parent), the kernel kills every
// process of the PID namespace and the mounts go with the last of them.
// State that outlives one command lives in the job's host directories
// that the Spec mounts (overlay upper directories, the work directory,
// /tmp), so consecutive commands of one job see one consistent machine.
//
// The root is built as follows, in this order:
//
//   - every top-level directory of the host, without the file systems
//     mounted below it, nosuid, nodev: read-only, or, with Spec.Layers, an
//     overlay with the job's own writable layer over it; except /proc, /sys, /dev, /tmp, /run, /home, /root, /mnt, /media,
//     /srv, /boot and /lost+found (symbolic links at the top, such as
//     Debian's /lib -> usr/lib, are copied);
//   - Spec.Hide: host paths replaced by an empty read-only directory
//     (or /dev/null for a file): the work root of other jobs, a file
//     store, key files;
//   - Spec.Mounts, shallowest first: bind mounts of host directories or
//     files (read-only unless Writable), overlays (a job-private upper
//     directory over read-only lower ones, e.g. the unpacked bootstrap
//     kit) and tmpfs. A target whose parent lies in a read-only host
//     directory is made by replacing that directory with a tmpfs that
//     holds read-only binds of each of its entries, so /usr/pkg can exist
//     in the sandbox while /usr stays the host's, read-only;
//   - a fresh /proc for the PID namespace, a /dev with null, zero, full,
//     random, urandom and tty only, a tmpfs /dev/shm and /run, /sys
//     read-only, and /tmp and /var/tmp as the Spec gives them (a tmpfs
//     when it does not).
//
// The command runs as root without CAP_SYS_ADMIN, CAP_SYS_MODULE,
// CAP_SYS_PTRACE, CAP_MKNOD, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN and the
// other capabilities outside Docker's default set (so it can neither
// remount nor mount anything, nor open files by handle), with
// no_new_privs set; or as Cmd.Credential's user.
//
// The caller must be root (or have CAP_SYS_ADMIN) on Linux 5.12 or newer
// (mount_setattr for recursive read-only binds) with overlayfs.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pkgbulk/pkgbulk/lib/proc"
)

// InitArg is the first argument with which the calling program is
// re-executed as the sandbox's init; Main recognises it.
const InitArg = "__pkgbulk-sandbox-init"

// specEnv carries the JSON Spec to the init; the init removes it.
const specEnv = "PKGBULK_SANDBOX_SPEC"

// Spec describes one sandboxed command.
type Spec struct {
	// Root is an empty host directory on which the sandbox's root tmpfs
	// is mounted (only inside the sandbox's mount namespace: on the host
	// it stays empty).
	Root string `json:"root"`
	// Mounts are placed after the host's directories, shallowest first.
	Mounts []Mount `json:"mounts,omitempty"`
	// Hide lists host paths that the sandbox must not see.
	Hide []string `json:"hide,omitempty"`
	// Layers, when set, is a host directory (not below any host directory
	// the sandbox shows) where the job's writable layers over the host's
	// directories are kept: each host directory the sandbox shows is then
	// an overlay, so a build may write anywhere (/etc/rc.d for a package
	// whose PREFIX is /, /etc/passwd for create-usergroup) and the host
	// never sees it. The same Layers in consecutive commands of one job
	// show them one consistent machine. Without it host directories are
	// read-only.
	Layers string `json:"layers,omitempty"`
	// Network keeps the host's network; without it the command gets a
	// network namespace of its own with only the loopback interface.
	Network bool `json:"network,omitempty"`
	// Cmd is what runs inside.
	Cmd Cmd `json:"cmd"`
}

// Mount is one mount inside the sandbox. Exactly one of Source, Lower and
// Tmpfs says what it is.
type Mount struct {
	Target string `json:"target"` // absolute path inside the sandbox
	// Source is a host directory or file to bind at Target.
	Source   string `json:"source,omitempty"`
	Writable bool   `json:"writable,omitempty"` // bind read-write
	// Lower, Upper and Work make an overlay: the host directories Lower
	// (uppermost first) under the writable Upper; Work is overlayfs's
	// scratch directory on Upper's filesystem.
	Lower []string `json:"lower,omitempty"`
	Upper string   `json:"upper,omitempty"`
	Work  string   `json:"work,omitempty"`
	// Tmpfs mounts an empty writable tmpfs.
	Tmpfs bool `json:"tmpfs,omitempty"`
}

// Cmd is the command a sandbox runs. Dir and Path are paths inside the
// sandbox.
type Cmd struct {
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Uid and Gid, when UserSet, run the command as that user (with Gid
	// as its only group); otherwise it runs as root inside.
	UserSet bool   `json:"user_set,omitempty"`
	Uid     uint32 `json:"uid,omitempty"`
	Gid     uint32 `json:"gid,omitempty"`
}

// Validate checks that s can be set up: absolute, clean targets, host
// sources that exist, an overlay's directories given.
func (s *Spec) Validate() error {
	if !filepath.IsAbs(s.Root) {
		return fmt.Errorf("sandbox root %q is not an absolute path", s.Root)
	}
	if s.Layers != "" && (!filepath.IsAbs(s.Layers) || strings.ContainsAny(s.Layers, ",:\\")) {
		return fmt.Errorf("sandbox layers %q: want an absolute path without ',', ':' or '\\'", s.Layers)
	}
	if s.Cmd.Path == "" {
		return errors.New("sandbox: no command")
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) != m.Target || m.Target == "/" {
			return fmt.Errorf("sandbox mount target %q is not a clean absolute path below /", m.Target)
		}
		n := 0
		if m.Source != "" {
			n++
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("sandbox mount %s: %w", m.Target, err)
			}
		}
		if len(m.Lower) > 0 {
			n++
			if m.Upper == "" || m.Work == "" {
				return fmt.Errorf("sandbox overlay %s: no upper or work directory", m.Target)
			}
			for _, p := range append(append([]string{}, m.Lower...), m.Upper, m.Work) {
				if strings.ContainsAny(p, ",:\\") {
					return fmt.Errorf("sandbox overlay %s: path %q contains ',', ':' or '\\'", m.Target, p)
				}
			}
		}
		if m.Tmpfs {
			n++
		}
		if n != 1 {
			return fmt.Errorf("sandbox mount %s: give exactly one of a source, an overlay or tmpfs", m.Target)
		}
	}
	for _, h := range s.Hide {
		if !filepath.IsAbs(h) {
			return fmt.Errorf("sandbox hide %q is not an absolute path", h)
		}
	}
	return nil
}

// Flags are the namespaces of a sandbox's init.
func (s *Spec) flags() uintptr {
	f := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS)
	if !s.Network {
		f |= syscall.CLONE_NEWNET
	}
	return f
}

// Command returns the proc.Cmd that runs s.Cmd in the sandbox: the calling
// program re-executed with InitArg, in new namespaces, its own process
// group leader (so proc's limits kill the whole sandbox), dying with its
// parent. The caller fills the output, stdin and limits.
func Command(s Spec) (proc.Cmd, error) {
	if err := s.Validate(); err != nil {
		return proc.Cmd{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return proc.Cmd{}, fmt.Errorf("sandbox: find own executable: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return proc.Cmd{}, err
	}
	return proc.Cmd{
		Path:       exe,
		Args:       []string{InitArg},
		Dir:        "/",
		Env:        []string{specEnv + "=" + string(b)},
		Cloneflags: s.flags(),
	}, nil
}

// Available reports why sandboxes cannot be made here (nil when they can):
// not root, no overlayfs, or a kernel without mount_setattr.
func Available() error { return available() }

// ErrSetup is wrapped by the error of a sandbox that could not be set up:
// a fault of the builder, not of what ran in it.
var ErrSetup = errors.New("sandbox set-up failed")

// Run runs s in a sandbox under c's output, input and limits (c's Path,
// Args, Env, Dir and Credential are ignored: s.Cmd says what runs). A
// sandbox that could not be set up is an error wrapping ErrSetup; what the
// command did is the Result.
func Run(ctx context.Context, s Spec, c proc.Cmd) (proc.Result, error) {
	sc, err := Command(s)
	if err != nil {
		return proc.Result{}, err
	}
	sc.Output, sc.Stderr, sc.Stdin = c.Output, c.Stderr, c.Stdin
	sc.Deadline, sc.NoOutput, sc.Watch = c.Deadline, c.NoOutput, c.Watch
	r, w, err := os.Pipe()
	if err != nil {
		return proc.Result{}, err
	}
	defer r.Close()
	sc.ExtraFiles = []*os.File{w}
	res, err := proc.Run(ctx, sc)
	w.Close()
	if err != nil {
		return res, err
	}
	msg, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	if len(msg) > 0 {
		return res, fmt.Errorf("%w: %s", ErrSetup, msg)
	}
	return res, nil
}
