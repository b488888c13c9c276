package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/summary"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// env is one test's pkgsrc tree, store and work root.
type env struct {
	t        testing.TB
	tree     string
	storeDir string
	store    store.Store
	work     string
	make     string
}

// newEnv copies the example tree (examples/tree, its mk/ and packages) and
// this package's fixture packages (testdata/tree) into a temporary tree,
// so tests can change tree files, and opens a file:// store.
func newEnv(t testing.TB) *env {
	t.Helper()
	mk := testenv.Program(t, "bmake")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.CopyFS(tree, os.DirFS(filepath.Join(root, "examples", "tree"))); err != nil {
		t.Fatalf("copy the example tree: %v", err)
	}
	if err := os.CopyFS(filepath.Join(dir, "fixtures"), os.DirFS("testdata/tree")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "fixtures", "fixture"), filepath.Join(tree, "fixture")); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, tree: tree, storeDir: filepath.Join(dir, "store"), work: filepath.Join(dir, "work"), make: mk}
	st, err := storeopen.Open(context.Background(), "file://"+e.storeDir, storeopen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	return e
}

func (e *env) builder(mod func(*job.Settings)) *Builder {
	s := job.Settings{Pkgsrc: e.tree, Make: e.make, WorkRoot: e.work, NoOutputTime: "2m", MaxTime: "5m"}
	if mod != nil {
		mod(&s)
	}
	return &Builder{Settings: s, Store: e.store}
}

func (e *env) run(b *Builder, record string) *job.Result {
	e.t.Helper()
	j, err := ParseJob("test", strings.NewReader(record))
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := b.Run(context.Background(), j)
	if err != nil {
		e.t.Fatalf("%s: Run: %v", j.PkgName, err)
	}
	return res
}

func (e *env) exists(name string) bool {
	_, err := os.Stat(filepath.Join(e.storeDir, filepath.FromSlash(name)))
	return err == nil
}

func (e *env) read(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.storeDir, filepath.FromSlash(name)))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// count is the number of store objects under prefix.
func (e *env) count(prefix string) int {
	n := 0
	e.store.List(context.Background(), prefix, func(store.Info) error { n++; return nil })
	return n
}

// workRootEntries lists what jobs left in the work root.
func (e *env) workRootEntries() []string {
	ents, _ := os.ReadDir(e.work)
	var out []string
	for _, d := range ents {
		out = append(out, d.Name())
	}
	return out
}

const (
	helloJob   = "PKGNAME=hello-1.0\nPKG_LOCATION=fixture/hello\nALL_DEPENDS=\nCATEGORIES=fixture\nDEPENDS=\n"
	greeterJob = "PKGNAME=greeter-2.0\nPKG_LOCATION=fixture/greeter\nCATEGORIES=fixture\nDEPENDS=hello-1.0\n"
	brokenJob  = "PKGNAME=broken-0.1\nPKG_LOCATION=fixture/broken\nDEPENDS=\n"
	sleeperJob = "PKGNAME=sleeper-1.0\nPKG_LOCATION=fixture/sleeper\nDEPENDS=\n"
)

// tarMembers lists a package's members and their contents.
func tarMembers(t *testing.T, file string) ([]string, map[string]string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	data := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		data[h.Name] = string(b)
	}
	return names, data
}

func phaseNames(r *job.Result) string {
	var n []string
	for _, p := range r.Phases {
		n = append(n, p.Name)
	}
	return strings.Join(n, " ")
}

