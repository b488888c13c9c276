package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pkgbulk/pkgbulk/lib/beneath"
	"github.com/pkgbulk/pkgbulk/lib/distfile"
)

// The checksum phase with the store's distfiles/ as a cache in front of
// the internet:
//
//  1. make show-vars (the job's first, build.go) tells the effective DISTDIR (pkgrun passes
//     /tmp/distfiles in the environment; a kit's mk.conf may move it),
//     the files (_ALLFILES, DIST_SUBDIR included; DISTFILES where a tree
//     has no _ALLFILES) and DISTINFO_FILE;
//  2. every file distinfo has digests for is taken from
//     distfiles/<name> into DISTDIR, verified while it is copied; a
//     corrupt object is deleted from the store and not used;
//  3. for each miss pkgrun takes the distfile's lease in the store
//     (lib/distfile: one builder fetches, the others wait for it to
//     reach the store and take it from there);
//  4. make checksum (the only phase with the network) fetches what is
//     still missing from MASTER_SITES and checks everything;
//  5. after it succeeded, each file pkgrun leased is verified against
//     distinfo by pkgrun itself and put into distfiles/<name>; then the
//     leases are released (also when the phase failed, so that another
//     builder tries).
//
// Files are created and read below the job's own /tmp or /var/tmp only,
// never through a symbolic link the build made.

// distfileVars are asked with the first make show-vars of a job (build.go).
var distfileVars = []string{"DISTDIR", "_ALLFILES", "DISTFILES", "DIST_SUBDIR", "DISTINFO_FILE"}

// boxDistdir is DISTDIR unless mk.conf sets it.
const boxDistdir = "/tmp/distfiles"

// distfileJob is what pkgrun does around one checksum phase.
type distfileJob struct {
	r       *run
	p       *phaseRun
	cache   *distfile.Cache
	root    string // host directory of the sandbox directory that holds DISTDIR
	rel     string // DISTDIR relative to root
	dir     *beneath.Dir
	fetch   []distfile.Entry // missing everywhere: make fetches them, pkgrun uploads them
	leases  []*distfile.Lease
	skipped bool
}

// checksum runs the checksum phase with the store's distfiles.
func (r *run) checksum(ctx context.Context, p *phaseRun) (bool, error) {
	d, err := r.distfilesBefore(ctx, p)
	if err != nil {
		return false, err
	}
	defer d.release()
	ok, err := p.make(ctx, false, "checksum")
	if !ok || err != nil {
		return ok, err
	}
	return true, d.upload(ctx)
}

func (d *distfileJob) say(format string, args ...any) {
	fmt.Fprintf(d.p.log, "pkgrun: "+format+"\n", args...)
}

