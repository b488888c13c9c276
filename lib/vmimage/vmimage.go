// Package vmimage makes the worker image that qemu builder machines boot:
// a Debian cloud kernel and an initramfs that holds a static pkgrun, the
// tools a build of a pkgsrc tree runs (taken from the host's Debian
// packages with the shared libraries they load), the tree itself at
// /usr/pkgsrc, the few kernel modules a qemu guest or an EC2 instance
// needs, busybox for the init, and an /init (init.sh) that brings the
// network up and execs `pkgrun worker`. Nothing secret is in the image:
// the server's URL and pin reach a qemu machine on its kernel command
// line, its token through fw_cfg; an EC2 instance reads them all from its
// user data. WriteDisk puts kernel and initramfs on a GPT disk that UEFI
// firmware boots (an AMI's snapshot).
//
// The image is a plain newc cpio (not compressed: unpacking beats
// decompressing under TCG). Plan lists its content; the manifest
// (path, mode, size and SHA-256 of every entry) keys a cache of built
// images.
package vmimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
)

//go:embed init.sh
var initScript []byte

//go:embed udhcpc.sh
var udhcpcScript []byte

// TreePath is where the image holds the pkgsrc tree.
const TreePath = "/usr/pkgsrc"

// KitDir is where the image holds the bootstrap kit (Spec.Kit, under its
// own file name); /init gives the worker the kit it finds there.
const KitDir = "/usr/pkgbulk/kit"

// DefaultPackages are the Debian packages whose files (less
// documentation) a worker needs to build the example tree: a shell, the
// POSIX tools, bmake, patch, the compressors and a C compiler.
var DefaultPackages = []string{
	"libc6", "libgcc-s1", "dash", "bash", "coreutils", "sed", "grep", "mawk", "findutils",
	"diffutils", "tar", "gzip", "bzip2", "xz-utils", "patch", "bmake",
	"gcc", "gcc-12", "cpp", "cpp-12", "binutils", "binutils-x86-64-linux-gnu", "libbinutils",
	"libc6-dev", "libgcc-12-dev", "linux-libc-dev", "libcrypt-dev",
}

// extraPaths are files no package lists (dpkg's alternatives) that builds
// call by name.
var extraPaths = []string{"/usr/bin/cc", "/usr/bin/awk", "/usr/bin/c99", "/usr/bin/c89"}

// Modules are the kernel modules the guest loads (with what they depend
// on): the virtio network card, the virtio entropy source (without it the
// first getrandom of pkgrun waits seconds under TCG for the kernel's
// random pool), fw_cfg in sysfs (the token), overlayfs (the build
// sandboxes) and, for an EC2 (Nitro) instance, the ENA network card.
// Nitro's NVMe disks need no module: Debian's cloud kernel has the NVMe
// driver built in (a module that is built in is skipped).
var Modules = []string{"virtio_pci", "virtio_net", "virtio_rng", "qemu_fw_cfg", "overlay", "ena", "nvme"}

// Spec says what goes into an image.
type Spec struct {
	// Kernel is the vmlinuz to boot; "" takes the newest
	// /boot/vmlinuz-*-cloud-amd64. Its modules come from
	// /lib/modules/<version>.
	Kernel string
	// Pkgrun is a statically linked pkgrun (CGO_ENABLED=0).
	Pkgrun string
	// Tree is the pkgsrc tree copied to TreePath ("" for none).
	Tree string
	// Kit is a bootstrap kit (pkgrun kit) copied into KitDir: the
	// worker builds with it (--bootstrap-kit), as a real pkgsrc tree
	// needs ("" for none: the example tree builds without).
	Kit string
	// Packages are the Debian packages to take files from (nil:
	// DefaultPackages).
	Packages []string
	// Busybox is a static busybox ("" = /usr/bin/busybox, from
	// busybox-static).
	Busybox string
	// Init replaces the image's /init (nil: init.sh, which starts the
	// worker). Tests boot probes with it.
	Init []byte
}

