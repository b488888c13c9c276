package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
)

// Fixed paths inside a job's sandbox.
const (
	boxLogs     = "/pkgbulk/log"        // the job's logs/ (WRKLOG is here)
	boxDeps     = "/pkgbulk/deps"       // the dependency packages fetched from the store
	boxTool     = "/pkgbulk/bin/pkgrun" // this program, for the built-in installer
	boxWrkObj   = "/tmp/work"           // WRKOBJDIR unless mk.conf sets it
	boxPackages = "/tmp/packages"       // PACKAGES unless mk.conf sets it
	defaultPath = "/usr/sbin:/usr/bin:/sbin:/bin"
)

// box is the sandbox of one job: the host directories holding the job's
// state and the view every command of the job runs in.
//
// Host side, in the job directory: root/ (the sandbox root's mount point,
// empty on the host), layers/ (what the job writes over the host's
// directories: a package whose PREFIX is /, create-usergroup), tmp/ (the job's /tmp: WRKOBJDIR and PACKAGES by
// default), vartmp/ (/var/tmp), logs/, deps/, and either kit/<n>/{upper,
// work} (the overlays over the unpacked bootstrap kit's roots) or prefix/
// (bound at Settings.Prefix when there is no kit).
type box struct {
	dir                            string
	layers                         string // the job's writable layers over the host's directories
	root, tmp, vartmp, logs, deps  string
	prefix                         string // host directory at Settings.Prefix, without a kit
	prefixAt                       string
	kit                            *kit
	uppers                         []string // host upper directory of each kit root (dir roots; "" for files)
	tree                           string
	hide                           []string
	network                        string // which phases get the host's network: checksum, all, none
	self                           string
	pkgAdd, pkgDelete, make, paths string
	extra                          []sandbox.Mount
}

