package sign

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/ar"
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
	fmt.Fprintln(w, line)
}

// target abstracts where a package lives: a local file replaced by rename,
// or a store object replaced by Put.
type target interface {
	// fetch returns a readable local copy (or the file itself) with the
	// header fields to use, and a token describing the version read.
	fetch(ctx context.Context, name string) (f *os.File, st Stat, version string, cleanup func(), err error)
	// tempFile creates the file the signed package is written to.
	tempFile(name string) (*os.File, error)
	// replace publishes tmp (already synced) as name if name still is
	// at version; it removes tmp in every case.
	replace(ctx context.Context, name, version string, tmp *os.File, size int64) error
}

// SignFiles signs local package files in place (new file, fsync, rename,
// fsync of the directory).
func SignFiles(ctx context.Context, files []string, s Signer, o Options) (*Report, error) {
	rep := &Report{Target: strings.Join(files, " "), Signer: s.Identity()}
	start := time.Now()
	err := signAll(ctx, fileTarget{}, files, s, o, rep)
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// SignStore signs every All/*<suffix> package of a store, replacing each
// with Put (atomic for every backend).
func SignStore(ctx context.Context, st store.Store, s Signer, o Options) (*Report, error) {
	rep := &Report{Target: st.String(), Signer: s.Identity()}
	start := time.Now()
	names, err := ListPackages(ctx, st, o.Suffix)
	if err != nil {
		return nil, err
	}
	err = signAll(ctx, storeTarget{st: st, dir: o.TempDir}, names, s, o, rep)
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// signAll signs names with o.Jobs workers; outcomes keep the order of
// names. Once ctx is cancelled no new package is started, the ones under
// way finish (each is all-or-nothing), and ctx's error is returned.
func signAll(ctx context.Context, t target, names []string, s Signer, o Options, rep *Report) error {
	jobs := max(o.Jobs, 1)
	outs := make([]*Outcome, len(names))
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for w := 0; w < min(jobs, len(names)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == len(names) || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				out := signOne(ctx, t, names[i], s)
				mu.Lock()
				outs[i] = &out
				if o.Progress != nil {
					progressLine(o.Progress, out)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, out := range outs {
		if out != nil {
			rep.add(*out, nil)
		}
	}
	return ctx.Err()
}

// ListPackages returns the sorted names of All/*<suffix> in a store.
func ListPackages(ctx context.Context, st store.Store, suffix string) ([]string, error) {
	if suffix == "" {
		suffix = ".tgz"
	}
	var names []string
	err := st.List(ctx, "All/", func(i store.Info) error {
		base := i.Name[strings.LastIndexByte(i.Name, '/')+1:]
		if strings.HasSuffix(base, suffix) && !strings.HasPrefix(base, store.TempPrefix) &&
			!strings.Contains(i.Name[len("All/"):], "/") {
			names = append(names, i.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list All/ in %s: %w", st, err)
	}
	sort.Strings(names)
	return names, nil
}

func signOne(ctx context.Context, t target, name string, s Signer) Outcome {
	out := Outcome{Name: name, Action: ActionFailed}
	f, st, version, cleanup, err := t.fetch(ctx, name)
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
	keep = true
	if err := t.replace(ctx, name, version, tmp, tfi.Size()); err != nil {
		out.Reason = err.Error()
		return out
	}
	out.Action, out.Size = action, tfi.Size()
	return out
}

type fileTarget struct{}

func fileVersion(fi os.FileInfo) string {
	return fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
}

func (fileTarget) fetch(_ context.Context, name string) (*os.File, Stat, string, func(), error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, Stat{}, "", nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Stat{}, "", nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Stat{}, "", nil, fmt.Errorf("%s is not a regular file", name)
	}
	return f, StatOf(fi), fileVersion(fi), func() { f.Close() }, nil
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

func (fileTarget) replace(_ context.Context, name, version string, tmp *os.File, _ int64) error {
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if fileVersion(fi) != version {
		return fmt.Errorf("%s changed while it was being signed; left alone (run pkgsign again)", name)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

type storeTarget struct {
	st  store.Store
	dir string
}

func storeVersion(i store.Info) string {
	return fmt.Sprintf("%d %d", i.Size, i.ModTime.UnixNano())
}

func (t storeTarget) fetch(ctx context.Context, name string) (*os.File, Stat, string, func(), error) {
	info, err := t.st.Stat(ctx, name)
	if err != nil {
		return nil, Stat{}, "", nil, err
	}
	rc, err := t.st.Get(ctx, name)
	if err != nil {
		return nil, Stat{}, "", nil, err
	}
	defer rc.Close()
	f, err := os.CreateTemp(t.dir, store.TempPrefix+"get-*")
	if err != nil {
		return nil, Stat{}, "", nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, store.CtxReader(ctx, rc))
	if err != nil {
		cleanup()
		return nil, Stat{}, "", nil, fmt.Errorf("get %s from %s: %w", name, t.st, err)
	}
	if n != info.Size {
		cleanup()
		return nil, Stat{}, "", nil, fmt.Errorf("get %s from %s: %d bytes, Stat said %d (changing under us?)", name, t.st, n, info.Size)
	}
	// Stores keep no owner or mode: root-owned 0644, as pkgsrc's
	// packages directory usually has them.
	st := Stat{ModTime: info.ModTime, Mode: 0o100644}
	return f, st, storeVersion(info), cleanup, nil
}

func (t storeTarget) tempFile(string) (*os.File, error) {
	return os.CreateTemp(t.dir, store.TempPrefix+"signed-*")
}

func (t storeTarget) replace(ctx context.Context, name, version string, tmp *os.File, size int64) error {
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	info, err := t.st.Stat(ctx, name)
	if err != nil {
		return err
	}
	if storeVersion(info) != version {
		return fmt.Errorf("%s changed in %s while it was being signed; left alone (run pkgsign again)", name, t.st)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := t.st.Put(ctx, name, tmp, size); err != nil {
		return fmt.Errorf("put %s to %s: %w", name, t.st, err)
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