// Image is a built image: the kernel and the initramfs to boot it with.
// Kernel may be a bzImage or an uncompressed PVH vmlinux (see ExtractPVH).
// Disk, when set, is the same image on a disk that UEFI firmware boots
// (WriteDisk), which a VM boots instead.
type Image struct {
	Kernel, Initrd string
	Disk           string
}

// entry is one file of the image.
type entry struct {
	name string      // path in the image, without the leading slash
	mode fs.FileMode // type and permissions
	src  string      // host file with the content (regular files)
	data []byte      // or the content itself
	link string      // symbolic link target
}

// Plan is the content of an image.
type Plan struct {
	Kernel  string
	entries map[string]*entry
}

// NewestKernel returns the newest /boot/vmlinuz-*-cloud-amd64.
func NewestKernel() (string, error) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	if len(ks) == 0 {
		return "", errors.New("no Debian cloud kernel in /boot (apt-get install linux-image-cloud-amd64)")
	}
	sort.Strings(ks)
	return ks[len(ks)-1], nil
}

// NewPlan resolves spec into the image's content.
func NewPlan(spec Spec) (*Plan, error) {
	if spec.Kernel == "" {
		k, err := NewestKernel()
		if err != nil {
			return nil, err
		}
		spec.Kernel = k
	}
	if spec.Busybox == "" {
		spec.Busybox = "/usr/bin/busybox"
	}
	if spec.Packages == nil {
		spec.Packages = DefaultPackages
	}
	if spec.Pkgrun == "" {
		return nil, errors.New("vmimage: no pkgrun binary")
	}
	if err := checkStatic(spec.Pkgrun); err != nil {
		return nil, err
	}
	if err := checkStatic(spec.Busybox); err != nil {
		return nil, fmt.Errorf("%w (apt-get install busybox-static)", err)
	}
	p := &Plan{Kernel: spec.Kernel, entries: map[string]*entry{}}
	// Debian's merged /usr: the top-level links first, so that every
	// path below is added at its resolved place.
	for _, top := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		if t, err := os.Readlink(top); err == nil {
			p.add(&entry{name: top[1:], mode: fs.ModeSymlink | 0o777, link: t})
		}
	}
	var files []string
	for _, pkg := range spec.Packages {
		out, err := exec.Command("dpkg-query", "-L", pkg).Output()
		if err != nil {
			return nil, fmt.Errorf("vmimage: list the files of Debian package %s: %w (is it installed?)", pkg, err)
		}
		for _, f := range strings.Split(string(out), "\n") {
			if f != "" && !excluded(f) {
				files = append(files, f)
			}
		}
	}
	files = append(files, extraPaths...)
	if spec.Kit != "" {
		libs, err := kitNeeds(spec.Kit)
		if err != nil {
			return nil, fmt.Errorf("vmimage: bootstrap kit %s: %w", spec.Kit, err)
		}
		files = append(files, libs...)
	}
	todo := files
	seenLib := map[string]bool{}
	for len(todo) > 0 {
		f := todo[0]
		todo = todo[1:]
		more, err := p.addHost(f)
		if err != nil {
			return nil, err
		}
		todo = append(todo, more...)
		if !seenLib[f] {
			seenLib[f] = true
			for _, l := range needed(f) {
				if !seenLib[l] {
					todo = append(todo, l)
				}
			}
		}
	}
	// Busybox for the init (its applets are called as `busybox NAME`, so
	// that the Debian tools stay the ones builds see) and pkgrun.
	p.add(&entry{name: "usr/bin/busybox", mode: 0o755, src: spec.Busybox})
	p.add(&entry{name: "usr/bin/pkgrun", mode: 0o755, src: spec.Pkgrun})
	init := initScript
	if spec.Init != nil {
		init = spec.Init
	}
	p.add(&entry{name: "init", mode: 0o755, data: init})
	p.add(&entry{name: "etc/pkgbulk/udhcpc.sh", mode: 0o755, data: udhcpcScript})
	if err := p.addModules(spec.Kernel); err != nil {
		return nil, err
	}
	p.add(&entry{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")})
	p.add(&entry{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")})
	p.add(&entry{name: "etc/hosts", mode: 0o644, data: []byte("127.0.0.1 localhost\n")})
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "root", "var/tmp", "var/pkgbulk", "etc/pkgbulk"} {
		p.dir(d)
	}
	if spec.Tree != "" {
		if err := p.addTree(spec.Tree, TreePath[1:]); err != nil {
			return nil, err
		}
	}
	if spec.Kit != "" {
		fi, err := os.Stat(spec.Kit)
		if err != nil {
			return nil, fmt.Errorf("vmimage: bootstrap kit: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("bootstrap kit %s: not a file", spec.Kit)
		}
		p.add(&entry{name: path.Join(KitDir[1:], filepath.Base(spec.Kit)), mode: 0o644, src: spec.Kit})
	}
	return p, nil
}

// excluded are package files a worker has no use for: documentation,
// translations, and the compiler's parts a plain C build never runs (LTO,
// sanitizers, plugins, static C libraries).
func excluded(f string) bool {
	for _, pre := range []string{"/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale",
		"/usr/share/lintian", "/usr/share/bug", "/usr/share/gcc", "/usr/share/bash-completion",
		"/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/x86_64-linux-gnu/audit", "/etc/"} {
		if f == pre || strings.HasPrefix(f, pre+"/") {
			return true
		}
	}
	b := path.Base(f)
	if strings.Contains(f, "/gcc/x86_64-linux-gnu/") {
		if b == "lto1" || b == "plugin" || strings.Contains(f, "/plugin/") || b == "liblto_plugin.so" {
			return true
		}
	}
	for _, part := range []string{"lto-dump", "ld.gold", "-dwp", "gprofng", "gcov", "-gp-"} {
		if strings.Contains(b, part) {
			return true
		}
	}
	for _, pre := range []string{"libasan", "libtsan", "liblsan", "libubsan", "libhwasan", "libitm", "libquadmath", "libatomic", "libgomp"} {
		if strings.HasPrefix(b, pre) {
			return true
		}
	}
	if strings.HasSuffix(b, ".a") && strings.HasPrefix(f, "/usr/lib/x86_64-linux-gnu/") && b != "libc_nonshared.a" {
		return true
	}
	return false
}

// resolve returns the path of f with the symbolic links of its directory
// resolved (so /bin/sh lands at usr/bin/sh under merged /usr).
func resolve(f string) string {
	d, err := filepath.EvalSymlinks(filepath.Dir(f))
	if err != nil {
		return f
	}
	return filepath.Join(d, filepath.Base(f))
}

// addHost adds the host's file f (a directory, a file or a symbolic link)
// and returns more host paths to add (a link's target).
func (p *Plan) addHost(f string) ([]string, error) {
	r := resolve(f)
	name := strings.TrimPrefix(r, "/")
	if _, ok := p.entries[name]; ok {
		return nil, nil
	}
	fi, err := os.Lstat(r)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // a diversion or an alternative that is not set
		}
		return nil, err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(r)
		if err != nil {
			return nil, err
		}
		p.add(&entry{name: name, mode: fs.ModeSymlink | 0o777, link: t})
		if !path.IsAbs(t) {
			t = path.Join(path.Dir(r), t)
		}
		return []string{t}, nil
	case fi.IsDir():
		p.dir(name)
	case fi.Mode().IsRegular():
		p.add(&entry{name: name, mode: fi.Mode().Perm(), src: r})
	}
	return nil, nil
}

// needed returns the shared libraries an ELF file loads, as host paths.
func needed(f string) []string {
	ef, err := elf.Open(resolve(f))
	if err != nil {
		return nil
	}
	defer ef.Close()
	return neededBy(ef)
}

// neededBy returns the interpreter and the shared libraries ef loads
// that the host has, as host paths.
func neededBy(ef *elf.File) []string {
	var out []string
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err == nil {
				out = append(out, strings.TrimRight(string(b), "\x00"))
			}
		}
	}
	libs, _ := ef.ImportedLibraries()
	for _, l := range libs {
		for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"} {
			c := filepath.Join(d, l)
			if _, err := os.Stat(c); err == nil {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// kitNeeds returns the host's shared libraries that the programs and
// libraries of a bootstrap kit load (a kit made on a Debian host links
// its pkg_install tools against the host's libcrypto, for one), so that
// the image holds them too.
func kitNeeds(kit string) ([]string, error) {
	f, err := os.Open(kit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dr, _, closeDR, err := pkgfile.Decompress(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return nil, err
	}
	defer closeDR()
	tr := tar.NewReader(dr)
	seen := map[string]bool{}
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || h.Size < 4 || h.Size > 256<<20 {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(b, []byte("\x7fELF")) {
			continue
		}
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			continue
		}
		for _, l := range neededBy(ef) {
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
}

// addModules adds the kernel modules and an /etc/pkgbulk/modules that
// lists them in load order.
func (p *Plan) addModules(kernel string) error {
	ver := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	dir := filepath.Join("/lib/modules", ver)
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("vmimage: the modules of kernel %s: %w", kernel, err)
	}
	deps := map[string][]string{} // module file -> its dependencies' files
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dep))
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		n := strings.TrimSuffix(path.Base(mod), path.Ext(mod))
		n = strings.TrimSuffix(n, ".ko")
		byName[strings.ReplaceAll(n, "-", "_")] = mod
	}
	var order []string
	done := map[string]bool{}
	var visit func(m string)
	visit = func(m string) {
		if done[m] {
			return
		}
		done[m] = true
		// modules.dep lists a module's dependencies deepest last.
		ds := deps[m]
		for i := len(ds) - 1; i >= 0; i-- {
			visit(ds[i])
		}
		order = append(order, m)
	}
	for _, n := range Modules {
		m, ok := byName[n]
		if !ok {
			// Built into this kernel: nothing to load.
			continue
		}
		visit(m)
	}
	var list bytes.Buffer
	for _, m := range order {
		if !strings.HasSuffix(m, ".ko") {
			return fmt.Errorf("vmimage: module %s is compressed; busybox insmod needs a plain .ko", m)
		}
		name := path.Join("usr/lib/modules", ver, m)
		p.add(&entry{name: name, mode: 0o644, src: filepath.Join(dir, m)})
		fmt.Fprintf(&list, "/%s\n", name)
	}
	p.add(&entry{name: "etc/pkgbulk/modules", mode: 0o644, data: list.Bytes()})
	return nil
}