func TestBuildLeaf(t *testing.T) {
	e := newEnv(t)
	// A stale failure log must disappear when the package builds.
	if err := e.store.Put(context.Background(), "bulklog/hello-1.0/build.log", strings.NewReader("old failure\n"), -1); err != nil {
		t.Fatal(err)
	}
	res := e.run(e.builder(nil), helloJob)
	if res.Status != job.StatusDone {
		t.Fatalf("status %s (%s), want done", res.Status, res.Message)
	}
	want := "pre-clean depends checksum configure build install package deinstall clean"
	if got := phaseNames(res); got != want {
		t.Errorf("phases %q, want %q", got, want)
	}
	for _, p := range res.Phases {
		if !p.OK {
			t.Errorf("phase %s not ok", p.Name)
		}
	}
	if res.Package != "All/hello-1.0.tgz" || res.Fragment != "index/hello-1.0.pkginfo" {
		t.Errorf("package %q fragment %q", res.Package, res.Fragment)
	}
	pkg := filepath.Join(e.storeDir, "All", "hello-1.0.tgz")
	names, data := tarMembers(t, pkg)
	if len(names) == 0 || names[0] != "+CONTENTS" {
		t.Errorf("package members %v: +CONTENTS is not first", names)
	}
	if !strings.Contains(data["share/hello/greeting"], "hello from pkgrun") {
		t.Errorf("greeting = %q", data["share/hello/greeting"])
	}
	// The fragment is the pkg_summary entry of the stored file.
	entry, err := summary.EntryFromFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.read("index/hello-1.0.pkginfo"); got != string(entry) {
		t.Errorf("fragment:\n%s\nwant:\n%s", got, entry)
	}
	if !strings.Contains(string(entry), "FILE_NAME=hello-1.0.tgz\n") {
		t.Errorf("fragment lacks FILE_NAME: %s", entry)
	}
	if n := e.count("bulklog/hello-1.0/"); n != 0 {
		t.Errorf("bulklog/hello-1.0/ holds %d objects after a successful build", n)
	}
	if left := e.workRootEntries(); len(left) != 0 {
		t.Errorf("job directories left behind: %v", left)
	}
	if res.WallMS <= 0 || res.CPUMS <= 0 || res.DiskBytes <= 0 || res.Host == "" {
		t.Errorf("accounting: wall %d cpu %d disk %d host %q", res.WallMS, res.CPUMS, res.DiskBytes, res.Host)
	}
	var buf bytes.Buffer
	if err := res.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := job.DecodeResult(buf.Bytes())
	if err != nil || back.Status != job.StatusDone {
		t.Errorf("result does not round-trip: %v %+v", err, back)
	}
}

func TestBuildDependent(t *testing.T) {
	e := newEnv(t)
	b := e.builder(nil)
	if res := e.run(b, helloJob); res.Status != job.StatusDone {
		t.Fatalf("hello: %s %s", res.Status, res.Message)
	}
	res := e.run(b, greeterJob)
	if res.Status != job.StatusDone {
		t.Fatalf("greeter: %s (%s) in %s", res.Status, res.Message, res.FailedPhase)
	}
	_, data := tarMembers(t, filepath.Join(e.storeDir, "All", "greeter-2.0.tgz"))
	// The build read the installed dependency's file from the prefix.
	if msg := data["share/greeter/message"]; msg != "greeter says: hello from pkgrun\n" {
		t.Errorf("message = %q", msg)
	}
	if !strings.Contains(data["+CONTENTS"], "@blddep hello-1.0\n") || !strings.Contains(data["+CONTENTS"], "@pkgdep hello>=1.0\n") {
		t.Errorf("+CONTENTS lacks the dependency:\n%s", data["+CONTENTS"])
	}
}

func TestMissingDependency(t *testing.T) {
	e := newEnv(t)
	res := e.run(e.builder(nil), greeterJob)
	if res.Status != job.StatusFailed || res.FailedPhase != "depends" {
		t.Fatalf("status %s phase %q, want failed in depends", res.Status, res.FailedPhase)
	}
	if !strings.Contains(res.Message, "hello-1.0") || !strings.Contains(res.Message, "not in the store") {
		t.Errorf("message %q does not name the missing package", res.Message)
	}
	if log := e.read("bulklog/greeter-2.0/depends.log"); !strings.Contains(log, "All/hello-1.0.tgz missing") {
		t.Errorf("depends.log:\n%s", log)
	}
	if e.exists("All/greeter-2.0.tgz") {
		t.Error("a package was stored")
	}
}