func (r *run) distfilesBefore(ctx context.Context, p *phaseRun) (*distfileJob, error) {
	d := &distfileJob{r: r, p: p, skipped: true}
	vals := r.distVars
	if len(vals) != len(distfileVars) {
		return d, nil
	}
	distdir, files := vals[0], strings.Fields(vals[1])
	if vals[1] == "" {
		for _, f := range strings.Fields(vals[2]) {
			if vals[3] != "" {
				f = vals[3] + "/" + f
			}
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return d, nil
	}
	info := vals[4]
	if info == "" {
		info = filepath.Join(r.pkgdir, "distinfo")
	}
	if rel, err := filepath.Rel(r.pkgsrc(), filepath.Clean(info)); err != nil || !filepath.IsLocal(rel) {
		d.say("the store's distfiles are not used: DISTINFO_FILE %s is not in the tree %s", info, r.pkgsrc())
		return d, nil
	}
	di, err := distfile.ReadFile(info)
	if err != nil {
		// make checksum says what is wrong with it.
		d.say("the store's distfiles are not used: %v", err)
		return d, nil
	}
	d.root, d.rel = r.box.privateDir(distdir)
	if d.root == "" {
		d.say("the store's distfiles are not used: DISTDIR %s is not in the job's /tmp or /var/tmp", distdir)
		return d, nil
	}
	if d.dir, err = beneath.Open(d.root); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	d.cache = &distfile.Cache{Store: r.Store, Owner: fmt.Sprintf("%s (pkgrun %d on %s)", r.job.PkgName, os.Getpid(), host), Log: p.log}
	d.skipped = false

	var missing []distfile.Entry
	sort.Strings(files)
	for _, f := range slices.Compact(files) {
		e, ok := di.Lookup(f)
		if !ok || e.Verifiable() != nil || distfile.CheckName(f) != nil {
			d.say("%s: no digest in %s; left to make checksum", f, info)
			continue
		}
		rel := path.Join(d.rel, f)
		if fi, err := d.dir.Lstat(rel); err == nil {
			if fi.Mode().IsRegular() && d.verifyLocal(e, rel) == nil {
				d.say("%s: already in DISTDIR", f)
			} else {
				d.say("%s: DISTDIR holds something else under its name; left to make checksum", f)
			}
			continue
		}
		got, err := d.get(ctx, e)
		if err != nil {
			return nil, err
		}
		if !got {
			missing = append(missing, e)
		}
	}
	for _, e := range missing {
		for attempt := 0; ; attempt++ {
			l, err := d.cache.Acquire(ctx, e)
			if err != nil {
				d.release()
				return nil, err
			}
			if l != nil {
				d.leases = append(d.leases, l)
				d.fetch = append(d.fetch, e)
				d.say("%s: not in %s; make checksum fetches it", e.Name, r.Store)
				break
			}
			got, err := d.get(ctx, e)
			if err != nil {
				d.release()
				return nil, err
			}
			if got {
				break
			}
			if attempt == 2 {
				// The store keeps losing it: fetch it without a lease.
				d.fetch = append(d.fetch, e)
				break
			}
		}
	}
	return d, nil
}

// get copies e from the store into DISTDIR; false: not (usably) there.
// A DISTDIR pkgrun cannot write (the build put a link or a file in the
// way) leaves the file to make: true, with a message.
func (d *distfileJob) get(ctx context.Context, e distfile.Entry) (bool, error) {
	rel := path.Join(d.rel, e.Name)
	var local error
	res, err := d.cache.Get(ctx, e, func() (io.WriteCloser, error) {
		f, err := d.dir.Create(rel, 0o644)
		local = err
		return f, err
	}, func() { d.dir.Remove(rel) })
	if local != nil {
		d.say("%s: cannot write it into DISTDIR (%v); left to make checksum", e.Name, local)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: distfile %s: %w", d.r.job.PkgName, e.Name, err)
	}
	switch res {
	case distfile.Hit:
		d.say("%s: taken from %s (verified)", e.Name, d.r.Store)
		return true, nil
	case distfile.Corrupt:
		d.say("%s: the store's copy was corrupt and is deleted", e.Name)
	}
	return false, nil
}

// open opens rel below the DISTDIR's root for reading, following no
// symbolic link at all.
func (d *distfileJob) open(rel string) (*os.File, error) {
	dfd, err := unix.Open(d.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.root, Err: err}
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat2(dfd, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(d.root, rel), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.root, rel))
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return f, nil
}

func (d *distfileJob) verifyLocal(e distfile.Entry, rel string) error {
	f, err := d.open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	return e.Verify(f)
}

// upload puts the files make fetched into the store, each verified.
func (d *distfileJob) upload(ctx context.Context) error {
	if d.skipped {
		return nil
	}
	for _, e := range d.fetch {
		f, err := d.open(path.Join(d.rel, e.Name))
		if err != nil {
			d.say("%s: not stored: %v", e.Name, err)
			continue
		}
		err = d.cache.Put(ctx, e, f)
		f.Close()
		switch {
		case errors.Is(err, distfile.ErrMismatch):
			d.say("%s: not stored: %v", e.Name, err)
		case err != nil:
			if ctx.Err() != nil {
				return err
			}
			// The package is fine; the next builder fetches it again.
			d.say("%s: not stored: %v", e.Name, err)
		default:
			d.say("%s: stored as %s in %s", e.Name, distfile.ObjectName(e.Name), d.r.Store)
		}
	}
	return nil
}

// release gives up the leases (another builder fetches a file this job
// could not).
func (d *distfileJob) release() {
	for _, l := range d.leases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := l.Release(ctx); err != nil {
			d.say("release a distfile lease: %v", err)
		}
		cancel()
	}
	d.leases = nil
	if d.dir != nil {
		d.dir.Close()
		d.dir = nil
	}
}

// privateDir maps a sandbox directory in the job's /tmp or /var/tmp to
// the host directory that holds it and the path relative to that; ""
// for any other directory.
func (b *box) privateDir(p string) (root, rel string) {
	if !path.IsAbs(p) {
		return "", ""
	}
	p = path.Clean(p)
	for _, m := range []struct{ at, host string }{{"/var/tmp", b.vartmp}, {"/tmp", b.tmp}} {
		if rest, ok := strings.CutPrefix(p, m.at+"/"); ok && rest != "" {
			return m.host, rest
		}
	}
	return "", ""
}
