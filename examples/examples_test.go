package examples

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// recordKeys is the line order of a pbulk-index record without PKG_LOCATION;
// PBULK_WEIGHT and MULTI_VERSION follow, each only when present.
var recordKeys = []string{
	"PKGNAME", "ALL_DEPENDS", "PKG_SKIP_REASON", "PKG_FAIL_REASON",
	"NO_BIN_ON_FTP", "RESTRICTED", "CATEGORIES", "MAINTAINER", "USE_DESTDIR",
	"BOOTSTRAP_PKG", "USERGROUP_PHASE", "SCAN_DEPENDS",
}

type field struct{ key, value string }

type record struct {
	location string // category/dir, as the scanner would insert it
	fields   []field
}

func (r record) get(key string) (string, bool) {
	for _, f := range r.fields {
		if f.key == key {
			return f.value, true
		}
	}
	return "", false
}

func (r record) name() string { v, _ := r.get("PKGNAME"); return v }

// deps returns the ALL_DEPENDS entries split at their first colon.
func (r record) deps(t *testing.T) [][2]string {
	t.Helper()
	v, _ := r.get("ALL_DEPENDS")
	var out [][2]string
	for _, e := range strings.Fields(v) {
		pat, path, ok := strings.Cut(e, ":")
		if !ok || !strings.HasPrefix(path, "../../") {
			t.Errorf("%s (%s): malformed ALL_DEPENDS entry %q", r.name(), r.location, e)
			continue
		}
		out = append(out, [2]string{pat, path})
	}
	return out
}

// parseRecords cuts pbulk-index output into records as pbulk-scan does: a
// record starts at a line beginning with PKGNAME=.
func parseRecords(loc, out string) ([]record, error) {
	if out == "" {
		return nil, nil
	}
	if !strings.HasSuffix(out, "\n") {
		return nil, fmt.Errorf("%s: output does not end with a newline", loc)
	}
	var recs []record
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %d has no '=': %q", loc, i+1, line)
		}
		if key == "PKGNAME" {
			recs = append(recs, record{location: loc})
		} else if len(recs) == 0 {
			return nil, fmt.Errorf("%s: line %d comes before the first PKGNAME=", loc, i+1)
		}
		r := &recs[len(recs)-1]
		r.fields = append(r.fields, field{key, value})
	}
	return recs, nil
}

// checkOrder verifies the exact key sequence of one record.
func checkOrder(r record) error {
	var keys []string
	for _, f := range r.fields {
		keys = append(keys, f.key)
	}
	want := slices.Clone(recordKeys)
	rest := keys[min(len(keys), len(want)):]
	if len(rest) > 0 && rest[0] == "PBULK_WEIGHT" {
		want = append(want, "PBULK_WEIGHT")
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == "MULTI_VERSION" {
		want = append(want, "MULTI_VERSION")
	}
	if !slices.Equal(keys, want) {
		return fmt.Errorf("%s (%s): keys %v, want %v", r.name(), r.location, keys, want)
	}
	return nil
}

// bmake runs the real bmake in dir with a clean make environment and
// returns stdout; stderr is included in the error.
func bmake(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Program(t, "bmake"), args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("bmake %s in %s: %w\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return stdout.String(), err
}

func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKECONF", "PYTHON_VERSION_REQD":
			continue
		}
		env = append(env, e)
	}
	return env
}

func treeDir(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(testenv.RepoRoot(t), "examples", name)
}

// enumerate lists category/dir locations with show-subdir-var, as pbulk does.
func enumerate(t *testing.T, root string) []string {
	t.Helper()
	out, err := bmake(t, root, "show-subdir-var", "VARNAME=SUBDIR")
	if err != nil {
		t.Fatal(err)
	}
	var locs []string
	for _, cat := range strings.Fields(out) {
		out, err := bmake(t, filepath.Join(root, cat), "show-subdir-var", "VARNAME=SUBDIR")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range strings.Fields(out) {
			locs = append(locs, cat+"/"+d)
		}
	}
	return locs
}

