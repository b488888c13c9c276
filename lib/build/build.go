// Package build builds one package the way pbulk's pkg-build does, in a
// sandbox of its own, and reports a job.Result.
//
// A job (Builder.Run) goes through these steps; spec build-and-report.md
// §2 is the contract, the differences are listed at the end.
//
//  1. A job directory under Settings.WorkRoot and the job's sandbox (see
//     box and lib/sandbox): the bootstrap kit at the paths it was made for
//     over a private layer (or an empty prefix at Settings.Prefix), the
//     tree read-only, a private /tmp. Every command below runs in it.
//  2. Version skew: `make show-vars VARNAMES="PKGNAME LOCALBASE PKG_DBDIR
//     STAGE_PKGFILE PKGFILE <distfile variables>" <MULTI_VERSION>` in the package directory must
//     print the job's PKGNAME, else the status is "skew" and nothing is
//     built. A PKG_LOCATION missing from the tree is a skew too.
//  3. Up to date (pbulk's pkg-up-to-date, §2.4, unless Settings.Force):
//     All/<PKGNAME><suffix> is in the store, every +BUILD_VERSION file still
//     has its id (SHA256 hex or $NetBSD keyword), every @blddep is among
//     the job's DEPENDS and, unless skip_age_check, every such dependency's
//     package is older than the package. Status "up-to-date"; the missing
//     pkg_summary fragment of such a package is written.
//  4. The phases, one log each: pre-clean (make clean), depends (the
//     DEPENDS packages and their run-time closure fetched from the store's
//     All/ and installed with the kit's pkg_add, or pkgrun's own installer
//     when the kit has none), checksum (the store's verified distfiles/
//     first, fetched files stored after it: distfiles.go), configure, build (all), install
//     (stage-install), package (stage-package-create and STAGE_PKGFILE, or
//     make package and PKGFILE in trees without them; then the install test
//     with pkg_add), deinstall (pkg_delete), then the package is stored and
//     clean runs. Every make runs as `<make> <target> BATCH=1
//     DEPENDS_TARGET=/nonexistent <MULTI_VERSION> WRKLOG=/pkgbulk/log/work.log`
//     under the job's wall-time and no-output limits; nothing that pbulk
//     takes from mk.conf is on the command line. create-usergroup runs
//     where USERGROUP_PHASE says.
//  5. Success: All/<PKGNAME><suffix> and index/<PKGNAME>.pkginfo (the
//     pkg_summary entry of the stored file) are put into the store, stale
//     logs under bulklog/<PKGNAME>/ are deleted (pbulk: a log directory
//     exists iff the last attempt failed) and the job directory is removed.
//     Failure or timeout: the logs go to bulklog/<PKGNAME>/ and the job
//     directory is removed unless keep_workdir (then WRKDIR is also saved
//     as bulklog/<PKGNAME>/wrkdir.tar.gz by make pbulk-save-wrkdir).
//
// A phase that fails while the work root is (nearly) full, and any
// ENOSPC of pkgrun's own, is not the package's failure: Run returns an
// error wrapping ErrNoSpace (pkgrun exits job.ExitNoSpace).
//
// Differences from pkg-build: the failure path runs no `make clean` (the
// work directory is inside the job directory, which is removed), a failed
// final `make clean` is recorded but does not fail the job (pkg-build 1.29),
// per-category package links are not made (a store has no links), the
// fragment is written for every package, NO_BIN_ON_FTP or not, because
// pbulk's pkg_summary lists every successful package, and the age check
// takes equal whole-second store times as "older" (S3 keeps seconds only).
//
// The environment of every command is a fixed minimal one (see run.env)
// plus Settings.Environment; nothing of pkgrun's own environment reaches
// a build.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/summary"
)

// Builder builds jobs with one set of settings into one store. Run may be
// called for several jobs at once; each gets its own job directory.
type Builder struct {
	Settings job.Settings
	Store    store.Store
	// Progress, when not nil, receives one line per step for a human.
	Progress io.Writer

	maxTime, noOutput time.Duration
	unpriv            *syscall.Credential // nil: every phase runs as pkgrun's user
	kit               *kit                // the unpacked bootstrap kit, or nil

	// testMounts are added to every sandbox (a test's window into it).
	testMounts []sandbox.Mount
}

