package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// statusFD is the init's descriptor for reporting a set-up error: the
// write end of a pipe the caller reads after the sandbox ended. It is
// closed on exec of the command, so an empty pipe means "set up".
const statusFD = 3

// setupFailed is the init's exit code when the sandbox could not be set up
// (the reason is on the status pipe).
const setupFailed = 125

// excluded are the host's top-level entries a sandbox never shows.
var excluded = map[string]bool{
	"proc": true, "sys": true, "dev": true, "tmp": true, "run": true,
	"home": true, "root": true, "mnt": true, "media": true, "srv": true,
	"boot": true, "lost+found": true,
}

// keepCaps are the capabilities root keeps inside (Docker's default set
// less CAP_MKNOD and CAP_NET_RAW): enough to install files with owners and
// modes, change users and kill its own processes; not enough to mount,
// load modules, trace, or open files by handle.
var keepCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID,
	unix.CAP_KILL, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE, unix.CAP_SYS_CHROOT, unix.CAP_AUDIT_WRITE,
	unix.CAP_SETFCAP,
}

// Main runs the sandbox's init when the program was re-executed for one
// (os.Args[1] is InitArg) and then exits with the command's status; it
// returns at once otherwise. Call it first thing in main, and in TestMain
// of tests that run sandboxes.
func Main() {
	if len(os.Args) < 2 || os.Args[1] != InitArg {
		return
	}
	os.Exit(initMain())
}

func initMain() int {
	status := os.NewFile(statusFD, "status")
	fail := func(err error) int {
		if status != nil {
			fmt.Fprintf(status, "%v", err)
		}
		return setupFailed
	}
	var s Spec
	if err := json.Unmarshal([]byte(os.Getenv(specEnv)), &s); err != nil {
		return fail(fmt.Errorf("read the sandbox spec: %w", err))
	}
	os.Unsetenv(specEnv)
	if err := setup(&s); err != nil {
		return fail(err)
	}
	syscall.CloseOnExec(statusFD)

	// The bounding set and no_new_privs are per thread: drop them on the
	// thread that forks the command.
	runtime.LockOSThread()
	if err := dropCaps(); err != nil {
		return fail(err)
	}
	for _, kv := range s.Cmd.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			os.Setenv("PATH", v)
		}
	}
	cmd := exec.Command(s.Cmd.Path, s.Cmd.Args...)
	if cmd.Err != nil {
		return fail(fmt.Errorf("%s: %w", s.Cmd.Path, cmd.Err))
	}
	cmd.Dir = s.Cmd.Dir
	cmd.Env = s.Cmd.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if s.Cmd.UserSet {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: s.Cmd.Uid, Gid: s.Cmd.Gid, Groups: []uint32{s.Cmd.Gid}}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	status.Close()
	pid := cmd.Process.Pid
	go func() {
		for sig := range sigs {
			syscall.Kill(pid, sig.(syscall.Signal))
		}
	}()
	// As PID 1, reap every process until the command itself ends; the
	// kernel kills the rest when this process exits.
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 127
		}
		if wpid != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// builder assembles the root.
type builder struct {
	root   string
	binds  map[string]string // sandbox path -> host path of read-only host binds
	ro     []string          // tmpfs made read-only once the root is complete
	placed []placement       // mounts over the base, in order
	layers string            // host directory of the job's writable layers ("": none)
	hidden map[string]bool   // Spec.Hide
}

func setup(s *Spec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mounts private: %w", err)
	}
	b := &builder{root: s.Root, binds: map[string]string{}, layers: s.Layers, hidden: map[string]bool{}}
	for _, h := range s.Hide {
		b.hidden[filepath.Clean(h)] = true
	}
	if err := unix.Mount("tmpfs", b.root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount the root tmpfs on %s: %w", b.root, err)
	}
	b.ro = append(b.ro, "/")
	ents, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	targets := map[string]bool{}
	for _, m := range s.Mounts {
		targets[m.Target] = true
	}
	for _, e := range ents {
		if excluded[e.Name()] {
			continue
		}
		if err := b.placeHost("/"+e.Name(), "/"+e.Name()); err != nil {
			return err
		}
	}
	for _, h := range s.Hide {
		if err := b.hide(filepath.Clean(h)); err != nil {
			return err
		}
	}
	// The fixed system directories before the job's mounts, so that a
	// mount may go below /tmp or /dev/shm.
	if err := b.system(targets); err != nil {
		return err
	}
	mounts := slices.Clone(s.Mounts)
	slices.SortStableFunc(mounts, func(a, c Mount) int {
		return strings.Count(a.Target, "/") - strings.Count(c.Target, "/")
	})
	for _, m := range mounts {
		if err := b.mount(m); err != nil {
			return fmt.Errorf("sandbox mount %s: %w", m.Target, err)
		}
	}
	if err := b.pivot(); err != nil {
		return err
	}
	if !s.Network {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bring up the sandbox's loopback: %w", err)
		}
	}
	return nil
}