// addTree copies the directory tree src to dst in the image.
func (p *Plan) addTree(src, dst string) error {
	return filepath.WalkDir(src, func(f string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, f)
		name := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			p.dir(name)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(f)
			if err != nil {
				return err
			}
			p.add(&entry{name: name, mode: fs.ModeSymlink | 0o777, link: t})
		case fi.Mode().IsRegular():
			p.add(&entry{name: name, mode: fi.Mode().Perm(), src: f})
		}
		return nil
	})
}

func (p *Plan) dir(name string) {
	if name == "" || name == "." {
		return
	}
	if _, ok := p.entries[name]; !ok {
		p.entries[name] = &entry{name: name, mode: fs.ModeDir | 0o755}
	}
}

func (p *Plan) add(e *entry) {
	for d := path.Dir(e.name); d != "." && d != "/"; d = path.Dir(d) {
		p.dir(d)
	}
	p.entries[e.name] = e
}

// sorted returns the entries, parents before children.
func (p *Plan) sorted() []*entry {
	es := make([]*entry, 0, len(p.entries))
	for _, e := range p.entries {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es
}

func (e *entry) open() (io.ReadCloser, int64, error) {
	if e.src == "" {
		return io.NopCloser(bytes.NewReader(e.data)), int64(len(e.data)), nil
	}
	f, err := os.Open(e.src)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// WriteManifest writes one line per entry (mode, size, SHA-256 or link
// target, path), after the kernel's: what makes two images the same.
func (p *Plan) WriteManifest(w io.Writer) error {
	bw := bufio.NewWriter(w)
	sum := func(r io.Reader) (string, int64, error) {
		h := sha256.New()
		n, err := io.Copy(h, r)
		return hex.EncodeToString(h.Sum(nil)), n, err
	}
	kf, err := os.Open(p.Kernel)
	if err != nil {
		return err
	}
	ks, kn, err := sum(kf)
	kf.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, "kernel %d %s %s\n", kn, ks, filepath.Base(p.Kernel))
	for _, e := range p.sorted() {
		switch {
		case e.mode&fs.ModeSymlink != 0:
			fmt.Fprintf(bw, "l - %s %s\n", e.link, e.name)
		case e.mode.IsDir():
			fmt.Fprintf(bw, "d %o - %s\n", e.mode.Perm(), e.name)
		default:
			r, _, err := e.open()
			if err != nil {
				return err
			}
			s, n, err := sum(r)
			r.Close()
			if err != nil {
				return fmt.Errorf("vmimage: %s: %w", e.src, err)
			}
			fmt.Fprintf(bw, "f %o %d %s %s\n", e.mode.Perm(), n, s, e.name)
		}
	}
	return bw.Flush()
}

// WriteCPIO writes the initramfs: a newc cpio archive of the entries,
// owned by root, with mtime 0 (the same plan gives the same bytes).
func (p *Plan) WriteCPIO(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	ino := 1
	for _, e := range p.sorted() {
		var mode uint32
		var body io.Reader
		var size int64
		switch {
		case e.mode&fs.ModeSymlink != 0:
			mode = 0o120000 | 0o777
			body, size = strings.NewReader(e.link), int64(len(e.link))
		case e.mode.IsDir():
			mode = 0o040000 | uint32(e.mode.Perm())
		default:
			r, n, err := e.open()
			if err != nil {
				return err
			}
			mode = 0o100000 | uint32(e.mode.Perm())
			body, size = r, n
		}
		if err := cpioHeader(bw, ino, mode, size, e.name); err != nil {
			return err
		}
		ino++
		if body != nil {
			n, err := io.Copy(bw, body)
			if err != nil {
				return fmt.Errorf("vmimage: %s: %w", e.name, err)
			}
			if n != size {
				return fmt.Errorf("vmimage: %s changed while it was copied", e.name)
			}
			pad(bw, size)
		}
		if c, ok := body.(io.Closer); ok {
			c.Close()
		}
	}
	if err := cpioHeader(bw, 0, 0, 0, "TRAILER!!!"); err != nil {
		return err
	}
	return bw.Flush()
}

func cpioHeader(w *bufio.Writer, ino int, mode uint32, size int64, name string) error {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	_, err := fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\x00",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0, name)
	pad(w, int64(110+len(name)+1))
	return err
}

func pad(w *bufio.Writer, n int64) {
	if r := n % 4; r != 0 {
		w.Write(make([]byte, 4-r))
	}
}

// Build writes the image into dir (vmlinuz and initrd.img) and returns it.
func Build(spec Spec, dir string) (Image, error) {
	p, err := NewPlan(spec)
	if err != nil {
		return Image{}, err
	}
	return p.Build(dir)
}

// Build writes the plan's kernel and initramfs into dir: vmlinuz (the
// kernel as given), vmlinux (the uncompressed kernel inside it, when it
// has a PVH entry: what qemu boots fastest) and initrd.img.
func (p *Plan) Build(dir string) (Image, error) {
	img := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, err
	}
	if err := copyFile(p.Kernel, img.Kernel); err != nil {
		return Image{}, err
	}
	os.Remove(filepath.Join(dir, "vmlinux"))
	if err := ExtractPVH(p.Kernel, filepath.Join(dir, "vmlinux")); err == nil {
		img.Kernel = filepath.Join(dir, "vmlinux")
	}
	tmp := img.Initrd + ".new"
	f, err := os.Create(tmp)
	if err != nil {
		return Image{}, err
	}
	err = p.WriteCPIO(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, img.Initrd)
	}
	if err != nil {
		os.Remove(tmp)
		return Image{}, fmt.Errorf("vmimage: write %s: %w", img.Initrd, err)
	}
	return img, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// checkStatic fails unless f is a statically linked ELF executable (the
// image has no loader for pkgrun's or busybox's own sake).
func checkStatic(f string) error {
	ef, err := elf.Open(f)
	if err != nil {
		return fmt.Errorf("vmimage: %s: %w", f, err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("vmimage: %s is dynamically linked; the image needs a static one", f)
		}
	}
	return nil
}