// Check validates the settings and fills the defaults; Run calls it.
func (b *Builder) Check() error {
	s := &b.Settings
	if s.Pkgsrc == "" {
		return errors.New("no pkgsrc tree given")
	}
	if fi, err := os.Stat(s.Pkgsrc); err != nil || !fi.IsDir() {
		return fmt.Errorf("pkgsrc tree %s is not a directory", s.Pkgsrc)
	}
	abs, err := filepath.Abs(s.Pkgsrc)
	if err != nil {
		return err
	}
	s.Pkgsrc = abs
	if s.PkgSuffix == "" {
		s.PkgSuffix = ".tgz"
	}
	if s.WorkRoot == "" {
		s.WorkRoot = filepath.Join(os.TempDir(), "pkgrun")
	}
	if s.WorkRoot, err = filepath.Abs(s.WorkRoot); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		val  string
		dst  *time.Duration
	}{{"max_time", s.MaxTime, &b.maxTime}, {"no_output_time", s.NoOutputTime, &b.noOutput}} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v < 0 {
			return fmt.Errorf("%s: invalid duration %q", d.name, d.val)
		}
		*d.dst = v
	}
	for _, kv := range s.Environment {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("environment: %q is not KEY=VALUE", kv)
		}
	}
	if s.BootstrapKit != "" {
		if _, err := os.Stat(s.BootstrapKit); err != nil {
			return fmt.Errorf("bootstrap kit: %w", err)
		}
	}
	if s.Prefix == "" {
		s.Prefix = "/usr/pkg"
	}
	if !filepath.IsAbs(s.Prefix) || filepath.Clean(s.Prefix) != s.Prefix || s.Prefix == "/" {
		return fmt.Errorf("prefix %q is not a clean absolute path below /", s.Prefix)
	}
	switch s.Network {
	case "":
		s.Network = "checksum"
	case "checksum", "all", "none":
	default:
		return fmt.Errorf("network %q: want checksum, all or none", s.Network)
	}
	if err := sandbox.Available(); err != nil {
		return err
	}
	b.unpriv = nil
	if s.UnprivUser != "" && os.Geteuid() == 0 {
		u, err := user.Lookup(s.UnprivUser)
		if err != nil {
			return fmt.Errorf("unprivileged_user: %w", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("unprivileged_user %s: non-numeric uid %q or gid %q", s.UnprivUser, u.Uid, u.Gid)
		}
		b.unpriv = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
	}
	return nil
}

func (b *Builder) suffix() string { return b.Settings.PkgSuffix }
func (b *Builder) pkgsrc() string { return b.Settings.Pkgsrc }

// run is the state of one job.
type run struct {
	*Builder
	job      *Job
	res      *job.Result
	start    time.Time
	deadline time.Time

	root, logdir, depsdir string
	pkgdir                string
	box                   *box
	// What make says of the package (show-vars, before anything runs).
	localbase, pkgdb, stagePkgfile, pkgfile string
	distVars                                []string // distfileVars' values (distfiles.go)

	lastWhy proc.Why // what ended the last failed command

	mu       sync.Mutex
	peakDisk int64
}

// Run builds j. The Result says what happened to the package; the error is
// for a job that could not be run at all (bad settings, an unreachable
// store, no work directory, a cancelled context), which a scheduler
// retries rather than counting as a failed package.
func (b *Builder) Run(ctx context.Context, j *Job) (*job.Result, error) {
	// A copy, so that one Builder can run several jobs at once.
	bc := *b
	bc.Settings.Environment = slices.Clone(b.Settings.Environment)
	if err := bc.Check(); err != nil {
		return nil, err
	}
	if bc.Store == nil {
		return nil, errors.New("no store given")
	}
	b = &bc
	r := &run{Builder: b, job: j, start: time.Now()}
	r.res = &job.Result{PkgName: j.PkgName, PkgPath: j.PkgLocation, MakeJobs: j.MakeJobs}
	r.res.Host, _ = os.Hostname()
	if b.maxTime > 0 {
		r.deadline = r.start.Add(b.maxTime)
	}
	r.pkgdir = filepath.Join(b.pkgsrc(), filepath.FromSlash(j.PkgLocation))
	err := r.do(ctx)
	r.res.WallMS = time.Since(r.start).Milliseconds()
	r.res.DiskBytes = r.peakDisk
	if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNoSpace) {
		err = noSpaceError{fmt.Errorf("%w: %w", ErrNoSpace, err)}
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: interrupted: %w", j.PkgName, ctx.Err())
	}
	return r.res, nil
}

