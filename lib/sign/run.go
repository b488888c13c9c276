package sign

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/ar"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Options tune SignFiles and SignStore.
type Options struct {
	// Suffix selects the packages of a store: All/*<Suffix> (default .tgz).
	Suffix string
	// TempDir stages store packages (default os.TempDir()).
	TempDir string
	// Progress, when set, gets one line per package as it is done.
	Progress io.Writer
	// Jobs is the number of packages signed at once (default 1); more
	// helps with remote stores, where each package waits on the network.
	Jobs int
}

// Actions of an Outcome.
const (
	ActionSigned   = "signed"   // was unsigned, now signed
	ActionResigned = "resigned" // was signed by another key (or not canonically), now signed by ours
	ActionSkipped  = "skipped"  // already validly signed by this key
	ActionFailed   = "failed"   // left unchanged
)

// Outcome is what happened to one package.
type Outcome struct {
	Name    string `json:"name"`
	PkgName string `json:"pkgname,omitempty"`
	Action  string `json:"action"`
	Reason  string `json:"reason,omitempty"`
	Size    int64  `json:"size,omitempty"` // bytes of the package file afterwards
	// Warning says what went wrong around a package that was signed:
	// its modification time could not be kept, or pkgindex's caches of
	// it could not be removed.
	Warning string `json:"warning,omitempty"`
}

// Report sums up a signing run.
type Report struct {
	Target   string    `json:"target"`
	Signer   string    `json:"signer"`
	Packages int       `json:"packages"`
	Signed   int       `json:"signed"`
	Resigned int       `json:"resigned"`
	Skipped  int       `json:"skipped"`
	Failed   int       `json:"failed"`
	Outcomes []Outcome `json:"outcomes"`
	Seconds  float64   `json:"seconds"`
}

func (rep *Report) add(o Outcome, progress io.Writer) {
	rep.Packages++
	switch o.Action {
	case ActionSigned:
		rep.Signed++
	case ActionResigned:
		rep.Resigned++
	case ActionSkipped:
		rep.Skipped++
	default:
		rep.Failed++
	}
	rep.Outcomes = append(rep.Outcomes, o)
	if progress != nil {
		progressLine(progress, o)
	}
}

func progressLine(w io.Writer, o Outcome) {
	line := fmt.Sprintf("pkgsign: %s: %s", o.Name, o.Action)
	if o.Reason != "" {
		line += ": " + o.Reason
	}
	if o.Warning != "" {
		line += " (warning: " + o.Warning + ")"
	}
	fmt.Fprintln(w, line)
}

// target abstracts where a package lives: a local file replaced by rename,
// or a store object replaced by Put.
type target interface {
	// fetch returns a readable local copy (or the file itself) with the
	// header fields to use, and the version read.
	fetch(ctx context.Context, name string) (f *os.File, st Stat, v version, cleanup func(), err error)
	// tempFile creates the file the signed package is written to.
	tempFile(name string) (*os.File, error)
	// replace publishes tmp (already synced) as name if name still is
	// at version v, with v's modification time where it can be set; it
	// removes tmp in every case. warn says what went wrong once name
	// was replaced.
	replace(ctx context.Context, name string, v version, tmp *os.File, size int64) (warn string, err error)
	// depName is the name the package pkgname has beside name (its
	// @blddep dependencies are looked up by it).
	depName(name, pkgname string) string
	// keepsTimes reports whether replace keeps the modification time.
	keepsTimes() bool
	// readDeps returns the @blddep dependencies of a package.
	readDeps(ctx context.Context, name string) ([]string, error)
	// forget removes what pkgindex cached about the package name (its
	// fragment and digest) and, once per run, the merge state that would
	// let pkgindex reuse entries by size and time: a signed package
	// keeps its time, and a re-signed one can keep its size.
	forget(ctx context.Context, name string, first bool) error
}

// version identifies what was read of a package: its size and time.
type version struct {
	size  int64
	mtime time.Time
}