// placeHost shows the host's entry at host at target: with Spec.Layers, a
// directory is an overlay with the job's own writable layer over it (a
// directory that holds the layers themselves is split into its entries
// instead, since an overlay cannot hold its own upper directory); without,
// or for anything but a directory, as bindHost does. Hidden paths are left
// out.
func (b *builder) placeHost(host, target string) error {
	if b.hidden[host] {
		return nil
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return err
	}
	if b.layers == "" || !fi.IsDir() {
		return b.bindHost(host, target)
	}
	full := b.root + target
	if host == b.layers || strings.HasPrefix(b.layers, host+"/") {
		if err := os.Mkdir(full, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := unix.Mount("tmpfs", full, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("split %s: %w", host, err)
		}
		b.ro = append(b.ro, target)
		if host == b.layers {
			return nil
		}
		ents, err := os.ReadDir(host)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := b.placeHost(filepath.Join(host, e.Name()), path.Join(target, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	name := strings.ReplaceAll(strings.TrimPrefix(host, "/"), "/", "%")
	upper, work := filepath.Join(b.layers, name, "upper"), filepath.Join(b.layers, name, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(full, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	opts := "lowerdir=" + host + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", full, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("overlay over %s: %w", host, err)
	}
	return nil
}

// bindHost binds the host's entry at host to target: directories and
// files read-only (without what is mounted below them), symbolic links
// copied.
func (b *builder) bindHost(host, target string) error {
	fi, err := os.Lstat(host)
	if err != nil {
		return err
	}
	full := b.root + target
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(host)
		if err != nil {
			return err
		}
		return os.Symlink(l, full)
	case fi.IsDir():
		if err := os.Mkdir(full, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case fi.Mode().IsRegular():
		if err := createFile(full); err != nil {
			return err
		}
	default:
		return nil // sockets, devices at the top of /: not shown
	}
	// Not recursive: what is mounted below a host directory (another
	// job's sandbox root among it) stays out of the sandbox.
	if err := unix.Mount(host, full, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", host, err)
	}
	if err := readOnly(full); err != nil {
		return fmt.Errorf("bind %s: %w", host, err)
	}
	if fi.IsDir() {
		b.binds[target] = host
	}
	return nil
}

// readOnly makes the mount at p and everything below it read-only, nosuid
// and nodev.
func readOnly(p string) error {
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("make %s read-only: %w", p, err)
	}
	return nil
}

// hide covers a host path the sandbox would show with an empty directory
// (made read-only at the end) or, for a file, with /dev/null.
func (b *builder) hide(h string) error {
	fi, err := os.Lstat(b.root + h)
	if err != nil {
		return nil // not visible anyway
	}
	if fi.IsDir() {
		return b.place(placement{target: h, dir: true, apply: func(full string) error {
			if err := unix.Mount("tmpfs", full, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
				return fmt.Errorf("hide %s: %w", h, err)
			}
			b.ro = append(b.ro, h)
			return nil
		}})
	}
	return b.place(placement{target: h, apply: func(full string) error {
		if err := unix.Mount("/dev/null", full, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hide %s: %w", h, err)
		}
		return nil
	}})
}

// placement is a mount made over the base at target. Splitting a directory
// above it (see split) hides it, so split makes it again.
type placement struct {
	target string
	dir    bool
	apply  func(full string) error
}

// place makes p's mount point and mounts it.
func (b *builder) place(p placement) error {
	if err := b.apply(p); err != nil {
		return err
	}
	b.placed = append(b.placed, p)
	return nil
}

func (b *builder) apply(p placement) error {
	if err := b.ensure(p.target, p.dir); err != nil {
		return err
	}
	if err := p.apply(b.root + p.target); err != nil {
		return err
	}
	for k := range b.binds {
		if k == p.target || strings.HasPrefix(k, p.target+"/") {
			delete(b.binds, k)
		}
	}
	return nil
}

// system places /dev, /proc, /sys, /run and, unless the spec mounts them,
// /tmp and /var/tmp.
func (b *builder) system(targets map[string]bool) error {
	// /dev: a tmpfs with the harmless devices bound from the host.
	dev := b.root + "/dev"
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, d)
		if err := createFile(p); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+d, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	for name, to := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(to, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	for _, d := range []string{"shm", "pts"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	b.ro = append(b.ro, "/dev")

	for _, d := range []string{"proc", "sys", "run"} {
		if err := os.Mkdir(b.root+"/"+d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("proc", b.root+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := unix.Mount("/sys", b.root+"/sys", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /sys: %w", err)
	}
	if err := readOnly(b.root + "/sys"); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", b.root+"/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	for _, t := range []string{"/tmp", "/var/tmp"} {
		if targets[t] {
			continue
		}
		if err := b.mount(Mount{Target: t, Tmpfs: true}); err != nil {
			return err
		}
	}
	return nil
}

// mount places one Mount.
func (b *builder) mount(m Mount) error {
	dir := true
	if m.Source != "" {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return err
		}
		dir = fi.IsDir()
	}
	return b.place(placement{target: m.Target, dir: dir, apply: func(full string) error {
		switch {
		case m.Tmpfs:
			return unix.Mount("tmpfs", full, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
		case len(m.Lower) > 0:
			opts := "lowerdir=" + strings.Join(m.Lower, ":") + ",upperdir=" + m.Upper + ",workdir=" + m.Work
			if err := unix.Mount("overlay", full, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return fmt.Errorf("overlay %s: %w", opts, err)
			}
			return nil
		}
		if err := unix.Mount(m.Source, full, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", m.Source, err)
		}
		if !m.Writable {
			return readOnly(full)
		}
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		return unix.MountSetattr(unix.AT_FDCWD, full, unix.AT_RECURSIVE, attr)
	}})
}

// ensure makes t exist in the sandbox as a directory (or a file), making
// the parent writable by splitting a read-only host directory when needed.
func (b *builder) ensure(t string, dir bool) error {
	full := b.root + t
	fi, err := os.Lstat(full)
	if err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link in the sandbox", t)
		}
		if fi.IsDir() != dir {
			return fmt.Errorf("%s exists in the sandbox as another kind of file", t)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := path.Dir(t)
	if parent != "/" {
		if err := b.ensure(parent, true); err != nil {
			return err
		}
	}
	err = create(full, dir)
	if errors.Is(err, syscall.EROFS) {
		if err := b.split(parent); err != nil {
			return err
		}
		err = create(full, dir)
	}
	return err
}

// split replaces the read-only host directory at t by a tmpfs holding
// read-only binds of each of its entries, so new mount points can be made
// in it.
func (b *builder) split(t string) error {
	host, ok := b.hostOf(t)
	if !ok {
		return fmt.Errorf("cannot make a mount point in %s: it is read-only and not a host directory", t)
	}
	ents, err := os.ReadDir(host)
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", b.root+t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("split %s: %w", t, err)
	}
	b.ro = append(b.ro, t)
	delete(b.binds, t)
	for _, e := range ents {
		if err := b.bindHost(filepath.Join(host, e.Name()), path.Join(t, e.Name())); err != nil {
			return err
		}
	}
	// The tmpfs covers what was placed below t: place it again.
	for _, p := range b.placed {
		if strings.HasPrefix(p.target, t+"/") {
			if err := b.apply(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostOf maps a sandbox path inside a read-only host bind to its host path.
func (b *builder) hostOf(t string) (string, bool) {
	for p := t; ; p = path.Dir(p) {
		if h, ok := b.binds[p]; ok {
			return filepath.Join(h, strings.TrimPrefix(t, p)), true
		}
		if p == "/" {
			return "", false
		}
	}
}

func create(p string, dir bool) error {
	if dir {
		return os.Mkdir(p, 0o755)
	}
	return createFile(p)
}

func createFile(p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// pivot makes the assembled tree the root, drops the host's and makes the
// sandbox's own tmpfs read-only.
func (b *builder) pivot() error {
	old := filepath.Join(b.root, ".oldroot")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(b.root, old); err != nil {
		return fmt.Errorf("pivot_root %s: %w", b.root, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := os.Remove("/.oldroot"); err != nil {
		return err
	}
	for _, p := range b.ro {
		// A tmpfs that a later mount covered (a hidden path or a split
		// directory below the job's own /var/tmp) is gone from the view,
		// or its path is now a plain directory of the covering mount.
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
		if errors.Is(err, unix.EINVAL) {
			continue
		}
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}

// dropCaps drops every capability outside keepCaps from the calling
// thread's bounding set and sets no_new_privs, so the command, as root or
// not, can never gain them.
func dropCaps() error {
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if slices.Contains(keepCaps, c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}

// loopbackUp brings up lo in a new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func available() error {
	if os.Geteuid() != 0 {
		return errors.New("building in a sandbox needs root (mount namespaces and bind mounts)")
	}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(b), "\toverlay\n") {
		return errors.New("building in a sandbox needs overlayfs (modprobe overlay)")
	}
	err = unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	if errors.Is(err, syscall.ENOSYS) {
		return errors.New("building in a sandbox needs Linux 5.12 or newer (mount_setattr)")
	}
	return nil
}