func TestBuildFailure(t *testing.T) {
	e := newEnv(t)
	// An object from an older attempt that this attempt does not write.
	e.store.Put(context.Background(), "bulklog/broken-0.1/install.log", strings.NewReader("stale\n"), -1)
	res := e.run(e.builder(nil), brokenJob)
	if res.Status != job.StatusFailed || res.FailedPhase != "build" {
		t.Fatalf("status %s phase %q, want failed in build", res.Status, res.FailedPhase)
	}
	if res.LogDir != "bulklog/broken-0.1/" {
		t.Errorf("log dir %q", res.LogDir)
	}
	last := res.Phases[len(res.Phases)-1]
	if last.Name != "build" || last.OK || last.Log != "bulklog/broken-0.1/build.log" {
		t.Errorf("last phase %+v", last)
	}
	if log := e.read("bulklog/broken-0.1/build.log"); !strings.Contains(log, "this package never builds") {
		t.Errorf("build.log:\n%s", log)
	}
	for _, l := range []string{"pre-clean.log", "depends.log", "checksum.log", "configure.log", "work.log"} {
		if !e.exists("bulklog/broken-0.1/" + l) {
			t.Errorf("%s missing from the store", l)
		}
	}
	if e.exists("bulklog/broken-0.1/install.log") {
		t.Error("a stale log of an earlier attempt survived")
	}
	if e.exists("All/broken-0.1.tgz") || e.exists("index/broken-0.1.pkginfo") {
		t.Error("a failed build stored a package or fragment")
	}
	if left := e.workRootEntries(); len(left) != 0 {
		t.Errorf("job directories left behind: %v", left)
	}
}

func TestSkew(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ record, want string }{
		{"PKGNAME=hello-0.9\nPKG_LOCATION=fixture/hello\n", "makes hello-1.0"},
		{"PKGNAME=gone-1.0\nPKG_LOCATION=fixture/gone\n", "does not exist"},
	} {
		res := e.run(e.builder(nil), tc.record)
		if res.Status != job.StatusSkew {
			t.Errorf("%q: status %s, want skew", tc.record, res.Status)
		}
		if !strings.Contains(res.Message, tc.want) || !strings.Contains(res.Message, res.PkgName) {
			t.Errorf("message %q should name %s and contain %q", res.Message, res.PkgName, tc.want)
		}
		if len(res.Phases) != 0 {
			t.Errorf("phases ran: %v", phaseNames(res))
		}
	}
	ents, _ := os.ReadDir(e.storeDir)
	if len(ents) != 0 {
		t.Errorf("skew wrote to the store: %v", ents)
	}
}

