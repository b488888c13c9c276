// Package realpkgsrc tests pkgbulk on a real pkgsrc tree (../shared/pkgsrc:
// pkgsrc of 2018-08-31, 125 packages) end to end, the way an operator runs
// it: a bootstrap kit made with pkgrun kit, a scan with the kit's bmake in
// a sandbox, pkgdag, a two-slot pkgsched build into a file store, then
// pbulk itself (built by this very build) scanning and resolving the same
// tree for comparison, and every package built installed with pkg_add into
// a fresh bootstrap and used.
//
// The kit is made once per tree (about 5 minutes on two cores) and kept in
// testenv.CacheDir, keyed by the tarball's SHA-256.
package realpkgsrc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildOut  []byte
	buildErr  error
)

// tools builds every command of this checkout once.
func tools(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "pkgbulk-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = testenv.RepoRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", buildErr, buildOut)
	}
	return binDir
}

// run runs a tool and returns its stdout; want is the exit status expected.
func run(t *testing.T, want int, name string, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Logf("%s %s: exit %d in %v", filepath.Base(name), strings.Join(args[:min(len(args), 3)], " "), code, time.Since(start).Round(time.Millisecond))
	if code != want {
		t.Fatalf("%s %s: exit %d, want %d\nstderr:\n%s", name, strings.Join(args, " "), code, want, clip(errb.String()))
	}
	return out.Bytes()
}

func clip(s string) string {
	if len(s) > 6000 {
		return "..." + s[len(s)-6000:]
	}
	return s
}

// kit returns the bootstrap kit of the tree in tarball, made with pkgrun
// kit when the cache does not have it.
func kit(t *testing.T, bin, tarball string) string {
	return testenv.Cached(t, tarball, "kit.tar.gz", func(path string) error {
		tree := testenv.UnpackPkgsrc(t, tarball)
		start := time.Now()
		run(t, 0, filepath.Join(bin, "pkgrun"), "kit", "--pkgsrc", tree, "-o", path,
			"--work-root", t.TempDir(), "--env", "SH=/bin/bash", "--env", "CFLAGS=-fcommon")
		t.Logf("bootstrap kit made in %v", time.Since(start).Round(time.Second))
		return nil
	})
}

// readmeLists reads the shared tree's README: the locations pbulk built
// from in-tree sources, those that fail to compile, and those not for
// Linux. (The README records pbulk 0.65's own bulk build of this tree.)
func readmeLists(t *testing.T, tarball string) (built, compileFail, notLinux []string) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(tarball), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := func(title string) []string {
		i := bytes.Index(b, []byte(title))
		if i < 0 {
			t.Fatalf("README has no %q", title)
		}
		rest := b[i+len(title):]
		if j := bytes.Index(rest, []byte("\n- ")); j >= 0 {
			rest = rest[:j]
		}
		if j := bytes.Index(rest, []byte("\n\n")); j >= 0 {
			rest = rest[:j]
		}
		return expand(string(rest))
	}
	return section("**Build and package from in-tree sources (44):**"),
		section("**In-tree sources that fail to compile on current glibc/gcc (5):**"),
		section("**Not for Linux (3):**")
}

var locRE = regexp.MustCompile(`([a-z0-9]+)/(\{[^}]*\}|[A-Za-z0-9_.+-]+)`)

var parenRE = regexp.MustCompile(`\([^)]*\)`)

