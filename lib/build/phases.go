package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// phaseRun is one phase in progress: its log and what its commands cost.
type phaseRun struct {
	r    *run
	name string
	log  *os.File
	cpu  time.Duration
	why  proc.Why
	msg  string // why the phase failed, for Result.Message
}

// phase runs body as the phase name with its log <name>.log (opened for
// appending) and records it in the result. ok is false when the phase
// failed; err is for a job that cannot go on (cancelled, could not start
// make, I/O errors of the sandbox).
func (r *run) phase(ctx context.Context, name string, body func(p *phaseRun) (bool, error)) (bool, error) {
	r.progress("%s", name)
	f, err := os.OpenFile(filepath.Join(r.logdir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	p := &phaseRun{r: r, name: name, log: f}
	start := time.Now()
	ok, err := body(p)
	r.res.Phases = append(r.res.Phases, job.Phase{
		Name: name, OK: ok && err == nil,
		WallMS: time.Since(start).Milliseconds(), CPUMS: p.cpu.Milliseconds(),
	})
	r.res.CPUMS += p.cpu.Milliseconds()
	r.sample()
	if err != nil {
		return false, err
	}
	if p.why == proc.Canceled || ctx.Err() != nil {
		return false, fmt.Errorf("%s: interrupted during %s: %w", r.job.PkgName, name, context.Canceled)
	}
	if !ok && r.outOfSpace() {
		// The build may have failed for want of space: the builder's
		// fault, not the package's.
		fmt.Fprintf(f, "pkgrun: the work root %s is out of space\n", r.WorkRoot())
		return false, noSpaceError{fmt.Errorf("%s: the %s phase failed with the work root %s full: %w", r.job.PkgName, name, r.WorkRoot(), ErrNoSpace)}
	}
	if !ok {
		r.res.FailedPhase = name
		r.res.Status = job.StatusFailed
		r.lastWhy = p.why
		r.res.Message = p.msg
		if p.why == proc.WallTime || p.why == proc.NoOutput {
			r.checkTimeout(ctx, name)
		}
		fmt.Fprintf(f, "pkgrun: %s\n", r.res.Message)
	}
	return ok, nil
}

// make runs one make target in the package directory, logging to the
// phase log; plain selects make clean's argument list.
func (p *phaseRun) make(ctx context.Context, plain bool, target string, extra ...string) (bool, error) {
	r := p.r
	args := r.makeArgs(target, extra...)
	if plain {
		args = append(r.plainArgs(target), extra...)
	}
	cred := r.credential(p.name, target)
	as := ""
	if cred != nil {
		as = " (as " + r.Settings.UnprivUser + ")"
	}
	if n := r.job.MakeJobs; n > 0 && p.name == "build" {
		fmt.Fprintf(p.log, "pkgrun: MAKE_JOBS=%d (granted by the scheduler)\n", n)
	}
	fmt.Fprintf(p.log, "pkgrun: %s %s%s\n", r.box.make, strings.Join(args, " "), as)
	// Only the checksum phase fetches: the others get no network.
	res, err := r.inBox(ctx, sandbox.Cmd{Path: r.box.make, Args: args, Dir: r.pkgdir}, p.name == "checksum", proc.Cmd{
		Output: p.log, Deadline: r.deadline, NoOutput: r.noOutput, Watch: []string{p.log.Name(), r.workLog()},
		Credential: cred,
	})
	if err != nil {
		return false, err
	}
	p.cpu += res.CPU
	if !res.OK() {
		p.why = res.Why
		p.msg = fmt.Sprintf("%s: make %s failed in %s phase (%s)", r.job.PkgName, target, p.name, describe(res))
		return false, nil
	}
	return true, nil
}

// credential says whom a make target runs as (spec §2.1): when pkgrun is
// root and an unprivileged user is configured, configure and build run as
// that user, and install too for USE_DESTDIR=user-destdir; everything else
// (and create-usergroup, which must create accounts) runs as root.
func (r *run) credential(phase, target string) *syscall.Credential {
	if r.unpriv == nil || target == "create-usergroup" {
		return nil
	}
	switch phase {
	case "configure", "build":
		return r.unpriv
	case "install":
		if r.job.UseDestdir == "user-destdir" {
			return r.unpriv
		}
	}
	return nil
}

// inProcess runs Go code as (part of) a phase, charging the CPU time
// pkgrun and its reaped children spent to the phase.
func (p *phaseRun) inProcess(fn func() error) error {
	before := cpuNow()
	err := fn()
	p.cpu += cpuNow() - before
	return err
}

func cpuNow() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// phases runs pkg-build's steps 3 to 14. ok reports success.
func (r *run) phases(ctx context.Context) (bool, error) {
	j := r.job
	steps := []struct {
		name string
		body func(p *phaseRun) (bool, error)
	}{
		{"pre-clean", func(p *phaseRun) (bool, error) { return p.make(ctx, true, "clean") }},
		{"depends", func(p *phaseRun) (bool, error) { return r.installDepends(ctx, p) }},
		{"checksum", func(p *phaseRun) (bool, error) { return r.checksum(ctx, p) }}, // distfiles.go
		{"configure", func(p *phaseRun) (bool, error) {
			if strings.HasSuffix(j.UsergroupPhase, "configure") {
				if ok, err := p.make(ctx, false, "create-usergroup"); !ok || err != nil {
					return ok, err
				}
			}
			return p.make(ctx, false, "configure")
		}},
		{"build", func(p *phaseRun) (bool, error) {
			if strings.HasSuffix(j.UsergroupPhase, "build") {
				if ok, err := p.make(ctx, false, "create-usergroup"); !ok || err != nil {
					return ok, err
				}
			}
			return p.make(ctx, false, "all")
		}},
		{"install", func(p *phaseRun) (bool, error) {
			if j.UsergroupPhase == "pre-install" {
				if ok, err := p.make(ctx, false, "create-usergroup"); !ok || err != nil {
					return ok, err
				}
			}
			return p.make(ctx, false, "stage-install")
		}},
	}
	for _, s := range steps {
		if ok, err := r.phase(ctx, s.name, s.body); !ok || err != nil {
			return false, err
		}
	}

	// The package: stage-package-create and STAGE_PKGFILE where the tree
	// has them, make package and PKGFILE in older trees.
	var pkgfile string
	installed := false
	ok, err := r.phase(ctx, "package", func(p *phaseRun) (bool, error) {
		target, file := "stage-package-create", r.stagePkgfile
		if file == "" {
			target, file = "package", r.pkgfile
		}
		if file == "" {
			p.msg = fmt.Sprintf("%s: make defines neither STAGE_PKGFILE nor PKGFILE in %s", j.PkgName, j.PkgLocation)
			return false, nil
		}
		if ok, err := p.make(ctx, false, target); !ok || err != nil {
			return ok, err
		}
		host, err := r.box.hostPath(file)
		if err != nil {
			p.msg = fmt.Sprintf("%s: package file: %v", j.PkgName, err)
			return false, nil
		}
		if fi, err := os.Lstat(host); err != nil || !fi.Mode().IsRegular() {
			p.msg = fmt.Sprintf("%s: %s does not exist after make %s", j.PkgName, file, target)
			return false, nil
		}
		pkgfile = host
		if j.BootstrapPkg != "" {
			return true, nil
		}
		if target == "package" && r.isInstalled(ctx, p) {
			// An older tree's make package installed it already.
			installed = true
			return true, nil
		}
		// The install test, as pkg-build does it.
		if err := r.pkgAdd(ctx, p, file); err != nil {
			if errors.Is(err, sandbox.ErrSetup) || ctx.Err() != nil {
				return false, err
			}
			p.msg = fmt.Sprintf("%s: install test of %s failed: %v", j.PkgName, path.Base(file), err)
			fmt.Fprintf(p.log, "pkgrun: %v\n", err)
			return false, nil
		}
		installed = true
		return true, nil
	})
	if !ok || err != nil {
		return false, err
	}

	if j.BootstrapPkg == "" && installed {
		ok, err := r.phase(ctx, "deinstall", func(p *phaseRun) (bool, error) {
			if err := r.pkgDelete(ctx, p, j.PkgName); err != nil {
				if errors.Is(err, sandbox.ErrSetup) || ctx.Err() != nil {
					return false, err
				}
				p.msg = fmt.Sprintf("%s: deinstall test failed: %v", j.PkgName, err)
				fmt.Fprintf(p.log, "pkgrun: %v\n", err)
				return false, nil
			}
			return true, nil
		})
		if !ok || err != nil {
			return false, err
		}
	}

	// Step 13: the package, then its fragment, so the index never names a
	// package the store does not have.
	name := "All/" + j.PkgName + r.suffix()
	upload := filepath.Join(r.root, "upload")
	if err := os.MkdirAll(upload, 0o755); err != nil {
		return false, err
	}
	local := filepath.Join(upload, j.PkgName+r.suffix())
	if err := linkOrCopy(pkgfile, local); err != nil {
		return false, err
	}
	if err := r.putFile(ctx, name, local); err != nil {
		return false, err
	}
	r.res.Package = name
	if err := r.putFragment(ctx, local); err != nil {
		return false, err
	}

	// Step 14: a failed clean is recorded, not fatal (pkg-build 1.29).
	if ok, err := r.phase(ctx, "clean", func(p *phaseRun) (bool, error) { return p.make(ctx, true, "clean") }); err != nil {
		return false, err
	} else if !ok {
		r.res.FailedPhase = ""
		r.res.Message = "make clean failed after the package was stored (ignored)"
	}
	r.res.Status = job.StatusDone
	// Step 15: a log directory exists iff the last attempt failed.
	if err := r.deleteLogs(ctx, nil); err != nil {
		return false, err
	}
	return true, nil
}

// pkgAdd installs package files (sandbox paths) into the job's prefix with
// the kit's pkg_add (PKG_PATH at the fetched dependencies, as pbulk's
// pkg_add_normal), or with pkgrun's own installer when the kit has none.
func (r *run) pkgAdd(ctx context.Context, p *phaseRun, files ...string) error {
	if r.box.pkgAdd != "" {
		argv := append([]string{r.box.pkgAdd, "-K", r.pkgdb}, files...)
		return r.command(ctx, p, argv, "PKG_PATH="+boxDeps)
	}
	return r.command(ctx, p, append(r.installerArgs("add"), files...))
}

// pkgDelete removes pkg from the job's prefix.
func (r *run) pkgDelete(ctx context.Context, p *phaseRun, pkg string) error {
	if r.box.pkgDelete != "" {
		return r.command(ctx, p, []string{r.box.pkgDelete, "-K", r.pkgdb, pkg})
	}
	return r.command(ctx, p, append(r.installerArgs("delete"), pkg))
}

// isInstalled reports whether the package is registered in the job's
// pkgdb.
func (r *run) isInstalled(ctx context.Context, p *phaseRun) bool {
	var out bytes.Buffer
	res, err := r.inBox(ctx, sandbox.Cmd{Path: "/bin/sh", Args: []string{"-c", `test -d "$1/$2"`, "sh", r.pkgdb, r.job.PkgName}},
		false, proc.Cmd{Output: &out, Deadline: r.deadline})
	return err == nil && res.OK()
}

// installerArgs is the command line of pkgrun's own installer in the
// sandbox (see InstallerMain).
func (r *run) installerArgs(op string) []string {
	args := []string{boxTool, InstallerArg, op, "--prefix", r.localbase, "--pkgdb", r.pkgdb}
	if c := r.unpriv; c != nil {
		args = append(args, "--script-user", fmt.Sprintf("%d:%d", c.Uid, c.Gid))
	}
	return append(args, "--")
}

// command runs a helper command (pkg_add, pkg_delete) in the job's
// sandbox under the job's limits, logging to the phase log. A command
// that fails is an error; so is a sandbox that could not be set up
// (wrapping sandbox.ErrSetup).
func (r *run) command(ctx context.Context, p *phaseRun, argv []string, env ...string) error {
	fmt.Fprintf(p.log, "pkgrun: %s\n", strings.Join(argv, " "))
	res, err := r.inBox(ctx, sandbox.Cmd{Path: argv[0], Args: argv[1:], Dir: "/", Env: append(r.env(), env...)}, false, proc.Cmd{
		Output: p.log, Deadline: r.deadline, NoOutput: r.noOutput, Watch: []string{p.log.Name()},
	})
	if err != nil {
		return err
	}
	p.cpu += res.CPU
	if !res.OK() {
		r.lastWhy = res.Why
		p.why = res.Why
		return fmt.Errorf("%s: %s", path.Base(argv[0]), describe(res))
	}
	return nil
}

func isNotExist(err error) bool { return store.IsNotExist(err) }

func linkOrCopy(src, dst string) error {
	os.Remove(dst)
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// minFree is the free space (and inodes) below which a failed phase is put
// down to a full work root.
const (
	minFreeBytes  = 4 << 20
	minFreeInodes = 64
)

// outOfSpace reports whether the work root's file system is (nearly) full.
func (r *run) outOfSpace() bool {
	var st syscall.Statfs_t
	if syscall.Statfs(r.WorkRoot(), &st) != nil {
		return false
	}
	if uint64(st.Bavail)*uint64(st.Bsize) < minFreeBytes {
		return true
	}
	return st.Files > 0 && st.Ffree < minFreeInodes
}