// newBox makes the job's directories. The caller removes b.dir.
func (r *run) newBox(root string) (*box, error) {
	b := &box{
		dir: root, root: filepath.Join(root, "root"), tmp: filepath.Join(root, "tmp"), layers: filepath.Join(root, "layers"),
		vartmp: filepath.Join(root, "vartmp"), logs: filepath.Join(root, "logs"),
		deps: filepath.Join(root, "deps"), tree: r.pkgsrc(), network: r.Settings.Network,
		extra: r.testMounts,
	}
	for _, d := range []string{b.root, b.tmp, b.vartmp, b.logs, b.deps, b.layers} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{b.tmp, b.vartmp} {
		if err := os.Chmod(d, 0o1777); err != nil {
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find pkgrun's own executable: %w", err)
	}
	b.self = self
	// What a build must never see: other jobs, the kits' cache, a file
	// store, the keys that reach a store.
	b.hide = append(b.hide, r.WorkRoot())
	if d := storeRoot(r.Store); d != "" {
		b.hide = append(b.hide, d)
	}
	if a := r.Settings.StoreAccess; a != nil {
		for _, f := range []string{a.SSHIdentity, a.KnownHosts} {
			if f != "" {
				if abs, err := filepath.Abs(f); err == nil {
					b.hide = append(b.hide, abs)
				}
			}
		}
	}
	b.hide = append(b.hide, r.Settings.SandboxHide...)

	var bins []string
	if r.kit != nil {
		b.kit = r.kit
		for i, kr := range r.kit.roots {
			if !kr.dir {
				b.uppers = append(b.uppers, "")
				continue
			}
			u := filepath.Join(root, "kit", fmt.Sprint(i))
			for _, d := range []string{filepath.Join(u, "upper"), filepath.Join(u, "work")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return nil, err
				}
			}
			b.uppers = append(b.uppers, filepath.Join(u, "upper"))
			bins = append(bins, kr.path+"/sbin", kr.path+"/bin")
		}
		b.pkgAdd, b.pkgDelete, b.make = r.kit.pkgAdd, r.kit.pkgDelete, r.kit.make
	} else {
		b.prefix, b.prefixAt = filepath.Join(root, "prefix"), r.Settings.Prefix
		if err := os.Mkdir(b.prefix, 0o755); err != nil {
			return nil, err
		}
		bins = append(bins, b.prefixAt+"/sbin", b.prefixAt+"/bin")
	}
	if r.Settings.Make != "" {
		b.make = r.Settings.Make
	}
	if b.make == "" {
		b.make = "bmake"
	}
	b.paths = strings.Join(append(bins, defaultPath), ":")
	if c := r.unpriv; c != nil {
		// The unprivileged user builds in WRKOBJDIR and writes work.log.
		work := filepath.Join(b.tmp, strings.TrimPrefix(boxWrkObj, "/tmp/"))
		if err := os.Mkdir(work, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(work, int(c.Uid), int(c.Gid)); err != nil {
			return nil, fmt.Errorf("unprivileged_user: %w", err)
		}
	}
	return b, nil
}

// storeRoot is the directory of a file store ("" for other stores).
func storeRoot(s store.Store) string {
	for {
		if f, ok := s.(*filestore.Store); ok {
			return f.Root()
		}
		u, ok := s.(interface{ Unwrap() store.Store })
		if !ok {
			return ""
		}
		s = u.Unwrap()
	}
}

// spec is the sandbox of one command.
func (b *box) spec(c sandbox.Cmd, network bool) sandbox.Spec {
	m := []sandbox.Mount{
		{Target: "/tmp", Source: b.tmp, Writable: true},
		{Target: "/var/tmp", Source: b.vartmp, Writable: true},
		{Target: boxLogs, Source: b.logs, Writable: true},
		{Target: boxDeps, Source: b.deps},
		{Target: boxTool, Source: b.self},
		{Target: b.tree, Source: b.tree},
	}
	if b.kit != nil {
		for i, kr := range b.kit.roots {
			src := filepath.Join(b.kit.dir, filepath.FromSlash(strings.TrimPrefix(kr.path, "/")))
			if !kr.dir {
				m = append(m, sandbox.Mount{Target: kr.path, Source: src})
				continue
			}
			m = append(m, sandbox.Mount{Target: kr.path, Lower: []string{src}, Upper: b.uppers[i], Work: filepath.Join(filepath.Dir(b.uppers[i]), "work")})
		}
	} else {
		m = append(m, sandbox.Mount{Target: b.prefixAt, Source: b.prefix, Writable: true})
	}
	m = append(m, b.extra...)
	net := b.network == "all" || network && b.network != "none"
	return sandbox.Spec{Root: b.root, Layers: b.layers, Mounts: m, Hide: b.hide, Network: net, Cmd: c}
}

// env is the whole environment of a command in the sandbox: a fixed
// minimal set, then Settings.Environment. Nothing of pkgrun's own
// environment (store keys, SSH_AUTH_SOCK...) reaches a build. WRKOBJDIR,
// PACKAGES and DISTDIR come from the environment, so the kit's mk.conf, which
// make reads after it, decides where they are when it sets them.
func (r *run) env() []string {
	env := []string{
		"PATH=" + r.box.paths,
		"HOME=/tmp",
		"SHELL=/bin/sh",
		"TERM=dumb",
		"WRKOBJDIR=" + boxWrkObj,
		"PACKAGES=" + boxPackages,
		"DISTDIR=" + boxDistdir,
	}
	if n := r.job.MakeJobs; n > 0 {
		// Like WRKOBJDIR: from the environment, so mk.conf may override
		// it; MAKE_JOBS_SAFE=no packages ignore it, as in pkgsrc.
		env = append(env, "MAKE_JOBS="+strconv.Itoa(n))
	}
	return append(env, r.Settings.Environment...)
}

// inBox runs a command in the job's sandbox under opts' output and limits.
// A sandbox that could not be set up is an error (a fault of the builder).
func (r *run) inBox(ctx context.Context, c sandbox.Cmd, network bool, opts proc.Cmd) (proc.Result, error) {
	if c.Env == nil {
		c.Env = r.env()
	}
	if opts.Credential != nil {
		c.UserSet, c.Uid, c.Gid = true, opts.Credential.Uid, opts.Credential.Gid
	}
	res, err := sandbox.Run(ctx, r.box.spec(c, network), opts)
	if err != nil {
		return res, fmt.Errorf("%s: %w", r.job.PkgName, err)
	}
	return res, nil
}

// hostPath maps a path the build wrote inside the sandbox (a package file)
// to the host.
func (b *box) hostPath(p string) (string, error) {
	p = path.Clean(p)
	under := func(dir string) (string, bool) {
		if p == dir {
			return "", true
		}
		rest, ok := strings.CutPrefix(p, dir+"/")
		return rest, ok
	}
	if rest, ok := under("/var/tmp"); ok {
		return filepath.Join(b.vartmp, rest), nil
	}
	if rest, ok := under("/tmp"); ok {
		return filepath.Join(b.tmp, rest), nil
	}
	if b.kit != nil {
		for i, kr := range b.kit.roots {
			if rest, ok := under(kr.path); ok && kr.dir {
				return filepath.Join(b.uppers[i], rest), nil
			}
		}
	} else if rest, ok := under(b.prefixAt); ok {
		return filepath.Join(b.prefix, rest), nil
	}
	return "", fmt.Errorf("%s is not in a directory of the job's own (/tmp, /var/tmp or the prefix)", p)
}

// boxPath maps a host file in the job's tmp/ or deps/ to its sandbox path.
func (b *box) boxPath(host string) (string, error) {
	if rest, ok := strings.CutPrefix(host, b.deps+"/"); ok {
		return boxDeps + "/" + filepath.ToSlash(rest), nil
	}
	if rest, ok := strings.CutPrefix(host, b.tmp+"/"); ok {
		return "/tmp/" + filepath.ToSlash(rest), nil
	}
	return "", fmt.Errorf("%s is not visible in the sandbox", host)
}