func (v version) same(w version) bool { return v.size == w.size && v.mtime.Equal(w.mtime) }

// pkg is one package of a run.
type pkg struct {
	name  string
	mtime time.Time     // before the run: the replacement order
	pos   int           // place in that order
	done  chan struct{} // closed when the package is finished with
}

// SignFiles signs local package files in place (new file, fsync, rename,
// fsync of the directory).
func SignFiles(ctx context.Context, files []string, s Signer, o Options) (*Report, error) {
	rep := &Report{Target: strings.Join(files, " "), Signer: s.Identity()}
	start := time.Now()
	pkgs := make([]*pkg, len(files))
	for i, f := range files {
		pkgs[i] = &pkg{name: f}
		if fi, err := os.Stat(f); err == nil {
			pkgs[i].mtime = fi.ModTime() // an error is reported by the signing
		}
	}
	err := signAll(ctx, fileTarget{}, pkgs, s, o, rep)
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// SignStore signs every All/*<suffix> package of a store, replacing each
// with Put (atomic for every backend).
func SignStore(ctx context.Context, st store.Store, s Signer, o Options) (*Report, error) {
	rep := &Report{Target: st.String(), Signer: s.Identity()}
	start := time.Now()
	infos, err := listPackages(ctx, st, o.Suffix)
	if err != nil {
		return nil, err
	}
	pkgs := make([]*pkg, len(infos))
	for i, info := range infos {
		pkgs[i] = &pkg{name: info.Name, mtime: info.ModTime}
	}
	suffix := o.Suffix
	if suffix == "" {
		suffix = ".tgz"
	}
	err = signAll(ctx, storeTarget{st: st, dir: o.TempDir, suffix: suffix}, pkgs, s, o, rep)
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// signAll signs pkgs with o.Jobs workers; outcomes keep the order of
// pkgs. Once ctx is cancelled no new package is started, the ones under
// way finish (each is all-or-nothing), and ctx's error is returned.
//
// Signing must not change what pkgrun's age check (pbulk's
// pkg-up-to-date) considers up to date: a package is older than every
// package it was built with (its @blddep). So each replaced package keeps
// its modification time where the target can set it (local files, file
// and sftp stores), and where it cannot (S3: the time of the Put), the
// packages are replaced in the order of their old times: they are taken
// in that order, and a package is replaced only once those of its
// build dependencies that come before it are finished. Dependencies come
// first in that order, so nobody waits for a package not yet started.
func signAll(ctx context.Context, t target, pkgs []*pkg, s Signer, o Options, rep *Report) error {
	order := slices.Clone(pkgs)
	slices.SortStableFunc(order, func(a, b *pkg) int {
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	if !t.keepsTimes() {
		// Times of whole seconds (S3) tie: within a tie, build
		// dependencies go first.
		if err := orderTies(ctx, t, order, max(o.Jobs, 1)); err != nil {
			return err
		}
	}
	byName := make(map[string]*pkg, len(pkgs))
	for i, p := range order {
		p.pos, p.done = i, make(chan struct{})
		byName[filepath.Clean(p.name)] = p
	}
	// wait blocks until the build dependencies of p that are replaced
	// before it are finished with.
	wait := func(p *pkg, blddeps []string) error {
		for _, d := range blddeps {
			if q := byName[filepath.Clean(t.depName(p.name, d))]; q != nil && q.pos < p.pos {
				select {
				case <-q.done:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	}
	var forgetOnce sync.Once
	forget := func(name string) error {
		first := false
		forgetOnce.Do(func() { first = true })
		return t.forget(ctx, name, first)
	}

	jobs := max(o.Jobs, 1)
	outs := make(map[*pkg]*Outcome, len(pkgs))
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for w := 0; w < min(jobs, len(order)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == len(order) || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				p := order[next]
				next++
				mu.Unlock()
				out := signOne(ctx, t, p.name, s, func(blddeps []string) error { return wait(p, blddeps) }, forget)
				close(p.done)
				mu.Lock()
				outs[p] = &out
				if o.Progress != nil {
					progressLine(o.Progress, out)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, p := range pkgs {
		if out := outs[p]; out != nil {
			rep.add(*out, nil)
		}
	}
	return ctx.Err()
}

// orderTies reorders each run of packages with the same time in order
// (sorted by time, then name) so that the build dependencies among them
// come first (cycles, which no build makes, are broken by name). It reads
// the dependencies of those packages only, with jobs readers; a package
// that cannot be read keeps its place (signing it will say why).
func orderTies(ctx context.Context, t target, order []*pkg, jobs int) error {
	var tied []*pkg
	for i := 0; i < len(order); {
		j := i + 1
		for j < len(order) && order[j].mtime.Equal(order[i].mtime) {
			j++
		}
		if j-i > 1 {
			tied = append(tied, order[i:j]...)
		}
		i = j
	}
	deps := make(map[*pkg][]string, len(tied))
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range min(jobs, len(tied)) {
		wg.Go(func() {
			for {
				mu.Lock()
				if next == len(tied) || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				p := tied[next]
				next++
				mu.Unlock()
				d, _ := t.readDeps(ctx, p.name)
				mu.Lock()
				deps[p] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := 0; i < len(order); {
		j := i + 1
		for j < len(order) && order[j].mtime.Equal(order[i].mtime) {
			j++
		}
		if j-i > 1 {
			topoSort(t, order[i:j], deps)
		}
		i = j
	}
	return nil
}

// topoSort orders run (sorted by name) so that every package comes after
// those of its deps that are in run; among the packages ready, and to
// break a cycle, the first by name goes first.
func topoSort(t target, run []*pkg, deps map[*pkg][]string) {
	in := make(map[string]*pkg, len(run))
	for _, p := range run {
		in[filepath.Clean(p.name)] = p
	}
	placed := make(map[*pkg]bool, len(run))
	out := make([]*pkg, 0, len(run))
	ready := func(p *pkg) bool {
		for _, d := range deps[p] {
			if q := in[filepath.Clean(t.depName(p.name, d))]; q != nil && q != p && !placed[q] {
				return false
			}
		}
		return true
	}
	for len(out) < len(run) {
		var pick *pkg
		for _, p := range run {
			if !placed[p] && ready(p) {
				pick = p
				break
			}
		}
		if pick == nil { // a cycle
			for _, p := range run {
				if !placed[p] {
					pick = p
					break
				}
			}
		}
		placed[pick] = true
		out = append(out, pick)
	}
	copy(run, out)
}

// ListPackages returns the sorted names of All/*<suffix> in a store.
func ListPackages(ctx context.Context, st store.Store, suffix string) ([]string, error) {
	infos, err := listPackages(ctx, st, suffix)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, info := range infos {
		names[i] = info.Name
	}
	return names, nil
}

// listPackages lists All/*<suffix> in a store, sorted by name.
func listPackages(ctx context.Context, st store.Store, suffix string) ([]store.Info, error) {
	if suffix == "" {
		suffix = ".tgz"
	}
	var infos []store.Info
	err := st.List(ctx, "All/", func(i store.Info) error {
		base := i.Name[strings.LastIndexByte(i.Name, '/')+1:]
		if strings.HasSuffix(base, suffix) && !strings.HasPrefix(base, store.TempPrefix) &&
			!strings.Contains(i.Name[len("All/"):], "/") {
			infos = append(infos, i)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list All/ in %s: %w", st, err)
	}
	slices.SortFunc(infos, func(a, b store.Info) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

// signOne signs one package. Before it replaces the package it calls
// wait with the package's build dependencies (@blddep), and after that
// forget.
func signOne(ctx context.Context, t target, name string, s Signer, wait func(blddeps []string) error, forget func(name string) error) Outcome {
	out := Outcome{Name: name, Action: ActionFailed}
	f, st, ver, cleanup, err := t.fetch(ctx, name)
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	defer cleanup()
	fi, err := f.Stat()
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	input, size := f, fi.Size()
	action := ActionSigned
	head := make([]byte, len(ar.Magic))
	if n, _ := f.ReadAt(head, 0); n == len(head) && string(head) == ar.Magic {
		res, err := VerifyPackage(name, bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 256<<10), s.Verifier())
		if err != nil {
			out.Reason = err.Error()
			return out
		}
		out.PkgName = res.PkgName
		if res.OK() {
			out.Action, out.Size = ActionSkipped, size
			return out
		}
		var other []string
		sigBad := ""
		for _, p := range res.Problems {
			if strings.HasPrefix(p, "signature: ") {
				sigBad = p
			} else {
				other = append(other, p)
			}
		}
		if len(other) > 0 {
			// Re-signing a damaged or tampered inner package would bless
			// it; a fresh build must replace it.
			out.Reason = "signed package is damaged, not re-signing it: " + strings.Join(other, "; ")
			return out
		}
		out.Reason = sigBad
		if sigBad == "" && len(res.Notes) > 0 {
			out.Reason = "container not as pkg_admin writes it: " + res.Notes[0]
		}
		inner, err := os.CreateTemp(filepath.Dir(f.Name()), store.TempPrefix+"inner-*")
		if err != nil {
			out.Reason = err.Error()
			return out
		}
		defer func() { inner.Close(); os.Remove(inner.Name()) }()
		h, err := ExtractInner(io.NewSectionReader(f, 0, size), inner)
		if err != nil {
			out.Reason = fmt.Sprintf("extract inner package: %v", err)
			return out
		}
		st = Stat{ModTime: h.ModTime, UID: h.UID, GID: h.GID, Mode: h.Mode}
		input, size, action = inner, h.Size, ActionResigned
	}
	tmp, err := t.tempFile(name)
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	hf, err := SignPackage(bw, input, size, name, st, s)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	out.PkgName = hf.PkgName
	tfi, err := tmp.Stat()
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	// Check what was written before it replaces anything.
	res, err := VerifyPackage(tmp.Name(), bufio.NewReaderSize(io.NewSectionReader(tmp, 0, tfi.Size()), 256<<10), s.Verifier())
	if err != nil || !res.OK() {
		out.Reason = fmt.Sprintf("the signed file does not verify (not installed): %v %v %v", err, res.Problems, res.Notes)
		return out
	}
	meta, err := pkgfile.ReadMeta(name, io.NewSectionReader(input, 0, size))
	if err != nil { // SignPackage read it a moment ago
		out.Reason = err.Error()
		return out
	}
	if err := wait(blddeps(meta)); err != nil {
		out.Reason = err.Error()
		return out
	}
	keep = true
	warn, err := t.replace(ctx, name, ver, tmp, tfi.Size())
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	out.Action, out.Size, out.Warning = action, tfi.Size(), warn
	if err := forget(name); err != nil {
		out.Warning = strings.TrimPrefix(out.Warning+"; ", "; ") + err.Error()
	}
	return out
}

// blddeps returns the @blddep arguments of a package's +CONTENTS.
func blddeps(m *pkgfile.Meta) []string {
	var deps []string
	pkgfile.EachLine(m.Files[pkgfile.ContentsName], func(cmd string, arg []byte) bool {
		if cmd == "blddep" {
			deps = append(deps, string(arg))
		}
		return true
	})
	return deps
}

type fileTarget struct{}

func versionOf(fi os.FileInfo) version { return version{fi.Size(), fi.ModTime()} }

func (fileTarget) fetch(_ context.Context, name string) (*os.File, Stat, version, func(), error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, Stat{}, version{}, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Stat{}, version{}, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Stat{}, version{}, nil, fmt.Errorf("%s is not a regular file", name)
	}
	return f, StatOf(fi), versionOf(fi), func() { f.Close() }, nil
}

func (fileTarget) tempFile(name string) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(name), store.TempPrefix+filepath.Base(name)+"-*")
	if err != nil {
		return nil, err
	}
	// The signed file gets the mode and (when we may) the owner of the
	// original; CreateTemp makes a 0600 file of ours.
	if fi, err := os.Stat(name); err == nil {
		_ = f.Chmod(fi.Mode().Perm())
		if st := StatOf(fi); st.UID != os.Getuid() || st.GID != os.Getgid() {
			_ = f.Chown(st.UID, st.GID)
		}
	}
	return f, nil
}

func (fileTarget) replace(_ context.Context, name string, v version, tmp *os.File, _ int64) (string, error) {
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	fi, err := os.Stat(name)
	if err != nil {
		return "", err
	}
	if !versionOf(fi).same(v) {
		return "", fmt.Errorf("%s changed while it was being signed; left alone (run pkgsign again)", name)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	// The signed file takes the original's time before it takes its
	// name, so nobody sees it newer.
	if err := os.Chtimes(tmp.Name(), time.Time{}, v.mtime); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return "", err
	}
	defer d.Close()
	return "", d.Sync()
}

func (fileTarget) depName(name, pkgname string) string {
	return filepath.Join(filepath.Dir(name), pkgname+suffixOf(name))
}

func (fileTarget) keepsTimes() bool { return true }

func (fileTarget) readDeps(_ context.Context, name string) ([]string, error) {
	m, err := pkgfile.ReadMetaFile(name)
	if err != nil {
		return nil, err
	}
	return blddeps(m), nil
}

// suffixOf is the package suffix of a file name, or its extension.
func suffixOf(name string) string {
	if s := Suffix(name); s != "" {
		return s
	}
	return path.Ext(name)
}

// forget, for a file in a directory named All, removes the pkgindex
// caches of the store around it (<dir>/index/).
func (fileTarget) forget(_ context.Context, name string, first bool) error {
	dir := filepath.Dir(name)
	if filepath.Base(dir) != "All" {
		return nil
	}
	index := filepath.Join(filepath.Dir(dir), "index")
	base := strings.TrimSuffix(filepath.Base(name), suffixOf(name))
	files := []string{base + ".pkginfo", base + ".sha512"}
	if first {
		files = append(files, "merge-state.json")
	}
	var errs []error
	for _, f := range files {
		if err := os.Remove(filepath.Join(index, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pkgindex's caches (run pkgindex merge --no-reuse): %w", err)
	}
	return nil
}

type storeTarget struct {
	st     store.Store
	dir    string
	suffix string
}

func (t storeTarget) fetch(ctx context.Context, name string) (*os.File, Stat, version, func(), error) {
	info, err := t.st.Stat(ctx, name)
	if err != nil {
		return nil, Stat{}, version{}, nil, err
	}
	rc, err := t.st.Get(ctx, name)
	if err != nil {
		return nil, Stat{}, version{}, nil, err
	}
	defer rc.Close()
	f, err := os.CreateTemp(t.dir, store.TempPrefix+"get-*")
	if err != nil {
		return nil, Stat{}, version{}, nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, store.CtxReader(ctx, rc))
	if err != nil {
		cleanup()
		return nil, Stat{}, version{}, nil, fmt.Errorf("get %s from %s: %w", name, t.st, err)
	}
	if n != info.Size {
		cleanup()
		return nil, Stat{}, version{}, nil, fmt.Errorf("get %s from %s: %d bytes, Stat said %d (changing under us?)", name, t.st, n, info.Size)
	}
	// Stores keep no owner or mode: root-owned 0644, as pkgsrc's
	// packages directory usually has them.
	st := Stat{ModTime: info.ModTime, Mode: 0o100644}
	return f, st, version{info.Size, info.ModTime}, cleanup, nil
}

func (t storeTarget) tempFile(string) (*os.File, error) {
	return os.CreateTemp(t.dir, store.TempPrefix+"signed-*")
}

// chtimer is implemented by stores that can set an object's modification
// time (lib/store/filestore, lib/store/sftpstore); S3 cannot.
type chtimer interface {
	Chtimes(ctx context.Context, name string, mtime time.Time) error
}

// asChtimer returns the chtimer s is or wraps (storeopen wraps every
// store in lib/store/retry), or nil.
func asChtimer(s store.Store) chtimer {
	for {
		if c, ok := s.(chtimer); ok {
			return c
		}
		u, ok := s.(interface{ Unwrap() store.Store })
		if !ok {
			return nil
		}
		s = u.Unwrap()
	}
}

func (t storeTarget) replace(ctx context.Context, name string, v version, tmp *os.File, size int64) (string, error) {
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	info, err := t.st.Stat(ctx, name)
	if err != nil {
		return "", err
	}
	if !(version{info.Size, info.ModTime}).same(v) {
		return "", fmt.Errorf("%s changed in %s while it was being signed; left alone (run pkgsign again)", name, t.st)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := t.st.Put(ctx, name, tmp, size); err != nil {
		return "", fmt.Errorf("put %s to %s: %w", name, t.st, err)
	}
	c := asChtimer(t.st)
	if c == nil {
		return "", nil // the order of the Puts keeps the order of the times
	}
	// A moment after the Put (stores offer no atomic put-with-time):
	// the lost connection of a moment ago is retried once.
	err = c.Chtimes(ctx, name, v.mtime)
	if err != nil && ctx.Err() == nil && !store.IsPermanent(err) {
		err = c.Chtimes(ctx, name, v.mtime)
	}
	if err != nil {
		return fmt.Sprintf("signed, but its modification time is now, not %s (packages built with it may be rebuilt): %v",
			v.mtime.UTC().Format(time.RFC3339), err), nil
	}
	return "", nil
}

func (t storeTarget) depName(name, pkgname string) string {
	return path.Join(path.Dir(name), pkgname+t.suffix)
}

func (t storeTarget) keepsTimes() bool { return asChtimer(t.st) != nil }

func (t storeTarget) readDeps(ctx context.Context, name string) ([]string, error) {
	rc, err := t.st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	m, err := pkgfile.ReadMeta(name, store.CtxReader(ctx, rc))
	if err != nil {
		return nil, err
	}
	return blddeps(m), nil
}

func (t storeTarget) forget(ctx context.Context, name string, first bool) error {
	base := strings.TrimSuffix(path.Base(name), t.suffix)
	objs := []string{"index/" + base + ".pkginfo", "index/" + base + ".sha512"}
	if first {
		objs = append(objs, "index/merge-state.json")
	}
	var errs []error
	for _, o := range objs {
		if err := t.st.Delete(ctx, o); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pkgindex's caches (run pkgindex merge --no-reuse): %w", err)
	}
	return nil
}

// VerifyFiles verifies local package files.
func VerifyFiles(ctx context.Context, files []string, v Verifier) ([]*Result, error) {
	var out []*Result
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		f, err := os.Open(name)
		if err != nil {
			out = append(out, &Result{File: name, PkgAdd: "reject", Problems: []string{err.Error()}})
			continue
		}
		res, err := VerifyPackage(name, bufio.NewReaderSize(f, 256<<10), v)
		f.Close()
		if err != nil {
			res = &Result{File: name, PkgAdd: "reject", Problems: []string{err.Error()}}
		}
		out = append(out, res)
	}
	return out, nil
}

// VerifyStore verifies every All/*<suffix> package of a store.
func VerifyStore(ctx context.Context, st store.Store, suffix string, v Verifier) ([]*Result, error) {
	names, err := ListPackages(ctx, st, suffix)
	if err != nil {
		return nil, err
	}
	var out []*Result
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		rc, err := st.Get(ctx, name)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return out, err
			}
			out = append(out, &Result{File: name, PkgAdd: "reject", Problems: []string{err.Error()}})
			continue
		}
		res, err := VerifyPackage(name, store.CtxReader(ctx, rc), v)
		rc.Close()
		if err != nil {
			res = &Result{File: name, PkgAdd: "reject", Problems: []string{fmt.Sprintf("read from %s: %v", st, err)}}
		}
		out = append(out, res)
	}
	return out, nil
}