// scan runs `bmake pbulk-index` in every location (a few at a time) and
// returns the records in location order.
func scan(t *testing.T, root string, locs []string) []record {
	t.Helper()
	outs := make([][]record, len(locs))
	errs := make([]error, len(locs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, loc := range locs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out, err := bmake(t, filepath.Join(root, loc), "pbulk-index")
			if err == nil {
				outs[i], err = parseRecords(loc, out)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var recs []record
	for _, r := range outs {
		recs = append(recs, r...)
	}
	return recs
}

func byLocation(recs []record) map[string][]record {
	m := map[string][]record{}
	for _, r := range recs {
		m[r.location] = append(m[r.location], r)
	}
	return m
}

func TestScanTree(t *testing.T) {
	root := treeDir(t, "tree")
	locs := enumerate(t, root)
	if len(locs) < 30 {
		t.Fatalf("%d package directories, want at least 30", len(locs))
	}
	recs := scan(t, root, locs)
	loc := byLocation(recs)
	names := map[string]record{}
	for _, r := range recs {
		if err := checkOrder(r); err != nil {
			t.Error(err)
		}
		if _, dup := names[r.name()]; dup {
			t.Errorf("duplicate PKGNAME %s", r.name())
		}
		names[r.name()] = r
		if r.name() == "" || strings.ContainsAny(r.name(), " \t") || !strings.Contains(r.name(), "-") {
			t.Errorf("%s: bad PKGNAME %q", r.location, r.name())
		}
		for _, d := range r.deps(t) {
			dir := filepath.Join(root, r.location, d[1])
			if _, err := os.Stat(filepath.Join(dir, "Makefile")); err != nil {
				t.Errorf("%s: dependency %s:%s: no package directory: %v", r.name(), d[0], d[1], err)
			}
		}
		sd, _ := r.get("SCAN_DEPENDS")
		words := strings.Fields(sd)
		if !slices.IsSorted(words) || len(slices.Compact(slices.Clone(words))) != len(words) {
			t.Errorf("%s: SCAN_DEPENDS not sorted and unique: %v", r.name(), words)
		}
		for _, need := range []string{"Makefile", "../../mk/bsd.pkg.mk", "../../mk/pbulk/pbulk-index.mk"} {
			if !slices.Contains(words, need) {
				t.Errorf("%s: SCAN_DEPENDS lacks %s: %v", r.name(), need, words)
			}
		}
		if _, has := r.get("PKG_LOCATION"); has {
			t.Errorf("%s: pbulk-index must not print PKG_LOCATION", r.name())
		}
		if v, _ := r.get("USE_DESTDIR"); v != "user-destdir" {
			t.Errorf("%s: USE_DESTDIR=%q", r.name(), v)
		}
	}
	if len(recs) != 48 {
		t.Errorf("%d records, want 48 (44 directories, 4 of them with two Python variants)", len(recs))
	}
	if len(recs) < 30 {
		t.Fatalf("only %d records", len(recs))
	}

	one := func(l string) record {
		t.Helper()
		if len(loc[l]) != 1 {
			t.Fatalf("%s: %d records, want 1", l, len(loc[l]))
		}
		return loc[l][0]
	}
	want := func(r record, key, value string) {
		t.Helper()
		if v, ok := r.get(key); !ok || v != value {
			t.Errorf("%s: %s=%q (present %v), want %q", r.name(), key, v, ok, value)
		}
	}
	nonEmpty := func(r record, key string) {
		t.Helper()
		if v, _ := r.get(key); v == "" {
			t.Errorf("%s: %s is empty", r.name(), key)
		}
	}

	want(one("pkgtools/bootstrap-mk-files"), "BOOTSTRAP_PKG", "yes")
	want(one("lang/python312"), "PBULK_WEIGHT", "400")
	want(one("devel/exparallel"), "PBULK_WEIGHT", "600")
	nonEmpty(one("misc/exskip"), "PKG_SKIP_REASON")
	want(one("misc/exskip"), "PKG_FAIL_REASON", "")
	nonEmpty(one("misc/exbrokenflag"), "PKG_FAIL_REASON")
	want(one("misc/exbrokenflag"), "PKG_SKIP_REASON", "")
	nonEmpty(one("misc/exrestricted"), "RESTRICTED")
	nonEmpty(one("misc/exrestricted"), "NO_BIN_ON_FTP")
	want(one("sysutils/exdaemon"), "USERGROUP_PHASE", "pre-install")
	want(one("sysutils/exlog"), "PKGNAME", "exlog-1.2nb2")
	for _, r := range recs {
		if r.location == "lang/python312" || r.location == "devel/exparallel" {
			continue
		}
		if _, ok := r.get("PBULK_WEIGHT"); ok {
			t.Errorf("%s: unexpected PBULK_WEIGHT", r.name())
		}
	}

	// Multi-version: default (312) first, then 311.
	for _, l := range []string{"devel/py-setuptools", "devel/py-six", "textproc/py-markup", "net/py-fetch"} {
		rs := loc[l]
		if len(rs) != 2 {
			t.Errorf("%s: %d records, want 2", l, len(rs))
			continue
		}
		base := strings.TrimPrefix(l[strings.Index(l, "/")+1:], "py-")
		for i, v := range []string{"312", "311"} {
			want(rs[i], "MULTI_VERSION", " PYTHON_VERSION_REQD="+v)
			if !strings.HasPrefix(rs[i].name(), "py"+v+"-"+base+"-") {
				t.Errorf("%s record %d: PKGNAME %s, want py%s-%s-*", l, i, rs[i].name(), v, base)
			}
			if ad, _ := rs[i].get("ALL_DEPENDS"); !strings.Contains(ad, "python"+v+">=") {
				t.Errorf("%s: ALL_DEPENDS lacks python%s: %q", rs[i].name(), v, ad)
			}
		}
	}
	if r := one("devel/py-modern"); true {
		if _, ok := r.get("MULTI_VERSION"); ok {
			t.Errorf("%s: only the default version is accepted, want no MULTI_VERSION", r.name())
		}
	}
	want(one("devel/py-legacy"), "MULTI_VERSION", " PYTHON_VERSION_REQD=311")
	want(one("devel/py-legacy"), "PKGNAME", "py311-legacy-5.1")

	// The unresolvable pattern names an existing directory whose only
	// package is older than the pattern demands.
	if ad, _ := one("misc/exunresolvable").get("ALL_DEPENDS"); !strings.Contains(ad, "exwc>=99:../../textproc/exwc") {
		t.Errorf("exunresolvable: ALL_DEPENDS=%q", ad)
	}
	want(one("textproc/exwc"), "PKGNAME", "exwc-1.3")
	if ad, _ := one("textproc/exgrep").get("ALL_DEPENDS"); !strings.Contains(ad, "{exwc,exwc-ng}>=1.0:../../textproc/exwc") {
		t.Errorf("exgrep: no csh-brace pattern in %q", ad)
	}

	// The diamond.
	depDirs := func(r record) []string {
		var ds []string
		for _, d := range r.deps(t) {
			ds = append(ds, filepath.Clean(filepath.Join(r.location, d[1])))
		}
		return ds
	}
	for l, ds := range map[string][]string{
		"misc/diamond-d": {"misc/diamond-b", "misc/diamond-c"},
		"misc/diamond-b": {"misc/diamond-a"},
		"misc/diamond-c": {"misc/diamond-a"},
	} {
		if got := depDirs(one(l)); !slices.Equal(got, ds) {
			t.Errorf("%s depends on %v, want %v", l, got, ds)
		}
	}

	// Longest chain, following dependency directories (first record).
	depth := map[string]int{}
	var walk func(l string, seen []string) int
	walk = func(l string, seen []string) int {
		if d, ok := depth[l]; ok {
			return d
		}
		if slices.Contains(seen, l) {
			t.Fatalf("dependency cycle in the main tree: %v -> %s", seen, l)
		}
		best := 0
		if rs := loc[l]; len(rs) > 0 {
			for _, d := range depDirs(rs[0]) {
				best = max(best, walk(d, append(seen, l)))
			}
		}
		depth[l] = best + 1
		return best + 1
	}
	longest := 0
	for _, l := range locs {
		longest = max(longest, walk(l, nil))
	}
	if longest < 5 {
		t.Errorf("longest dependency chain has %d packages, want at least 5 (depth >= 4)", longest)
	}

	// The language mk is read by about a tenth of the directories.
	users := 0
	for _, l := range locs {
		sd, _ := loc[l][0].get("SCAN_DEPENDS")
		if slices.Contains(strings.Fields(sd), "../../lang/shlib/shlib.mk") {
			users++
		}
	}
	if users < 2 || users*100/len(locs) > 20 {
		t.Errorf("lang/shlib/shlib.mk is read by %d of %d directories, want about 10%%", users, len(locs))
	}

	// pkgrun's version-skew check asks for the name of one variant.
	out, err := bmake(t, filepath.Join(root, "devel/py-six"), "show-var", "VARNAME=PKGNAME", "PYTHON_VERSION_REQD=311")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != "py311-six-1.16.0" {
		t.Errorf("show-var PKGNAME with PYTHON_VERSION_REQD=311: %q", got)
	}
}

func TestCycleTree(t *testing.T) {
	root := treeDir(t, "cycle-tree")
	locs := enumerate(t, root)
	recs := scan(t, root, locs)
	loc := byLocation(recs)
	for _, r := range recs {
		if err := checkOrder(r); err != nil {
			t.Error(err)
		}
	}
	next := func(l string) []string {
		rs := loc[l]
		if len(rs) != 1 {
			t.Fatalf("%s: %d records", l, len(rs))
		}
		var out []string
		for _, d := range rs[0].deps(t) {
			out = append(out, filepath.Clean(filepath.Join(l, d[1])))
		}
		return out
	}
	// Follow the single dependency from cyc-a until it comes back.
	path := []string{"devel/cyc-a"}
	for {
		ns := next(path[len(path)-1])
		if len(ns) != 1 {
			t.Fatalf("%s has %d dependencies, want 1", path[len(path)-1], len(ns))
		}
		if ns[0] == path[0] {
			break
		}
		if slices.Contains(path, ns[0]) || len(path) > len(locs) {
			t.Fatalf("no cycle back to %s: %v -> %s", path[0], path, ns[0])
		}
		path = append(path, ns[0])
	}
	if want := []string{"devel/cyc-a", "devel/cyc-b", "devel/cyc-c"}; !slices.Equal(path, want) {
		t.Errorf("cycle %v, want %v", path, want)
	}
	if got := next("misc/plain-x"); len(got) != 0 {
		t.Errorf("plain-x has dependencies %v", got)
	}
	if got := next("misc/uses-cycle"); !slices.Equal(got, []string{"devel/cyc-a"}) {
		t.Errorf("uses-cycle depends on %v", got)
	}
}

// builder runs the build phases of packages the way pbulk's pkg-build does,
// in one temporary prefix.
type builder struct {
	t      *testing.T
	tree   string
	dir    string // temporary root
	prefix string
	dbdir  string
	// onePass runs only stage-package-create, which runs the earlier
	// phases itself; otherwise each phase is a make run, as in pbulk.
	onePass bool
}

func newBuilder(t *testing.T, name string) *builder {
	t.Helper()
	testenv.Program(t, "cc")
	testenv.Program(t, "tar")
	testenv.Program(t, "gzip")
	d := filepath.Join(t.TempDir(), name)
	b := &builder{t: t, tree: treeDir(t, "tree"), dir: d,
		prefix: filepath.Join(d, "prefix"), dbdir: filepath.Join(d, "pkgdb")}
	for _, p := range []string{b.prefix, b.dbdir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *builder) vars(extra ...string) []string {
	return append([]string{"BATCH=1", "DEPENDS_TARGET=/nonexistent",
		"PREFIX=" + b.prefix, "PKG_DBDIR=" + b.dbdir,
		"WRKOBJDIR=" + filepath.Join(b.dir, "work"),
		"PACKAGES=" + filepath.Join(b.dir, "packages"),
		"WRKLOG=" + filepath.Join(b.dir, "work.log")}, extra...)
}

// build runs checksum..stage-package-create and returns the package file;
// it stops at the first failing phase and returns its error.
func (b *builder) build(loc string, extra ...string) (string, error) {
	b.t.Helper()
	dir := filepath.Join(b.tree, loc)
	targets := []string{"checksum", "configure", "all", "stage-install", "stage-package-create"}
	if b.onePass {
		targets = targets[len(targets)-1:]
	}
	for _, target := range targets {
		if _, err := bmake(b.t, dir, append([]string{target}, b.vars(extra...)...)...); err != nil {
			return "", err
		}
	}
	out, err := bmake(b.t, dir, append([]string{"show-var", "VARNAME=STAGE_PKGFILE"}, b.vars(extra...)...)...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

type member struct {
	name string
	mode int64
	link string // symlink target, "" for a regular file
	data []byte
}

func readPackage(t *testing.T, file string) []member {
	t.Helper()
	return readTarGz(t, file, false)
}

// readTarGz reads a gzip'ed tar; directories are an error in a package.
func readTarGz(t *testing.T, file string, allowDirs bool) []member {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	tr := tar.NewReader(zr)
	var ms []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", file, h.Name, err)
		}
		var link string
		switch h.Typeflag {
		case tar.TypeSymlink:
			link = h.Linkname
		case tar.TypeReg:
		case tar.TypeDir:
			if allowDirs {
				continue
			}
			t.Fatalf("%s: %s: directory member in a package", file, h.Name)
		default:
			t.Fatalf("%s: %s: unexpected tar type %q", file, h.Name, h.Typeflag)
		}
		ms = append(ms, member{h.Name, h.Mode, link, data})
	}
	return ms
}

// install unpacks a package as pkg_add would: metadata into PKG_DBDIR/NAME,
// payload below PREFIX.
func (b *builder) install(file string) string {
	b.t.Helper()
	ms := readPackage(b.t, file)
	name := strings.TrimPrefix(strings.SplitN(string(ms[0].data), "\n", 2)[0], "@name ")
	for _, m := range ms {
		dst := filepath.Join(b.prefix, m.name)
		if strings.HasPrefix(m.name, "+") {
			dst = filepath.Join(b.dbdir, name, m.name)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			b.t.Fatal(err)
		}
		if m.link != "" {
			if err := os.Symlink(m.link, dst); err != nil {
				b.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(dst, m.data, fs.FileMode(m.mode)&0o755|0o600); err != nil {
			b.t.Fatal(err)
		}
	}
	return name
}

var metaOrder = []string{"+CONTENTS", "+COMMENT", "+DESC", "+BUILD_VERSION", "+BUILD_INFO", "+SIZE_PKG", "+SIZE_ALL"}

// checkPackage verifies layout and metadata of a package file against the
// tree; deps are the expected @blddep and @pkgdep lines after @name.
func (b *builder) checkPackage(file, loc, pkgname string, deps ...string) map[string]string {
	t := b.t
	t.Helper()
	ms := readPackage(t, file)
	if len(ms) < len(metaOrder)+1 {
		t.Fatalf("%s: %d members", file, len(ms))
	}
	meta := map[string]string{}
	payload := map[string]member{}
	var payloadOrder []string
	for i, m := range ms {
		if i < len(metaOrder) {
			if m.name != metaOrder[i] {
				t.Errorf("%s: member %d is %s, want %s", file, i, m.name, metaOrder[i])
			}
			meta[m.name] = string(m.data)
			continue
		}
		if strings.HasPrefix(m.name, "+") || strings.HasPrefix(m.name, "/") {
			t.Errorf("%s: payload member %q", file, m.name)
		}
		payload[m.name] = m
		payloadOrder = append(payloadOrder, m.name)
	}

	// +CONTENTS: header, files with MD5s in member order, trailer.
	lines := strings.Split(strings.TrimSuffix(meta["+CONTENTS"], "\n"), "\n")
	var head []string
	i := 0
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "@cwd "); i++ {
		head = append(head, lines[i])
	}
	wantHead := append([]string{"@name " + pkgname}, deps...)
	if !slices.Equal(head, wantHead) {
		t.Errorf("%s: +CONTENTS starts %q, want %q", file, head, wantHead)
	}
	if i >= len(lines) || lines[i] != "@cwd "+b.prefix {
		t.Fatalf("%s: no @cwd %s line in +CONTENTS:\n%s", file, b.prefix, meta["+CONTENTS"])
	}
	i++
	var listed []string
	size := 0
	for ; i+1 < len(lines) && lines[i] != "@cwd ."; i += 2 {
		f, sum := lines[i], lines[i+1]
		listed = append(listed, f)
		m := payload[f]
		if m.link != "" {
			if sum != "@comment Symlink:"+m.link {
				t.Errorf("%s: %s: %q, want the symlink target %s", file, f, sum, m.link)
			}
			continue
		}
		h := md5.Sum(m.data)
		if sum != "@comment MD5:"+hex.EncodeToString(h[:]) {
			t.Errorf("%s: %s: %q does not match the member's MD5", file, f, sum)
		}
		size += len(m.data)
	}
	if !slices.Equal(listed, payloadOrder) || !slices.IsSorted(listed) {
		t.Errorf("%s: packing list %v, payload members %v", file, listed, payloadOrder)
	}
	var trailer []string
	for _, m := range metaOrder[1:] {
		trailer = append(trailer, "@ignore", m)
	}
	if got := lines[min(i+1, len(lines)):]; i >= len(lines) || !slices.Equal(got, trailer) {
		t.Errorf("%s: +CONTENTS trailer %q, want @cwd . and %q", file, lines[min(i, len(lines)):], trailer)
	}
	if got := strings.TrimSpace(meta["+SIZE_PKG"]); got != strconv.Itoa(size) {
		t.Errorf("%s: +SIZE_PKG %s, payload is %d bytes", file, got, size)
	}

	// +BUILD_INFO: sorted, the expected keys.
	info := strings.Split(strings.TrimSuffix(meta["+BUILD_INFO"], "\n"), "\n")
	if !sort.StringsAreSorted(info) {
		t.Errorf("%s: +BUILD_INFO not sorted: %q", file, info)
	}
	var keys []string
	for _, l := range info {
		k, _, _ := strings.Cut(l, "=")
		keys = append(keys, k)
	}
	if want := []string{"BUILD_DATE", "BUILD_HOST", "CATEGORIES", "HOMEPAGE", "LICENSE", "MACHINE_ARCH", "MAINTAINER", "OPSYS", "OS_VERSION", "PKGPATH", "PKGTOOLS_VERSION"}; !slices.Equal(keys, want) {
		t.Errorf("%s: +BUILD_INFO keys %v, want %v", file, keys, want)
	}
	if !slices.Contains(info, "PKGPATH="+loc) || !slices.Contains(info, "PKGTOOLS_VERSION=20091115") {
		t.Errorf("%s: +BUILD_INFO %q", file, info)
	}

	// +BUILD_VERSION: SHA256 of the tree files, including the Makefile.
	var sawMakefile bool
	for _, l := range strings.Split(strings.TrimSuffix(meta["+BUILD_VERSION"], "\n"), "\n") {
		path, sum, ok := strings.Cut(l, ": ")
		data, err := os.ReadFile(filepath.Join(b.tree, path))
		if !ok || err != nil {
			t.Errorf("%s: +BUILD_VERSION line %q: %v", file, l, err)
			continue
		}
		h := sha256.Sum256(data)
		if sum != hex.EncodeToString(h[:]) {
			t.Errorf("%s: +BUILD_VERSION %s: %s is not the file's SHA256", file, path, sum)
		}
		sawMakefile = sawMakefile || path == loc+"/Makefile"
	}
	if !sawMakefile {
		t.Errorf("%s: +BUILD_VERSION lacks %s/Makefile", file, loc)
	}
	return meta
}

// snapshot lists every path and size below root, to prove a build left the
// tree untouched.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %s", p, info.Size(), info.ModTime()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildChain(t *testing.T) {
	testenv.Program(t, "bmake")
	b := newBuilder(t, "chain")
	before := snapshot(t, b.tree)

	// Without bootstrap-mk-files installed, libexbase refuses to configure.
	_, err := b.build("devel/libexbase")
	if err == nil || !strings.Contains(err.Error(), "bootstrap-mk-files>=20240101 (from ../../pkgtools/bootstrap-mk-files) is not installed") {
		t.Fatalf("libexbase without its tool dependency: %v", err)
	}

	mkfiles, err := b.build("pkgtools/bootstrap-mk-files")
	if err != nil {
		t.Fatal(err)
	}
	b.checkPackage(mkfiles, "pkgtools/bootstrap-mk-files", "bootstrap-mk-files-20240312")
	if name := b.install(mkfiles); name != "bootstrap-mk-files-20240312" {
		t.Fatalf("installed %q", name)
	}
	if _, err := bmake(t, filepath.Join(b.tree, "devel/libexbase"), append([]string{"clean"}, b.vars()...)...); err != nil {
		t.Fatal(err)
	}

	// exwc: a patch from patches/, a symbolic link in the payload.
	wc, err := b.build("textproc/exwc")
	if err != nil {
		t.Fatal(err)
	}
	// Tool dependencies are not recorded (pkgsrc does not either).
	b.checkPackage(wc, "textproc/exwc", "exwc-1.3")
	b.install(wc)
	if out, err := exec.Command(filepath.Join(b.prefix, "bin/exwordcount"), "-V").Output(); err != nil || string(out) != "exwc 1.3 (pkgsrc)\n" {
		t.Errorf("patched exwc -V: %q, %v", out, err)
	}
	base, err := b.build("devel/libexbase")
	if err != nil {
		t.Fatal(err)
	}
	baseMeta := b.checkPackage(base, "devel/libexbase", "libexbase-1.0.2")

	// Registered but not unpacked: the build itself needs the files.
	fake := filepath.Join(b.dbdir, "libexbase-1.0.2")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "+CONTENTS"), []byte("@name libexbase-1.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = b.build("devel/libexutil")
	if err == nil || !strings.Contains(err.Error(), "exbase.h not found") {
		t.Fatalf("libexutil with libexbase registered but not unpacked: %v", err)
	}
	if err := os.RemoveAll(fake); err != nil {
		t.Fatal(err)
	}
	if _, err := bmake(t, filepath.Join(b.tree, "devel/libexutil"), append([]string{"clean"}, b.vars()...)...); err != nil {
		t.Fatal(err)
	}

	b.install(base)
	util, err := b.build("devel/libexutil")
	if err != nil {
		t.Fatal(err)
	}
	meta := b.checkPackage(util, "devel/libexutil", "libexutil-2.1",
		"@blddep libexbase-1.0.2", "@pkgdep libexbase>=1.0")
	sizePkg, _ := strconv.Atoi(strings.TrimSpace(meta["+SIZE_PKG"]))
	sizeBase, _ := strconv.Atoi(strings.TrimSpace(baseMeta["+SIZE_PKG"]))
	if got := strings.TrimSpace(meta["+SIZE_ALL"]); got != strconv.Itoa(sizePkg+sizeBase) {
		t.Errorf("libexutil +SIZE_ALL %s, want %d + %d", got, sizePkg, sizeBase)
	}
	if log, err := os.ReadFile(filepath.Join(b.dir, "work.log")); err != nil || !strings.Contains(string(log), "./configure --prefix="+b.prefix) {
		t.Errorf("work.log does not show the configure command (%v):\n%s", err, log)
	}

	// A build that really fails: a compile error.
	_, err = b.build("devel/libbroken")
	if err == nil || !strings.Contains(err.Error(), "undeclared_variable") {
		t.Errorf("libbroken: want a compile error, got %v", err)
	}
	if _, err := bmake(t, filepath.Join(b.tree, "devel/libbroken"),
		append([]string{"pbulk-save-wrkdir", "INTO=" + filepath.Join(b.dir, "wrkdir.tar.gz")}, b.vars()...)...); err != nil {
		t.Error(err)
	} else if ms := readTarGz(t, filepath.Join(b.dir, "wrkdir.tar.gz"), true); !slices.ContainsFunc(ms, func(m member) bool {
		return strings.HasSuffix(m.name, "broken.c")
	}) {
		t.Errorf("wrkdir.tar.gz lacks broken.c")
	}

	// Skip and fail reasons stop every phase.
	for _, l := range []string{"misc/exskip", "misc/exbrokenflag"} {
		if _, err := b.build(l); err == nil || !strings.Contains(err.Error(), "cannot be built") {
			t.Errorf("%s: %v", l, err)
		}
	}

	if after := snapshot(t, b.tree); !slices.Equal(before, after) {
		t.Errorf("the build wrote into the tree")
	}
}

func TestChecksumMismatch(t *testing.T) {
	testenv.Program(t, "bmake")
	b := newBuilder(t, "sum")
	distdir := filepath.Join(b.dir, "distfiles")
	if err := os.MkdirAll(distdir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(b.tree, "misc/diamond-a")
	if _, err := bmake(t, dir, append([]string{"checksum"}, b.vars()...)...); err != nil {
		t.Fatal(err)
	}
	// Not in DISTDIR, no DIST_PATH, no MASTER_SITES.
	_, err := bmake(t, dir, append([]string{"checksum", "DISTDIR=" + distdir, "DIST_PATH="}, b.vars()...)...)
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("missing distfile: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(b.tree, "distfiles/diamond-a-1.0.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(filepath.Join(distdir, "diamond-a-1.0.tar.gz"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = bmake(t, dir, append([]string{"checksum", "DISTDIR=" + distdir}, b.vars()...)...)
	if err == nil || !strings.Contains(err.Error(), "SHA256 MISMATCH") {
		t.Errorf("corrupted distfile: %v", err)
	}
}

// TestBuildMultiVersion builds one py-* package for the non-default Python,
// which needs the interpreter (a C program) and py-setuptools installed.
func TestBuildMultiVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a C interpreter; skipped with -short")
	}
	testenv.Program(t, "bmake")
	b := newBuilder(t, "py")
	for _, step := range []struct {
		loc   string
		extra []string
	}{
		{"pkgtools/bootstrap-mk-files", nil},
		{"lang/python311", nil},
		{"devel/py-setuptools", []string{"PYTHON_VERSION_REQD=311"}},
	} {
		f, err := b.build(step.loc, step.extra...)
		if err != nil {
			t.Fatal(err)
		}
		b.install(f)
	}
	f, err := b.build("devel/py-six", "PYTHON_VERSION_REQD=311")
	if err != nil {
		t.Fatal(err)
	}
	b.checkPackage(f, "devel/py-six", "py311-six-1.16.0",
		"@blddep py311-setuptools-69.5.1", "@pkgdep py311-setuptools-[0-9]*",
		"@blddep python311-3.11.9", "@pkgdep python311>=3.11")
	ms := readPackage(t, f)
	if got := ms[len(ms)-1].name; got != "lib/python3.11/site-packages/six/__init__.py" {
		t.Errorf("py311-six payload %s", got)
	}
	// The default variant needs python312, which is not installed.
	if _, err := b.build("devel/py-six"); err == nil || !strings.Contains(err.Error(), "python312>=3.12") {
		t.Errorf("py312-six without python312: %v", err)
	}
}

// ---- a whole bulk build, done the way pbulk would do it -------------------

// expandBraces expands csh-style alternatives: {a,b}>=1 -> a>=1, b>=1.
func expandBraces(p string) []string {
	i := strings.Index(p, "{")
	j := strings.Index(p, "}")
	if i < 0 || j < i {
		return []string{p}
	}
	var out []string
	for _, alt := range strings.Split(p[i+1:j], ",") {
		out = append(out, expandBraces(p[:i]+alt+p[j+1:])...)
	}
	return out
}

// compareVersions orders the versions of this tree (dotted numbers with an
// optional nbN revision); it is not pkgsrc's full dewey comparison.
func compareVersions(a, b string) int {
	split := func(v string) ([]string, int) {
		main, rev, _ := strings.Cut(v, "nb")
		n, _ := strconv.Atoi(rev)
		return strings.Split(main, "."), n
	}
	am, ar := split(a)
	bm, br := split(b)
	for i := 0; i < max(len(am), len(bm)); i++ {
		x, y := "0", "0"
		if i < len(am) {
			x = am[i]
		}
		if i < len(bm) {
			y = bm[i]
		}
		xi, errx := strconv.Atoi(x)
		yi, erry := strconv.Atoi(y)
		if errx == nil && erry == nil {
			if c := xi - yi; c != 0 {
				return c
			}
		} else if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return ar - br
}

func matchPattern(pat, name string) bool {
	for _, alt := range expandBraces(pat) {
		i := strings.IndexAny(alt, "<>")
		if i < 0 {
			if ok, _ := filepath.Match(alt, name); ok {
				return true
			}
			continue
		}
		dash := strings.LastIndex(name, "-")
		if dash < 0 || name[:dash] != alt[:i] {
			continue
		}
		ver, cons, ok := name[dash+1:], alt[i:], true
		for cons != "" && ok {
			op := cons[:1]
			if strings.HasPrefix(cons[1:], "=") {
				op = cons[:2]
			}
			cons = cons[len(op):]
			end := strings.IndexAny(cons, "<>")
			if end < 0 {
				end = len(cons)
			}
			c := compareVersions(ver, cons[:end])
			cons = cons[end:]
			switch op {
			case ">=":
				ok = c >= 0
			case ">":
				ok = c > 0
			case "<=":
				ok = c <= 0
			case "<":
				ok = c < 0
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// bestMatch picks the matching name with the greatest version.
func bestMatch(pat string, names []string) string {
	best := ""
	for _, n := range names {
		if !matchPattern(pat, n) {
			continue
		}
		if best == "" || compareVersions(n[strings.LastIndex(n, "-")+1:], best[strings.LastIndex(best, "-")+1:]) > 0 {
			best = n
		}
	}
	return best
}

func TestMatchPattern(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"exwc>=99", "exwc-1.3", false},
		{"exwc>=1.0", "exwc-1.3", true},
		{"{exwc,exwc-ng}>=1.0", "exwc-1.3", true},
		{"{exwc,exwc-ng}>=1.0", "exwc-ng-2", true},
		{"exlog>=1.2nb1", "exlog-1.2nb2", true},
		{"exlog>=1.2nb3", "exlog-1.2nb2", false},
		{"libexbase-[0-9]*", "libexbase-1.0.2", true},
		{"libexbase-[0-9]*", "libexbase-devel-1", false},
		{"python312>=3.12", "python312-3.12.4", true},
		{"python312>=3.12", "python311-3.11.9", false},
		{"foo>=1<2", "foo-1.5", true},
		{"foo>=1<2", "foo-2.0", false},
	} {
		if got := matchPattern(c.pat, c.name); got != c.want {
			t.Errorf("matchPattern(%q, %q) = %v", c.pat, c.name, got)
		}
	}
}

// TestBulkBuildTree builds every package of the tree, each in a fresh
// prefix holding only its dependencies (installed as pkg_add would: the
// resolved DEPENDS and, recursively, their @pkgdep), and checks the outcome
// the README promises.
func TestBulkBuildTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole tree; skipped with -short")
	}
	testenv.Program(t, "bmake")
	testenv.Program(t, "cc")
	root := treeDir(t, "tree")
	recs := scan(t, root, enumerate(t, root))

	var all []string
	rec := map[string]record{}
	for _, r := range recs {
		all = append(all, r.name())
		rec[r.name()] = r
	}
	status := map[string]string{}
	deps := map[string][]string{}
	for _, r := range recs {
		n := r.name()
		for _, d := range r.deps(t) {
			m := bestMatch(d[0], all)
			if m == "" {
				status[n] = "prefailed"
				continue
			}
			if !slices.Contains(deps[n], m) {
				deps[n] = append(deps[n], m)
			}
		}
		skip, _ := r.get("PKG_SKIP_REASON")
		fail, _ := r.get("PKG_FAIL_REASON")
		if skip != "" || fail != "" {
			status[n] = "prefailed"
		}
	}

	files := map[string]string{} // built PKGNAME -> package file
	var mu sync.Mutex
	sem := make(chan struct{}, 2)
	for len(status) < len(recs) {
		decided := len(status)
		var ready []string
		for _, n := range all {
			if status[n] != "" {
				continue
			}
			waiting := false
			for _, d := range deps[n] {
				switch status[d] {
				case "done":
				case "":
					waiting = true
				case "failed", "indirect-failed":
					status[n] = "indirect-failed"
				default:
					if status[n] == "" {
						status[n] = "indirect-prefailed"
					}
				}
			}
			if !waiting && status[n] == "" {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 {
			if len(status) == decided {
				t.Fatalf("no package can be built and none was decided: a cycle? %d of %d decided", decided, len(recs))
			}
			continue // only propagation happened this round
		}
		var wg sync.WaitGroup
		for _, n := range ready {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				b := newBuilder(t, strings.ReplaceAll(n, "/", "_"))
				b.onePass = true
				mu.Lock()
				queue := slices.Clone(deps[n])
				mu.Unlock()
				installed := map[string]bool{}
				for len(queue) > 0 {
					d := queue[0]
					queue = queue[1:]
					if installed[d] {
						continue
					}
					installed[d] = true
					mu.Lock()
					f := files[d]
					mu.Unlock()
					b.install(f)
					for _, l := range strings.Split(string(readPackage(t, f)[0].data), "\n") {
						if p, ok := strings.CutPrefix(l, "@pkgdep "); ok {
							mu.Lock()
							var built []string
							for name := range files {
								built = append(built, name)
							}
							mu.Unlock()
							queue = append(queue, bestMatch(p, built))
						}
					}
				}
				var extra []string
				if mv, ok := rec[n].get("MULTI_VERSION"); ok {
					extra = strings.Fields(mv)
				}
				f, err := b.build(rec[n].location, extra...)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					status[n] = "failed"
					t.Logf("%s failed: %.300s", n, err)
					return
				}
				status[n] = "done"
				files[n] = f
				// Every @blddep is a resolved dependency (pbulk's
				// up-to-date check requires it), and each @pkgdep
				// follows the @blddep of the package it resolved to.
				prev := ""
				for _, l := range strings.Split(string(readPackage(t, f)[0].data), "\n") {
					if p, ok := strings.CutPrefix(l, "@blddep "); ok && !slices.Contains(deps[n], p) {
						t.Errorf("%s: @blddep %s is not among the resolved dependencies %v", n, p, deps[n])
					}
					if p, ok := strings.CutPrefix(l, "@pkgdep "); ok {
						if m := bestMatch(p, deps[n]); prev != "@blddep "+m && !strings.Contains(string(readPackage(t, f)[0].data), "@blddep "+m+"\n") {
							t.Errorf("%s: @pkgdep %s without @blddep %s", n, p, m)
						}
					}
					prev = l
				}
			}()
		}
		wg.Wait()
	}

	got := map[string][]string{}
	for n, s := range status {
		got[s] = append(got[s], n)
	}
	for _, s := range got {
		slices.Sort(s)
	}
	want := map[string][]string{
		"failed":             {"exbadsum-1.0", "exsitedown-1.0", "libbroken-0.1"},
		"indirect-failed":    {"exbroken-user-1.0", "exbroken-user2-1.0"},
		"prefailed":          {"exbrokenflag-2.3", "exskip-1.0", "exunresolvable-1.0"},
		"indirect-prefailed": {"exskip-user-1.0"},
	}
	for s, names := range want {
		if !slices.Equal(got[s], names) {
			t.Errorf("%s: %v, want %v", s, got[s], names)
		}
	}
	if len(got["done"]) != 39 {
		t.Errorf("%d packages built, want 39: %v", len(got["done"]), got["done"])
	}
}