func (r *run) progress(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, "%s: "+format+"\n", append([]any{r.job.PkgName}, args...)...)
	}
}

func (r *run) do(ctx context.Context) error {
	j := r.job
	if fi, err := os.Stat(r.pkgdir); err != nil || !fi.IsDir() {
		r.res.Status = job.StatusSkew
		r.res.Message = fmt.Sprintf("%s: PKG_LOCATION %s does not exist in the tree %s", j.PkgName, j.PkgLocation, r.pkgsrc())
		return nil
	}
	if err := os.MkdirAll(r.WorkRoot(), 0o755); err != nil {
		return fmt.Errorf("work root: %w", err)
	}
	if kit := r.Settings.BootstrapKit; kit != "" {
		k, err := openKit(kit, r.WorkRoot())
		if err != nil {
			return fmt.Errorf("bootstrap kit %s: %w", kit, err)
		}
		r.kit = k
	}
	root, err := os.MkdirTemp(r.WorkRoot(), j.PkgName+".")
	if err != nil {
		return fmt.Errorf("job directory: %w", err)
	}
	r.root = root
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(root)
		}
	}()
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	// The sandbox (pbulk's client-clean: a fresh bootstrap state).
	if r.box, err = r.newBox(root); err != nil {
		return fmt.Errorf("job directory: %w", err)
	}
	r.logdir, r.depsdir = r.box.logs, r.box.deps
	if err := os.WriteFile(r.workLog(), nil, 0o644); err != nil {
		return err
	}
	if c := r.unpriv; c != nil {
		// pkg-build chowns work.log.
		if err := os.Chown(r.workLog(), int(c.Uid), int(c.Gid)); err != nil {
			return fmt.Errorf("unprivileged_user: %w", err)
		}
	}

	// 1. Version skew, and what the package's make says about where
	// things go.
	r.progress("checking the tree's PKGNAME")
	vals, msg, err := r.showVars(ctx, append([]string{"PKGNAME", "LOCALBASE", "PKG_DBDIR", "STAGE_PKGFILE", "PKGFILE", "MAKE_JOBS_SAFE"}, distfileVars...)...)
	if err != nil {
		return err
	}
	if msg != "" {
		r.res.Status, r.res.FailedPhase, r.res.Message = job.StatusFailed, "skew-check", msg
		return r.checkTimeout(ctx, "skew-check")
	}
	name := vals[0]
	r.localbase, r.pkgdb, r.stagePkgfile, r.pkgfile = vals[1], vals[2], vals[3], vals[4]
	// MAKE_JOBS_SAFE goes into the result (and the history) so that the
	// scheduler never grants cores to a package that cannot use them.
	r.res.MakeJobsSafe = strings.ToLower(strings.TrimSpace(vals[5]))
	r.distVars = vals[6:]
	if name != j.PkgName {
		r.res.Status = job.StatusSkew
		r.res.Message = fmt.Sprintf("version skew: the job is %s but %s in the tree makes %s", j.PkgName, j.PkgLocation, name)
		return nil
	}

	// 2. Up to date.
	pkgName := "All/" + j.PkgName + r.suffix()
	if !r.Settings.Force {
		ok, why, err := r.upToDate(ctx, j)
		if err != nil {
			return err
		}
		if ok {
			r.progress("up to date")
			r.res.Status = job.StatusUpToDate
			r.res.Package = pkgName
			return r.finishUpToDate(ctx)
		}
		r.progress("not up to date: %s", why)
		r.res.Message = "not up to date: " + why
	}

	stopSampler := r.sampleDisk()
	defer stopSampler()

	ok, err := r.phases(ctx)
	if err != nil {
		return err
	}
	r.sample()
	if !ok {
		if r.Settings.KeepWorkdir {
			keep = true
			r.saveWrkdir(ctx)
			r.res.Message += " (job directory kept: " + root + ")"
		}
		return r.storeLogs(ctx)
	}
	return nil
}