func TestUpToDate(t *testing.T) {
	e := newEnv(t)
	b := e.builder(nil)
	mustStatus := func(record string, b *Builder, want job.Status) *job.Result {
		t.Helper()
		res := e.run(b, record)
		if res.Status != want {
			t.Fatalf("%s: status %s (%s), want %s", res.PkgName, res.Status, res.Message, want)
		}
		return res
	}
	mustStatus(helloJob, b, job.StatusDone)
	mustStatus(greeterJob, b, job.StatusDone)
	res := mustStatus(helloJob, b, job.StatusUpToDate)
	if len(res.Phases) != 0 || res.Package != "All/hello-1.0.tgz" {
		t.Errorf("up-to-date ran %q, package %q", phaseNames(res), res.Package)
	}
	mustStatus(greeterJob, b, job.StatusUpToDate)

	// A missing fragment of an up-to-date package is written.
	os.Remove(filepath.Join(e.storeDir, "index", "hello-1.0.pkginfo"))
	mustStatus(helloJob, b, job.StatusUpToDate)
	if !e.exists("index/hello-1.0.pkginfo") {
		t.Error("fragment not restored")
	}

	// A dependency the binary was built with that the job no longer has.
	res = mustStatus("PKGNAME=greeter-2.0\nPKG_LOCATION=fixture/greeter\nDEPENDS=hello-1.1\n", b, job.StatusFailed)
	if res.FailedPhase != "depends" {
		t.Errorf("greeter with a new dependency failed in %q", res.FailedPhase)
	}

	// --force rebuilds.
	mustStatus(helloJob, e.builder(func(s *job.Settings) { s.Force = true }), job.StatusDone)
	// hello is now newer than greeter: the age check rebuilds greeter,
	// skip_age_check keeps it.
	mustStatus(greeterJob, e.builder(func(s *job.Settings) { s.SkipAgeCheck = true }), job.StatusUpToDate)
	res = mustStatus(greeterJob, b, job.StatusDone)
	if !strings.Contains(res.Message, "not older") {
		t.Errorf("rebuild reason %q", res.Message)
	}

	// A store with a whole-second clock (S3): equal times are "older",
	// a dependency one second newer is not.
	sec := time.Now().Truncate(time.Second).Add(-time.Minute)
	setTime := func(name string, tm time.Time) {
		if err := os.Chtimes(filepath.Join(e.storeDir, "All", name), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	setTime("hello-1.0.tgz", sec)
	setTime("greeter-2.0.tgz", sec)
	mustStatus(greeterJob, b, job.StatusUpToDate)
	setTime("hello-1.0.tgz", sec.Add(time.Second))
	mustStatus(greeterJob, b, job.StatusDone)

	// A changed tree file makes the package out of date.
	mk := filepath.Join(e.tree, "fixture", "hello", "DESCR")
	f, err := os.OpenFile(mk, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("One more line.\n")
	f.Close()
	res = mustStatus(helloJob, b, job.StatusDone)
	if !strings.Contains(res.Message, "fixture/hello/DESCR") {
		t.Errorf("rebuild reason %q does not name the changed file", res.Message)
	}
	mustStatus(helloJob, b, job.StatusUpToDate)
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// sleeperSeconds is a sleep duration no other process uses: the sleeper
// fixture's grandchild is found on the host by it.
func sleeperSeconds() string {
	return fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1000000)
}

// sleeping counts the host's processes running "sleep secs".
func sleeping(secs string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == "sleep\x00"+secs+"\x00" {
			n++
		}
	}
	return n
}

// checkKilled checks that the sleeper's grandchild ran and is gone.
func checkKilled(t *testing.T, secs string, seen bool) {
	t.Helper()
	if !seen {
		t.Fatal("the build never started its grandchild")
	}
	for i := 0; i < 100 && sleeping(secs) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if n := sleeping(secs); n > 0 {
		t.Errorf("%d grandchildren survived the kill", n)
	}
}

// watchSleeping reports whether "sleep secs" was seen running before done
// is closed.
func watchSleeping(secs string, done <-chan struct{}) <-chan bool {
	seen := make(chan bool, 1)
	go func() {
		for {
			if sleeping(secs) > 0 {
				seen <- true
				return
			}
			select {
			case <-done:
				seen <- sleeping(secs) > 0
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return seen
}

func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings func(*job.Settings)
		want     string
	}{
		{"wall", func(s *job.Settings) { s.MaxTime = "6s"; s.NoOutputTime = "" }, "wall-time limit 6s"},
		{"no-output", func(s *job.Settings) { s.MaxTime = ""; s.NoOutputTime = "3s" }, "no output for 3s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			secs := sleeperSeconds()
			b := e.builder(func(s *job.Settings) {
				tc.settings(s)
				s.Environment = []string{"SLEEPER_SECONDS=" + secs}
			})
			start := time.Now()
			done := make(chan struct{})
			seen := watchSleeping(secs, done)
			res := e.run(b, sleeperJob)
			close(done)
			if res.Status != job.StatusTimeout || res.FailedPhase != "build" {
				t.Fatalf("status %s phase %q (%s), want timeout in build", res.Status, res.FailedPhase, res.Message)
			}
			if !strings.Contains(res.Message, tc.want) {
				t.Errorf("message %q, want %q", res.Message, tc.want)
			}
			if el := time.Since(start); el > 60*time.Second {
				t.Errorf("took %v", el)
			}
			checkKilled(t, secs, <-seen)
			if log := e.read("bulklog/sleeper-1.0/build.log"); !strings.Contains(log, "starting a build that hangs") {
				t.Errorf("build.log not kept:\n%s", log)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	secs := sleeperSeconds()
	b := e.builder(func(s *job.Settings) { s.Environment = []string{"SLEEPER_SECONDS=" + secs} })
	j, _ := ParseJob("test", strings.NewReader(sleeperJob))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	seen := watchSleeping(secs, done)
	seenOnce := make(chan bool, 1)
	go func() {
		s := <-seen
		seenOnce <- s
		cancel()
	}()
	start := time.Now()
	res, err := b.Run(ctx, j)
	if err == nil {
		t.Fatalf("no error after cancel; result %+v", res)
	}
	if el := time.Since(start); el > 60*time.Second {
		t.Errorf("took %v", el)
	}
	close(done)
	checkKilled(t, secs, <-seenOnce)
	if left := e.workRootEntries(); len(left) != 0 {
		t.Errorf("job directories left behind: %v", left)
	}
}

// TestParallelJobs runs two builds of one package directory at once with
// one work root: each must get its own prefix and work directory.
func TestParallelJobs(t *testing.T) {
	e := newEnv(t)
	b := e.builder(func(s *job.Settings) { s.KeepWorkdir = true })
	stores := make([]store.Store, 2)
	results := make([]*job.Result, 2)
	var wg sync.WaitGroup
	for i := range stores {
		st, err := storeopen.Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "s"), storeopen.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores[i] = st
		bi := &Builder{Settings: b.Settings, Store: st}
		j, _ := ParseJob("test", strings.NewReader(brokenJob))
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := bi.Run(context.Background(), j)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	dirs := e.workRootEntries()
	if len(dirs) != 2 || dirs[0] == dirs[1] {
		t.Fatalf("job directories %v, want two distinct ones", dirs)
	}
	for i, st := range stores {
		if results[i] == nil || results[i].Status != job.StatusFailed {
			t.Fatalf("job %d: %+v", i, results[i])
		}
		rc, err := st.Get(context.Background(), "bulklog/broken-0.1/build.log")
		if err != nil {
			t.Fatal(err)
		}
		log, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(log), "this package never builds") {
			t.Errorf("job %d: build.log:\n%s", i, log)
		}
	}
	// Each job built in its own WRKOBJDIR, the /tmp of its own sandbox.
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(e.work, d, "tmp", "work", "fixture", "broken")); err != nil {
			t.Errorf("job %s: no work directory of its own: %v", d, err)
		}
	}
}

// window gives a test a writable host directory at /pkgbulk-test in every
// sandbox of b, and returns the host directory.
func window(t *testing.T, b *Builder) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	b.testMounts = append(b.testMounts, sandbox.Mount{Target: "/pkgbulk-test", Source: dir, Writable: true})
	return dir
}

// TestBootstrapKit checks that every command of a job sees the kit at the
// paths it was made for, that what a job writes over it stays the job's,
// and that the kit is unpacked once per work root.
func TestBootstrapKit(t *testing.T) {
	e := newEnv(t)
	kit := filepath.Join(t.TempDir(), "kit.tar.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "kit marker\n"
	tw.WriteHeader(&tar.Header{Name: "usr/pkg/etc/", Mode: 0o755, Typeflag: tar.TypeDir})
	tw.WriteHeader(&tar.Header{Name: "/usr/pkg/etc/kit-marker", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.WriteHeader(&tar.Header{Name: "var/db/pkg/", Mode: 0o755, Typeflag: tar.TypeDir})
	tw.Close()
	zw.Close()
	os.WriteFile(kit, buf.Bytes(), 0o644)
	wrapper := filepath.Join(e.tree, "make-wrapper")
	os.WriteFile(wrapper, []byte("#!/bin/sh\necho \"$1 $(cat /usr/pkg/etc/kit-marker) $(ls -A /var/db/pkg | wc -l)\" >> /pkgbulk-test/calls\n"+
		"echo changed > /usr/pkg/etc/kit-marker\nexec "+e.make+" \"$@\"\n"), 0o755)
	b := e.builder(func(s *job.Settings) { s.BootstrapKit = kit; s.Make = wrapper })
	calls := filepath.Join(window(t, b), "calls")
	if res := e.run(b, helloJob); res.Status != job.StatusDone {
		t.Fatalf("status %s %s", res.Status, res.Message)
	}
	got, _ := os.ReadFile(calls)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) < 5 || lines[0] != "show-vars kit marker 0" || !strings.HasPrefix(lines[1], "clean changed") {
		t.Errorf("what make saw of the kit:\n%s", got)
	}
	// The job changed its copy only: a second job starts from the kit.
	os.Remove(calls)
	if res := e.run(b, helloJob); res.Status != job.StatusUpToDate {
		t.Fatalf("second run: %s %s", res.Status, res.Message)
	}
	if got, _ := os.ReadFile(calls); !strings.HasPrefix(string(got), "show-vars kit marker") {
		t.Errorf("a job saw the previous job's change to the kit:\n%s", got)
	}
	if dirs := e.workRootEntries(); len(dirs) != 1 || dirs[0] != ".kits" {
		t.Errorf("work root %v, want only .kits", dirs)
	}
	if kits, _ := os.ReadDir(filepath.Join(e.work, ".kits")); len(kits) != 1 {
		t.Errorf("the kit was unpacked %d times", len(kits))
	}
}

// bmakeOut runs bmake in a package directory of the test tree.
func (e *env) bmakeOut(dir string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command(e.make, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("bmake %v in %s: %v", args, dir, err)
	}
	return strings.TrimSpace(string(out))
}

// record makes the presolve record of a (single-version) package of the
// tree the way pbulk-scan and pbulk-resolve would: its pbulk-index-item
// output with PKG_LOCATION inserted and DEPENDS set to the PKGNAMEs of the
// directories of its ALL_DEPENDS (direct dependencies only).
func (e *env) record(loc string) string {
	e.t.Helper()
	dir := filepath.Join(e.tree, loc)
	item := e.bmakeOut(dir, "pbulk-index-item")
	lines := strings.Split(item, "\n")
	var deps []string
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "ALL_DEPENDS="); ok {
			for _, d := range strings.Fields(v) {
				_, path, _ := strings.Cut(d, ":")
				name := e.bmakeOut(filepath.Join(dir, path), "show-var", "VARNAME=PKGNAME")
				if !slices.Contains(deps, name) {
					deps = append(deps, name)
				}
			}
		}
	}
	out := lines[0] + "\nPKG_LOCATION=" + loc + "\n" + strings.Join(lines[1:], "\n") + "\nDEPENDS=" + strings.Join(deps, " ") + "\n"
	return out
}

// TestExampleTree builds real packages of examples/tree in dependency
// order: a leaf, a dependent reading its dependency's data, a package
// whose build needs a dependency's run-time dependency (which pkgrun must
// fetch through @pkgdep, as pkg_add does), USERGROUP_PHASE, a bootstrap
// package, a C library and a C build that fails.
func TestExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a dozen packages")
	}
	e := newEnv(t)
	b := e.builder(nil)
	build := func(loc string, want job.Status) (*job.Result, string) {
		t.Helper()
		rec := e.record(loc)
		res := e.run(b, rec)
		if res.Status != want {
			log := ""
			if res.FailedPhase != "" {
				log = e.read("bulklog/" + res.PkgName + "/" + res.FailedPhase + ".log")
			}
			t.Fatalf("%s: status %s (%s), want %s\n%s", loc, res.Status, res.Message, want, log)
		}
		return res, rec
	}
	build("textproc/exwords", job.StatusDone)
	build("lang/shlib", job.StatusDone)
	res, _ := build("games/exfortune", job.StatusDone)
	if names, _ := tarMembers(t, filepath.Join(e.storeDir, "All", res.PkgName+".tgz")); names[0] != "+CONTENTS" {
		t.Errorf("%s: first member %s", res.PkgName, names[0])
	}
	build("sysutils/exlog", job.StatusDone)
	build("sysutils/exconf", job.StatusDone)
	res, rec := build("net/exfetch", job.StatusDone)
	if strings.Contains(rec, "exlog") {
		t.Fatalf("exfetch's record names exlog directly; the test needs it indirect:\n%s", rec)
	}
	_ = res
	build("sysutils/exdaemon", job.StatusDone)

	build("pkgtools/bootstrap-mk-files", job.StatusDone)
	build("devel/libexbase", job.StatusDone)
	res, _ = build("devel/libbroken", job.StatusFailed)
	if res.FailedPhase != "build" {
		t.Errorf("libbroken failed in %q, want build", res.FailedPhase)
	}
	if log := e.read("bulklog/" + res.PkgName + "/build.log"); !strings.Contains(log, "error") {
		t.Errorf("libbroken build.log shows no compiler error:\n%s", log)
	}

	// Everything built is up to date on a second pass.
	for _, loc := range []string{"textproc/exwords", "games/exfortune", "net/exfetch", "devel/libexbase"} {
		build(loc, job.StatusUpToDate)
	}

	// A run-time dependency of a dependency that the store lacks.
	exlog := e.bmakeOut(filepath.Join(e.tree, "sysutils/exlog"), "show-var", "VARNAME=PKGNAME")
	if err := e.store.Delete(context.Background(), "All/"+exlog+".tgz"); err != nil {
		t.Fatal(err)
	}
	b.Settings.Force = true
	res, _ = build("net/exfetch", job.StatusFailed)
	if res.FailedPhase != "depends" || !strings.Contains(res.Message, "exlog>=1.2nb1") {
		t.Errorf("exfetch without exlog: failed in %q: %s", res.FailedPhase, res.Message)
	}
}

