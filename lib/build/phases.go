package build

import (
	"archive/tar"
	"context"
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
	fmt.Fprintf(p.log, "pkgrun: %s %s%s\n", r.Settings.Make, strings.Join(args, " "), as)
	res, err := proc.Run(ctx, proc.Cmd{
		Path: r.Settings.Make, Args: args, Dir: r.pkgdir, Env: r.env(), Output: p.log,
		Deadline: r.deadline, NoOutput: r.noOutput, Watch: []string{p.log.Name(), r.workLog()},
		Credential: cred,
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", r.job.PkgName, err)
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
		{"checksum", func(p *phaseRun) (bool, error) { return p.make(ctx, false, "checksum") }},
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

	var pkgfile, installed string
	ok, err := r.phase(ctx, "package", func(p *phaseRun) (bool, error) {
		if ok, err := p.make(ctx, false, "stage-package-create"); !ok || err != nil {
			return ok, err
		}
		val, msg, err := r.showVar(ctx, "STAGE_PKGFILE")
		if err != nil {
			return false, err
		}
		if msg != "" {
			p.why, p.msg = r.lastWhy, msg
			return false, nil
		}
		if fi, err := os.Stat(val); err != nil || !fi.Mode().IsRegular() {
			p.msg = fmt.Sprintf("%s: STAGE_PKGFILE %q does not exist after stage-package-create", j.PkgName, val)
			return false, nil
		}
		pkgfile = val
		if j.BootstrapPkg != "" {
			return true, nil
		}
		var ierr error
		err = p.inProcess(func() error {
			installed, ierr = r.installer(p).installFile(ctx, pkgfile)
			return nil
		})
		if err != nil {
			return false, err
		}
		if ierr != nil {
			p.why = r.lastWhy
			p.msg = fmt.Sprintf("%s: install test of %s failed: %v", j.PkgName, filepath.Base(pkgfile), ierr)
			fmt.Fprintf(p.log, "pkgrun: %v\n", ierr)
			return false, nil
		}
		return true, nil
	})
	if !ok || err != nil {
		return false, err
	}

	if j.BootstrapPkg == "" {
		ok, err := r.phase(ctx, "deinstall", func(p *phaseRun) (bool, error) {
			var derr error
			p.inProcess(func() error {
				derr = r.installer(p).deinstallPkg(ctx, installed)
				return nil
			})
			if derr != nil {
				p.why = r.lastWhy
				p.msg = fmt.Sprintf("%s: deinstall test failed: %v", j.PkgName, derr)
				fmt.Fprintf(p.log, "pkgrun: %v\n", derr)
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

// jobInstaller is the installer of one phase: built in, or pkg_install's
// tools when present.
type jobInstaller struct {
	installer
	pkgAdd, pkgDelete string
	env               []string
}

func (r *run) installer(p *phaseRun) *jobInstaller {
	in := &jobInstaller{pkgAdd: r.pkgAdd, pkgDelete: r.pkgDelete, env: r.env()}
	in.prefix, in.pkgdb, in.log = r.prefix, r.pkgdb, p.log
	in.script = func(ctx context.Context, dir string, env []string, argv ...string) error {
		return r.command(ctx, p, dir, append(r.env(), env...), argv...)
	}
	return in
}

// command runs a helper command (install script, pkg_add) under the job's
// limits, logging to the phase log.
func (r *run) command(ctx context.Context, p *phaseRun, dir string, env []string, argv ...string) error {
	fmt.Fprintf(p.log, "pkgrun: %s\n", strings.Join(argv, " "))
	res, err := proc.Run(ctx, proc.Cmd{
		Path: argv[0], Args: argv[1:], Dir: dir, Env: env, Output: p.log,
		Deadline: r.deadline, NoOutput: r.noOutput, Watch: []string{p.log.Name()},
	})
	if err != nil {
		return err
	}
	p.cpu += res.CPU
	if !res.OK() {
		r.lastWhy = res.Why
		p.why = res.Why
		return fmt.Errorf("%s: %s", argv[0], describe(res))
	}
	return nil
}

// installFile installs the built package for the install test and returns
// the name it was registered under.
func (in *jobInstaller) installFile(ctx context.Context, file string) (string, error) {
	if in.pkgAdd == "" {
		return in.install(ctx, file)
	}
	if err := in.pkgAddFiles(ctx, file); err != nil {
		return "", err
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	meta, err := readMeta(file, f)
	if err != nil {
		return "", err
	}
	names := plistValues(parsePlist(meta["+CONTENTS"]), "name")
	if len(names) == 0 {
		return "", fmt.Errorf("%s: no @name in +CONTENTS", file)
	}
	return names[0], nil
}

func (in *jobInstaller) deinstallPkg(ctx context.Context, pkg string) error {
	if in.pkgDelete == "" {
		return in.deinstall(ctx, pkg)
	}
	return in.script(ctx, in.prefix, in.env, in.pkgDelete, "-K", in.pkgdb, pkg)
}

// pkgAddFiles runs pkg_add -K pkgdb -p prefix on package files, with
// PKG_PATH at their directory so pkg_add finds their dependencies there.
func (in *jobInstaller) pkgAddFiles(ctx context.Context, files ...string) error {
	env := []string{"PKG_PATH=" + filepath.Dir(files[0])}
	return in.script(ctx, filepath.Dir(files[0]), env, append([]string{in.pkgAdd, "-K", in.pkgdb, "-p", in.prefix}, files...)...)
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

// extractKit unpacks a bootstrap kit (tar, optionally compressed) into dir,
// refusing entries that would land outside it.
func extractKit(kit, dir string) error {
	f, err := os.Open(kit)
	if err != nil {
		return err
	}
	defer f.Close()
	tr, closer, err := openTar(f)
	if err != nil {
		return err
	}
	defer closer()
	placed := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "." {
			continue
		}
		if name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q is outside the kit", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Clean(strings.TrimPrefix(h.Linkname, "/"))
		}
		if err := writeEntry(tr, h, target, placed); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		placed[name] = target
	}
}