func (r *run) WorkRoot() string { return r.Settings.WorkRoot }
func (r *run) workLog() string  { return filepath.Join(r.logdir, "work.log") }

// makeArgs is the argument list of a phase target (spec §2.2): pkg-build's
// own, nothing that pbulk takes from mk.conf.
func (r *run) makeArgs(target string, extra ...string) []string {
	args := []string{target, "BATCH=1", "DEPENDS_TARGET=/nonexistent"}
	args = append(args, r.job.MultiVersion...)
	args = append(args, "WRKLOG="+boxLogs+"/work.log")
	return append(args, extra...)
}

// plainArgs is the argument list of make clean, which pkg-build runs
// without BATCH and WRKLOG.
func (r *run) plainArgs(target string) []string {
	return append([]string{target}, r.job.MultiVersion...)
}

// showVars runs make show-vars VARNAMES=names and returns one value per
// name. msg is non-empty when make failed (the message names the package
// and quotes make's error).
func (r *run) showVars(ctx context.Context, names ...string) (vals []string, msg string, err error) {
	var out, errb bytes.Buffer
	res, err := r.inBox(ctx, sandbox.Cmd{
		Path: r.box.make, Args: append(r.makeArgs("show-vars"), "VARNAMES="+strings.Join(names, " ")), Dir: r.pkgdir,
	}, false, proc.Cmd{Output: &out, Stderr: &errb, Deadline: r.deadline})
	if err != nil {
		return nil, "", err
	}
	r.lastWhy = res.Why
	what := fmt.Sprintf("make show-vars VARNAMES=%q in %s", strings.Join(names, " "), r.job.PkgLocation)
	if !res.OK() {
		return nil, fmt.Sprintf("%s: %s: %s: %s", r.job.PkgName, what, describe(res), clip(strings.TrimSpace(errb.String()))), nil
	}
	vals = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(vals) != len(names) {
		return nil, fmt.Sprintf("%s: %s printed %d lines for %d variables: %s", r.job.PkgName, what, len(vals), len(names), clip(out.String())), nil
	}
	for i := range vals {
		vals[i] = strings.TrimSpace(vals[i])
	}
	return vals, "", nil
}

func describe(res proc.Result) string {
	if res.Why != proc.Finished {
		return res.Why.String() + " reached"
	}
	if res.ExitCode < 0 {
		return "killed by a signal"
	}
	return fmt.Sprintf("exit status %d", res.ExitCode)
}

// checkTimeout turns a failure caused by a limit into a timeout and a
// cancellation into an error.
func (r *run) checkTimeout(ctx context.Context, phase string) error {
	switch r.lastWhy {
	case proc.Canceled:
		return fmt.Errorf("%s: interrupted during %s: %w", r.job.PkgName, phase, context.Canceled)
	case proc.WallTime:
		r.res.Status = job.StatusTimeout
		r.res.Message = fmt.Sprintf("%s: wall-time limit %v reached during %s; process group killed", r.job.PkgName, r.maxTime, phase)
	case proc.NoOutput:
		r.res.Status = job.StatusTimeout
		r.res.Message = fmt.Sprintf("%s: no output for %v during %s; process group killed", r.job.PkgName, r.noOutput, phase)
	}
	return nil
}

// sampleDisk measures the job directory every few seconds until stopped.
func (r *run) sampleDisk() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r.sample()
			}
		}
	}()
	return func() { close(stop); <-done }
}

func (r *run) sample() {
	n := diskUsage(r.root)
	r.mu.Lock()
	if n > r.peakDisk {
		r.peakDisk = n
	}
	r.mu.Unlock()
}

// diskUsage is the space allocated to the files below dir, each inode
// counted once.
func diskUsage(dir string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if st.Nlink > 1 {
				if seen[st.Ino] {
					return nil
				}
				seen[st.Ino] = true
			}
			n += st.Blocks * 512
			return nil
		}
		n += fi.Size()
		return nil
	})
	return n
}