// expand turns "devel/{bmake,cpuflags}; lang/nawk. More text" into
// locations: the list ends at the first full stop or colon.
func expand(s string) []string {
	s = parenRE.ReplaceAllString(strings.Join(strings.Fields(s), " "), "")
	for _, end := range []string{". ", ": "} {
		if i := strings.Index(s, end); i >= 0 {
			s = s[:i]
		}
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	var out []string
	for _, m := range locRE.FindAllStringSubmatch(strings.ReplaceAll(s, " ", ""), -1) {
		names := []string{m[2]}
		if strings.HasPrefix(m[2], "{") {
			names = strings.Split(strings.Trim(m[2], "{}"), ",")
		}
		for _, n := range names {
			out = append(out, m[1]+"/"+n)
		}
	}
	return out
}

func records(b []byte) int { return bytes.Count(append([]byte("\n"), b...), []byte("\nPKGNAME=")) }

// TestRealPkgsrc is the whole run; its steps depend on each other.
func TestRealPkgsrc(t *testing.T) {
	if err := sandbox.Available(); err != nil {
		testenv.Skip(t, "sandbox", err.Error())
	}
	tarball := testenv.RealPkgsrc(t)
	bin := tools(t)
	pkgrun, pkgscan, pkgdag, pkgsched := filepath.Join(bin, "pkgrun"), filepath.Join(bin, "pkgscan"), filepath.Join(bin, "pkgdag"), filepath.Join(bin, "pkgsched")
	kitFile := kit(t, bin, tarball)
	tree := testenv.UnpackPkgsrc(t, tarball)
	work := t.TempDir()
	workRoot := filepath.Join(work, "work")
	store := filepath.Join(work, "store")
	inKit := func(want int, binds []string, args ...string) []byte {
		t.Helper()
		a := []string{"exec", "--pkgsrc", tree, "--bootstrap-kit", kitFile, "--work-root", workRoot}
		for _, b := range binds {
			a = append(a, "--bind", b)
		}
		return run(t, want, pkgrun, append(append(a, "--"), args...)...)
	}

	// The scan, with the kit's bmake in a sandbox: the host has no /usr/pkg.
	pscan := inKit(0, []string{bin}, pkgscan, "-C", tree, "-M", "/usr/pkg/bin/bmake", "-j", "2")
	if n := records(pscan); n != 139 {
		t.Fatalf("pkgscan wrote %d records, want the README's 139", n)
	}
	os.WriteFile(filepath.Join(work, "pscan"), pscan, 0o644)
	db := filepath.Join(work, "bulk.db")
	run(t, 0, pkgdag, "build", "-o", db, filepath.Join(work, "pscan"))
	presolve := run(t, 0, pkgdag, "presolve", filepath.Join(work, "pscan"))

	// The build: two slots, no network (offline, as the README's pbulk
	// run: packages that need distfiles fail at checksum).
	settings := filepath.Join(work, "settings.json")
	os.WriteFile(settings, []byte(`{"network": "none", "no_output_time": "10m", "max_time": "30m"}`), 0o644)
	start := time.Now()
	run(t, 1, pkgsched, "run", "--db", db, "-j", "2", "--pkgsrc", tree, "--store", "file://"+store,
		"--work-root", workRoot, "--bootstrap-kit", kitFile, "--job", settings, "--pkgrun", pkgrun)
	t.Logf("bulk build of the subset with 2 slots: %v", time.Since(start).Round(time.Second))

	states := map[string][]string{} // location -> "state detail" of each of its packages
	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT p.pkgpath, s.state, coalesce(s.detail, '') FROM build_state s JOIN packages p ON p.id = s.pkg_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var loc, state, detail string
		rows.Scan(&loc, &state, &detail)
		// detail is "<phase>: <message>" for failed builds.
		phase, _, _ := strings.Cut(detail, ":")
		if state != "failed" {
			phase = ""
		}
		states[loc] = append(states[loc], strings.TrimSpace(state+" "+phase))
	}
	rows.Close()

	// Figures: the jobs' summed wall time (what one slot would take), and
	// the depends phase (dependency installs with the kit's pkg_add).
	var sum, deps, withDeps int64
	rows, err = d.Query(`SELECT coalesce(wall_ms, 0), coalesce(result, '') FROM build_state WHERE result IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var wall int64
		var result string
		rows.Scan(&wall, &result)
		sum += wall
		var r struct {
			Phases []struct {
				Name   string `json:"name"`
				WallMS int64  `json:"wall_ms"`
			} `json:"phases"`
		}
		if json.Unmarshal([]byte(result), &r) == nil {
			for _, p := range r.Phases {
				if p.Name == "depends" && p.WallMS > 0 {
					deps += p.WallMS
					withDeps++
				}
			}
		}
	}
	rows.Close()
	t.Logf("jobs' summed wall time %v (one slot); dependency installs: %d jobs, %v on average",
		time.Duration(sum)*time.Millisecond, withDeps, time.Duration(deps/max(withDeps, 1))*time.Millisecond)

	built, compileFail, notLinux := readmeLists(t, tarball)
	if len(built) != 44 || len(compileFail) != 5 || len(notLinux) != 3 {
		t.Fatalf("README lists: %d built, %d compile failures, %d not for Linux", len(built), len(compileFail), len(notLinux))
	}
	t.Run("statuses as pbulk's", func(t *testing.T) {
		for _, loc := range built {
			for _, s := range states[loc] {
				if !strings.HasPrefix(s, "done") {
					t.Errorf("%s: %s, pbulk built it", loc, s)
				}
			}
			if len(states[loc]) == 0 {
				t.Errorf("%s: not in the build", loc)
			}
		}
		for _, loc := range compileFail {
			for _, s := range states[loc] {
				if s != "failed build" && s != "failed configure" {
					t.Errorf("%s: %q, pbulk failed it compiling", loc, s)
				}
			}
		}
		for _, loc := range notLinux {
			for _, s := range states[loc] {
				if !strings.HasPrefix(s, "prefailed") {
					t.Errorf("%s: %q, pbulk does not build it on Linux", loc, s)
				}
			}
		}
		// Everything else needs a distfile, or depends on one that does.
		var locs []string
		for loc := range states {
			locs = append(locs, loc)
		}
		sort.Strings(locs)
		for _, loc := range locs {
			if slices.Contains(built, loc) || slices.Contains(compileFail, loc) || slices.Contains(notLinux, loc) {
				continue
			}
			for _, s := range states[loc] {
				if s != "failed checksum" && !strings.HasPrefix(s, "indirect-failed") && !strings.HasPrefix(s, "indirect-prefailed") && !strings.HasPrefix(s, "prefailed") {
					t.Errorf("%s: %q; offline it can only fail at checksum or through a dependency", loc, s)
				}
			}
		}
	})

	all, _ := filepath.Glob(filepath.Join(store, "All", "*.tgz"))
	t.Run("real packages", func(t *testing.T) {
		// Real pkgsrc packages: built for /usr/pkg, nothing of the job's
		// directories in them.
		for _, p := range all {
			m, err := pkgfile.ReadMetaFile(p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			// LOCALBASE, or / for a package whose PREFIX is / (rc.subr);
			// "." is pkg_create's own before the metadata.
			for _, l := range strings.Split(string(m.Files["+CONTENTS"]), "\n") {
				if cwd, ok := strings.CutPrefix(l, "@cwd "); ok && cwd != "/usr/pkg" && cwd != "/" && cwd != "." {
					t.Errorf("%s: +CONTENTS has %q", filepath.Base(p), l)
				}
			}
			b, err := exec.Command("bsdtar", "-xOf", p).Output()
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			for _, leak := range []string{workRoot, work} {
				if bytes.Contains(b, []byte(leak)) {
					t.Errorf("%s carries the path %s of the build host", filepath.Base(p), leak)
				}
			}
		}
	})

	t.Run("pbulk agrees", func(t *testing.T) {
		// pbulk-base, built above, installed into a fresh bootstrap with
		// the kit's pkg_add, scans and resolves the same tree.
		script := `set -e
PKG_PATH=/packages pkg_add pbulk-base >&2
pbulk-scan -M /usr/pkg/bin/bmake "$1" /tmp/pscan >&2
pbulk-resolve /tmp/pscan > /tmp/presolve
cat /tmp/pscan; echo '#### presolve'; cat /tmp/presolve`
		out := inKit(0, []string{filepath.Join(store, "All") + ":/packages"}, "/bin/sh", "-c", script, "sh", tree)
		theirScan, theirPresolve, ok := bytes.Cut(out, []byte("#### presolve\n"))
		if !ok {
			t.Fatalf("no output from pbulk:\n%s", clip(string(out)))
		}
		if !bytes.Equal(theirScan, pscan) {
			t.Errorf("pkgscan's records differ from pbulk-scan's:\n%s", firstDiff(pscan, theirScan))
		}
		if !bytes.Equal(theirPresolve, presolve) {
			t.Errorf("pkgdag presolve differs from pbulk-resolve:\n%s", firstDiff(presolve, theirPresolve))
		}
	})

	t.Run("pkg_add into a fresh bootstrap", func(t *testing.T) {
		// Every package built, installed with the kit's pkg_add in a new
		// sandbox (those the kit already has are skipped), then used.
		script := `set -e
cd /packages
for p in *.tgz; do
	n=${p%.tgz}
	pkg_info -qe "${n%-*}" && continue
	PKG_PATH=/packages pkg_add "$n" >&2 || { echo "pkg_add $n failed" >&2; exit 1; }
done
pkg_admin check >&2
echo hello > /tmp/f
digest sha256 /tmp/f | sed 's/.*= //'
sha256sum /tmp/f | cut -d' ' -f1
nbsed -e s/hello/bye/ /tmp/f
pkg_info | wc -l`
		out := inKit(0, []string{filepath.Join(store, "All") + ":/packages"}, "/bin/sh", "-c", script)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 4 || lines[0] != lines[1] || lines[2] != "bye" {
			t.Fatalf("using the installed packages printed:\n%s", out)
		}
		if n := strings.TrimSpace(lines[3]); n < "4" {
			t.Errorf("pkg_info lists %s packages", n)
		}
	})

	t.Run("through a pull worker", func(t *testing.T) {
		pullBuild(t, pullRun{bin: bin, tree: tree, kit: kitFile, pscan: filepath.Join(work, "pscan"),
			settings: settings, local: states, localStore: store, inKit: inKit})
	})
}

// pullRun is what the pull-worker part of TestRealPkgsrc takes from the
// local build before it.
type pullRun struct {
	bin, tree, kit, pscan, settings string
	local                           map[string][]string // the local build's states by location
	localStore                      string
	inKit                           func(want int, binds []string, args ...string) []byte
}

var tokenRE = regexp.MustCompile(`pkgbulk-token-[A-Za-z0-9_-]+`)

// pullBuild builds a chain of real packages (net/fetch needs net/libfetch
// and pkgtools/cwrappers) and one that fails to compile (archivers/pax)
// the volunteer way: pkgsched run with the pull executor, one `pkgrun
// worker` with the kit that registers with a token, takes leases, fetches
// the dependencies it needs through the server and uploads what it built.
// The statuses must be the local build's, the packages must install with
// pkg_add into a fresh bootstrap and work, and the token must appear in no
// log.
func pullBuild(t *testing.T, r pullRun) {
	pkgsched, pkgrun, pkgdag := filepath.Join(r.bin, "pkgsched"), filepath.Join(r.bin, "pkgrun"), filepath.Join(r.bin, "pkgdag")
	dir := t.TempDir()
	list := filepath.Join(dir, "limited")
	os.WriteFile(list, []byte("net/fetch\narchivers/pax\n"), 0o644)
	db := filepath.Join(dir, "pull.db")
	run(t, 0, pkgdag, "build", "-q", "--limited", list, "-o", db, r.pscan)
	tok := tokenRE.FindString(string(run(t, 0, pkgsched, "token", "add", "--db", db, "real-1")))
	if tok == "" {
		t.Fatal("pkgsched token add printed no token")
	}
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	store := filepath.Join(dir, "store")
	var schedOut, workerOut bytes.Buffer
	sched := exec.Command(pkgsched, "run", "--db", db, "--executor", fmt.Sprintf("pull://127.0.0.1:%d?ttl=2m&poll=5s", port),
		"--store", "file://"+store, "--pkgrun", pkgrun, "--pkgsrc", r.tree, "--job", r.settings,
		"--work-root", filepath.Join(dir, "sched-work"))
	sched.Stdout, sched.Stderr = &schedOut, &schedOut
	if err := sched.Start(); err != nil {
		t.Fatal(err)
	}
	schedDone := make(chan struct{})
	go func() { sched.Wait(); close(schedDone) }()
	defer func() {
		sched.Process.Kill()
		<-schedDone
	}()
	var fp string
	for end := time.Now().Add(time.Minute); fp == "" && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(db + ".pull-cert.pem"); err == nil {
			if blk, _ := pem.Decode(b); blk != nil {
				fp = fmt.Sprintf("sha256:%x", sha256.Sum256(blk.Bytes))
			}
		}
	}
	if fp == "" {
		t.Fatalf("no certificate beside %s; pkgsched:\n%s", db, clip(schedOut.String()))
	}

	worker := exec.Command(pkgrun, "worker", "--server", fmt.Sprintf("https://127.0.0.1:%d", port), "--token-file", tokFile,
		"--fingerprint", fp, "--name", "real-1", "--pkgsrc", r.tree, "--bootstrap-kit", r.kit,
		"--work-root", filepath.Join(dir, "worker-work"), "--poll-wait", "5s")
	worker.Stdout, worker.Stderr = &workerOut, &workerOut
	start := time.Now()
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	workerDone := make(chan struct{})
	go func() { worker.Wait(); close(workerDone) }()
	defer func() {
		worker.Process.Kill()
		<-workerDone
	}()
	select {
	case <-schedDone:
	case <-time.After(20 * time.Minute):
		t.Fatalf("the pull build did not end in 20 minutes; pkgsched:\n%s\nworker:\n%s", clip(schedOut.String()), clip(workerOut.String()))
	}
	t.Logf("pull build of %s with one worker: pkgsched exit %d in %v", "net/fetch and archivers/pax",
		sched.ProcessState.ExitCode(), time.Since(start).Round(time.Second))
	worker.Process.Signal(syscall.SIGTERM)
	select {
	case <-workerDone:
	case <-time.After(time.Minute):
		t.Errorf("pkgrun worker did not exit within a minute of SIGTERM")
	}
	if code := sched.ProcessState.ExitCode(); code != 1 {
		t.Errorf("pkgsched run: exit %d, want 1 (archivers/pax fails)\n%s", code, clip(schedOut.String()))
	}
	for _, out := range []string{schedOut.String(), workerOut.String()} {
		if strings.Contains(out, tok) {
			t.Error("the token is in a log")
		}
	}

	d, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT p.pkgpath, p.pkgname, coalesce(s.state, p.initial_state), coalesce(s.detail, ''), coalesce(s.worker, '')
		FROM packages p LEFT JOIN build_state s ON s.pkg_id = p.id WHERE p.selected = 1`)
	if err != nil {
		t.Fatal(err)
	}
	var built []string
	n := 0
	for rows.Next() {
		var loc, name, state, detail, w string
		rows.Scan(&loc, &name, &state, &detail, &w)
		n++
		phase, _, _ := strings.Cut(detail, ":")
		if state != "failed" {
			phase = ""
		}
		got := strings.TrimSpace(state + " " + phase)
		if !slices.Contains(r.local[loc], got) {
			t.Errorf("%s (%s): %q through the pull worker, %v in the local build", loc, name, got, r.local[loc])
		}
		if state == "done" {
			built = append(built, name)
			if w != "pull:real-1" {
				t.Errorf("%s was built by %q, not the pull worker", name, w)
			}
		}
	}
	rows.Close()
	if n < 4 || len(built) < 3 {
		t.Fatalf("%d packages selected, %d built: want net/fetch's chain and archivers/pax", n, len(built))
	}
	for _, name := range built {
		if _, err := os.Stat(filepath.Join(store, "All", name+".tgz")); err != nil {
			t.Errorf("%s: built, but not in the store: %v", name, err)
		}
	}

	// The packages the worker uploaded install into a fresh bootstrap with
	// the kit's pkg_add, and fetch(1) works.
	script := `set -e
if pkg_info -qe fetch; then echo "the kit has fetch already" >&2; exit 1; fi
PKG_PATH=/packages pkg_add fetch >&2
pkg_info -qe fetch
pkg_admin check >&2
echo hello > /tmp/f
fetch -q -o /tmp/g file:///tmp/f
cat /tmp/g`
	out := r.inKit(0, []string{filepath.Join(store, "All") + ":/packages"}, "/bin/sh", "-c", script)
	if strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("fetch from the pull-built packages printed %q", out)
	}
}

// firstDiff shows the first differing line of two outputs.
func firstDiff(ours, theirs []byte) string {
	a, b := bufio.NewScanner(bytes.NewReader(ours)), bufio.NewScanner(bytes.NewReader(theirs))
	a.Buffer(nil, 1<<20)
	b.Buffer(nil, 1<<20)
	for n := 1; ; n++ {
		okA, okB := a.Scan(), b.Scan()
		if !okA && !okB {
			return "(same lines; different line ends)"
		}
		if okA != okB || a.Text() != b.Text() {
			return "line " + strconv.Itoa(n) + ":\n ours:   " + a.Text() + "\n theirs: " + b.Text()
		}
	}
}

func TestExpand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"archivers/bsdtar; devel/{bmake,cpuflags};\n  lang/nawk. Chains: net/fetch → net/libfetch", []string{"archivers/bsdtar", "devel/bmake", "devel/cpuflags", "lang/nawk"}},
		{"archivers/pax, pkgtools/mtree\n(`major` need `<sys/sysmacros.h>`), sysutils/lockf: real build failures", []string{"archivers/pax", "pkgtools/mtree", "sysutils/lockf"}},
		{"devel/pthread-stublib, time/zonetab.", []string{"devel/pthread-stublib", "time/zonetab"}},
	} {
		if got := expand(c.in); !slices.Equal(got, c.want) {
			t.Errorf("expand(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