// TestMakeInvocations runs make through a wrapper that records every
// invocation, and checks them against pkg-build's (spec §2.2/§2.3):
// targets and order, BATCH=1 DEPENDS_TARGET=/nonexistent, the MULTI_VERSION
// words and WRKLOG on every phase target, clean without them, and
// create-usergroup before stage-install for USERGROUP_PHASE=pre-install.
func TestMakeInvocations(t *testing.T) {
	e := newEnv(t)
	// The wrapper lives in the tree (visible in the sandbox, read-only)
	// and writes to the test's window.
	wrapper := filepath.Join(e.tree, "make-wrapper")
	os.WriteFile(wrapper, []byte("#!/bin/sh\necho \"$*\" >> /pkgbulk-test/calls\nexec "+e.make+" \"$@\"\n"), 0o755)
	b := e.builder(func(s *job.Settings) { s.Make = wrapper })
	calls := filepath.Join(window(t, b), "calls")
	for _, loc := range []string{"lang/shlib", "sysutils/exlog"} {
		if res := e.run(b, e.record(loc)); res.Status != job.StatusDone {
			t.Fatalf("%s: %s %s", loc, res.Status, res.Message)
		}
	}
	os.Remove(calls)
	rec := strings.Replace(e.record("sysutils/exdaemon"), "MULTI_VERSION=", "", 1) + "MULTI_VERSION= EX_TEST_WORD=1\n"
	if res := e.run(b, rec); res.Status != job.StatusDone {
		t.Fatalf("exdaemon: %s %s", res.Status, res.Message)
	}
	data, _ := os.ReadFile(calls)
	var targets []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		args := strings.Fields(l)
		targets = append(targets, args[0])
		if !slices.Contains(args, "EX_TEST_WORD=1") {
			t.Errorf("no MULTI_VERSION word in %q", l)
		}
		phase := args[0] != "clean"
		for _, want := range []string{"BATCH=1", "DEPENDS_TARGET=/nonexistent"} {
			if slices.Contains(args, want) != phase {
				t.Errorf("%s: %s present=%v in %q", args[0], want, !phase, l)
			}
		}
		if phase && !slices.Contains(args, "WRKLOG=/pkgbulk/log/work.log") {
			t.Errorf("no WRKLOG in %q", l)
		}
		// What pbulk takes from mk.conf is never on the command line.
		for _, v := range []string{"PREFIX=", "LOCALBASE=", "PKG_DBDIR=", "WRKOBJDIR=", "PACKAGES="} {
			if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, v) }) {
				t.Errorf("%s forced on the command line: %q", v, l)
			}
		}
	}
	want := "show-vars clean checksum configure all create-usergroup stage-install stage-package-create clean"
	if got := strings.Join(targets, " "); got != want {
		t.Errorf("targets:\n%s\nwant:\n%s", got, want)
	}
}