// storeLogs puts the job's logs into bulklog/<PKGNAME>/ and removes older
// objects there that this attempt did not write.
func (r *run) storeLogs(ctx context.Context) error {
	dir := "bulklog/" + r.job.PkgName + "/"
	entries, err := os.ReadDir(r.logdir)
	if err != nil {
		return err
	}
	written := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := dir + e.Name()
		if err := r.putFile(ctx, name, filepath.Join(r.logdir, e.Name())); err != nil {
			return err
		}
		written[name] = true
	}
	for i := range r.res.Phases {
		p := &r.res.Phases[i]
		if written[dir+p.Name+".log"] {
			p.Log = dir + p.Name + ".log"
		}
	}
	r.res.LogDir = dir
	return r.deleteLogs(ctx, written)
}

// deleteLogs removes the objects under bulklog/<PKGNAME>/ except keep.
func (r *run) deleteLogs(ctx context.Context, keep map[string]bool) error {
	dir := "bulklog/" + r.job.PkgName + "/"
	var stale []string
	err := r.Store.List(ctx, dir, func(i store.Info) error {
		if !keep[i.Name] {
			stale = append(stale, i.Name)
		}
		return nil
	})
	if err != nil && !store.IsNotExist(err) {
		return fmt.Errorf("list %s in %s: %w", dir, r.Store, err)
	}
	sort.Strings(stale)
	for _, n := range stale {
		if err := r.Store.Delete(ctx, n); err != nil {
			return fmt.Errorf("delete %s from %s: %w", n, r.Store, err)
		}
	}
	return nil
}

func (r *run) putFile(ctx context.Context, name, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := r.Store.Put(ctx, name, f, fi.Size()); err != nil {
		return fmt.Errorf("put %s to %s: %w", name, r.Store, err)
	}
	return nil
}

// finishUpToDate writes the fragment of an up-to-date package when the
// store lacks it and removes a stale log directory.
func (r *run) finishUpToDate(ctx context.Context) error {
	frag := "index/" + r.job.PkgName + ".pkginfo"
	_, err := r.Store.Stat(ctx, frag)
	switch {
	case store.IsNotExist(err):
		local := filepath.Join(r.root, r.job.PkgName+r.suffix())
		if err := r.getFile(ctx, "All/"+r.job.PkgName+r.suffix(), local); err != nil {
			return err
		}
		if err := r.putFragment(ctx, local); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("stat %s in %s: %w", frag, r.Store, err)
	}
	r.res.Fragment = frag
	return r.deleteLogs(ctx, nil)
}

func (r *run) putFragment(ctx context.Context, local string) error {
	entry, err := summary.EntryFromFile(local)
	if err != nil {
		return fmt.Errorf("%s: pkg_summary entry: %w", r.job.PkgName, err)
	}
	frag := "index/" + r.job.PkgName + ".pkginfo"
	if err := r.Store.Put(ctx, frag, bytes.NewReader(entry), int64(len(entry))); err != nil {
		return fmt.Errorf("put %s to %s: %w", frag, r.Store, err)
	}
	r.res.Fragment = frag
	return nil
}

// getFile copies a store object to a local file.
func (r *run) getFile(ctx context.Context, name, local string) error {
	rc, err := r.Store.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("get %s from %s: %w", name, r.Store, err)
	}
	defer rc.Close()
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("get %s from %s: %w", name, r.Store, err)
	}
	return f.Close()
}

// saveWrkdir runs make pbulk-save-wrkdir into the log directory (pbulk's
// keep_wrkdir); its failure only loses the archive.
func (r *run) saveWrkdir(ctx context.Context) {
	f, err := os.OpenFile(filepath.Join(r.root, "save-wrkdir.out"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	r.inBox(ctx, sandbox.Cmd{
		Path: r.box.make, Args: append(r.makeArgs("pbulk-save-wrkdir"), "INTO="+boxLogs+"/wrkdir.tar.gz"), Dir: r.pkgdir,
	}, false, proc.Cmd{Output: f, Deadline: time.Now().Add(10 * time.Minute)})
}