// TestSkewMultiVersion checks that the skew check passes the record's
// MULTI_VERSION words: py-six builds py311-six only with
// PYTHON_VERSION_REQD=311, and without the words it is a skew.
func TestSkewMultiVersion(t *testing.T) {
	e := newEnv(t)
	b := e.builder(nil)
	rec := "PKGNAME=py311-six-1.16.0\nPKG_LOCATION=devel/py-six\nMULTI_VERSION= PYTHON_VERSION_REQD=311\nDEPENDS=python311-3.11.9\n"
	res := e.run(b, rec)
	if res.Status != job.StatusFailed || res.FailedPhase != "depends" {
		t.Errorf("with MULTI_VERSION: %s in %q (%s), want failed in depends (python311 is not in the store)", res.Status, res.FailedPhase, res.Message)
	}
	res = e.run(b, strings.Replace(rec, "MULTI_VERSION= PYTHON_VERSION_REQD=311\n", "", 1))
	if res.Status != job.StatusSkew || !strings.Contains(res.Message, "py312-six-1.16.0") {
		t.Errorf("without MULTI_VERSION: %s (%s), want skew naming py312-six-1.16.0", res.Status, res.Message)
	}
}

// TestUnprivilegedUser checks spec §2.1: run as root with an unprivileged
// user, configure, build and (for user-destdir) install run as that user,
// the other targets as root.
func TestUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "root", "needs root to switch to an unprivileged user")
	}
	if _, err := osuser.Lookup("nobody"); err != nil {
		testenv.Skip(t, "root", "no user nobody")
	}
	e := newEnv(t)
	dir := filepath.Dir(e.tree)
	// The temporary directories are 0700; the user must reach the tree.
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	wrapper := filepath.Join(e.tree, "make-wrapper")
	os.WriteFile(wrapper, []byte("#!/bin/sh\necho \"$1 $(id -un)\" >> /pkgbulk-test/calls\nexec "+e.make+" \"$@\"\n"), 0o755)
	b := e.builder(func(s *job.Settings) { s.Make = wrapper; s.UnprivUser = "nobody" })
	calls := filepath.Join(window(t, b), "calls")
	os.WriteFile(calls, nil, 0o666)
	os.Chmod(calls, 0o666)
	res := e.run(b, "PKGNAME=hello-1.0\nPKG_LOCATION=fixture/hello\nUSE_DESTDIR=user-destdir\nUSERGROUP_PHASE=configure\nDEPENDS=\n")
	if res.Status != job.StatusDone {
		t.Fatalf("status %s (%s)", res.Status, res.Message)
	}
	got, _ := os.ReadFile(calls)
	want := "show-vars root\nclean root\nchecksum root\ncreate-usergroup root\nconfigure nobody\nall nobody\n" +
		"stage-install nobody\nstage-package-create root\nclean root\n"
	if string(got) != want {
		t.Errorf("make ran as:\n%s\nwant:\n%s", got, want)
	}
}
