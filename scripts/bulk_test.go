package scripts

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// runBulk runs scripts/bulk.sh with a config that keeps everything in dir.
func runBulk(t *testing.T, dir string, extra string) (stdout, stderr string) {
	t.Helper()
	code, out, errs := bulk(t, dir, extra)
	if code != 0 {
		t.Fatalf("bulk.sh: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	return out, errs
}

// bulk runs scripts/bulk.sh with a config that keeps everything in dir
// (extra comes last, so it can override the rest) and returns its exit
// status and output.
func bulk(t *testing.T, dir string, extra string) (code int, stdout, stderr string) {
	t.Helper()
	root := testenv.RepoRoot(t)
	conf := filepath.Join(dir, "bulk.conf")
	body := fmt.Sprintf("bulkdir=%s/bulk\nstore=file://%s/packages\nbindir=%s\njobs=2\nscan_jobs=2\n%s",
		dir, dir, tools(t), extra)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", filepath.Join(root, "scripts", "bulk.sh"), "-c", conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// TestBulkChecksSettings: a mistake in the config stops bulk.sh before it
// scans anything, with exit 2 and a message that names the setting; every
// mistake is reported at once.
func TestBulkChecksSettings(t *testing.T) {
	testenv.Program(t, "bmake")
	dir := t.TempDir()
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte("textproc/exgrep\n# a comment\ntextproc/exgerp   # a typo\n\nmisc/nothere\n"), 0o644)
	for _, c := range []struct {
		name, conf string
		want       []string
	}{
		{"list path typo", "limited_list=" + list + "x\n",
			[]string{"limited_list=" + list + "x: no such readable file"}},
		{"list locations", "limited_list=" + list + "\n",
			[]string{"limited_list=" + list + ":3: textproc/exgerp is not a package directory", "limited_list=" + list + ":5: misc/nothere is not"}},
		{"unknown store scheme", "store=ftp://host/packages\n",
			[]string{"the store setting does not work", `unknown scheme "ftp"`}},
		{"unreachable store", "store=s3://packages/x\nstore_opts=--s3-endpoint=http://127.0.0.1:1\n",
			[]string{"the store setting does not work", "connection refused"}},
		{"store_opts typo", "store_opts=--s3-endpiont=http://127.0.0.1:1\n",
			[]string{"the store setting does not work", "unknown flag --s3-endpiont"}},
		{"several", "pkgsrc=" + dir + "/tree\nsign=pgp\njobs=eight\nmake=bmkae\n",
			[]string{"pkgsrc=" + dir + "/tree: no such directory", "sign=pgp: want no, gpg or x509", "jobs=eight: want a number", "make=bmkae: no such program"}},
		{"signing key", "sign=gpg\ngpg_key=" + dir + "/key.asc\n",
			[]string{"gpg_key=" + dir + "/key.asc: no such readable file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := bulk(t, dir, c.conf)
			if code != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(errs, "bulk.sh: ") || !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
			if strings.Contains(errs, "scanning") {
				t.Errorf("bulk.sh scanned before it stopped:\n%s", errs)
			}
			if _, err := os.Stat(filepath.Join(dir, "bulk", "meta")); err == nil {
				t.Errorf("bulk.sh wrote %s/bulk/meta before it stopped", dir)
			}
		})
	}
}

// TestBulkExampleTree is the README's main job: a real bulk build of the
// example tree with the embedded defaults (local executor, SQLite, a
// file:// store), then a second run that finds everything up to date.
func TestBulkExampleTree(t *testing.T) {
	if testing.Short() {
		t.Skip("the full bulk build takes about a minute")
	}
	testenv.Program(t, "bmake")
	testenv.Program(t, "cc")
	dir := t.TempDir()
	out, _ := runBulk(t, dir, "")

	report := strings.TrimSpace(out)
	if report != filepath.Join(dir, "bulk", "meta", "report.html") {
		t.Fatalf("bulk.sh printed %q, want the report's path", report)
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	d := openDB(t, filepath.Join(dir, "bulk", "meta", "bulk.db"))
	state := func(name string) string {
		s := queryStrings(t, d, `SELECT b.state FROM build_state b JOIN packages p ON p.id = b.pkg_id WHERE p.pkgname = ?`, name)
		if len(s) != 1 {
			t.Fatalf("no build state for %s", name)
		}
		return s[0]
	}
	// The tree's one real compile error, and what depends on it.
	if s := state("libbroken-0.1"); s != "failed" {
		t.Errorf("libbroken-0.1 is %s, want failed", s)
	}
	if s := state("exbroken-user2-1.0"); s != "indirect-failed" {
		t.Errorf("exbroken-user2-1.0 is %s, want indirect-failed", s)
	}
	if !strings.Contains(string(html), "libbroken-0.1") {
		t.Errorf("report.html does not list libbroken-0.1")
	}
	if _, err := os.Stat(filepath.Join(dir, "packages", "bulklog", "libbroken-0.1", "build.log")); err != nil {
		t.Errorf("the failed build's log is not in the store: %v", err)
	}

	// The distfile that does not match distinfo and the one whose site is
	// down fail at checksum.
	for _, n := range []string{"exbadsum-1.0", "exsitedown-1.0"} {
		if s := state(n); s != "failed" {
			t.Errorf("%s is %s, want failed", n, s)
		}
	}
	// Every package that started open and does not depend on libbroken is
	// built, but those two, and pkg_summary lists exactly the built packages.
	done := queryStrings(t, d, `SELECT p.pkgname FROM build_state b JOIN packages p ON p.id = b.pkg_id WHERE b.state = 'done' ORDER BY 1`)
	open := queryStrings(t, d, `SELECT pkgname FROM packages WHERE initial_state = 'open' AND pkgname NOT LIKE '%broken%' AND pkgname NOT IN ('exbadsum-1.0', 'exsitedown-1.0') ORDER BY 1`)
	if strings.Join(done, " ") != strings.Join(open, " ") {
		t.Errorf("done packages:\n%v\nwant every open package but the broken chain:\n%v", done, open)
	}
	for _, n := range done {
		if _, err := os.Stat(filepath.Join(dir, "packages", "All", n+".tgz")); err != nil {
			t.Errorf("package of %s missing from the store: %v", n, err)
		}
	}
	summary := summaryNames(t, filepath.Join(dir, "packages", "All", "pkg_summary.gz"))
	if strings.Join(summary, " ") != strings.Join(done, " ") {
		t.Errorf("pkg_summary.gz lists:\n%v\nwant:\n%v", summary, done)
	}

	// Second run: same tree, same store: every built package is up to date.
	runBulk(t, dir, "")
	d2 := openDB(t, filepath.Join(dir, "bulk", "meta", "bulk.db"))
	upToDate := queryStrings(t, d2, `SELECT p.pkgname FROM build_state b JOIN packages p ON p.id = b.pkg_id WHERE b.state = 'done' AND b.detail = 'up-to-date' ORDER BY 1`)
	if strings.Join(upToDate, " ") != strings.Join(done, " ") {
		t.Errorf("second run: up to date:\n%v\nwant:\n%v", upToDate, done)
	}
}

func summaryNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "PKGNAME="); ok {
			names = append(names, n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestBulkSignThenIndex: with sign=gpg, bulk.sh signs the packages before
// it indexes them, so pkg_summary describes the signed files (their
// FILE_SIZE), and the signatures verify with pkgsign verify and GnuPG's key.
func TestBulkSignThenIndex(t *testing.T) {
	testenv.Program(t, "bmake")
	gpg := testenv.Program(t, "gpg")
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	gpgRun := func(args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpgRun("--quick-gen-key", "pkgbulk test <test@example.org>", "rsa2048", "sign", "never")
	key := filepath.Join(dir, "secret.asc")
	pub := filepath.Join(dir, "public.asc")
	os.WriteFile(key, gpgRun("--armor", "--export-secret-keys", "test@example.org"), 0o600)
	os.WriteFile(pub, gpgRun("--armor", "--export", "test@example.org"), 0o644)
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte("textproc/exgrep\n"), 0o644)

	runBulk(t, dir, fmt.Sprintf("limited_list=%s\nsign=gpg\ngpg_key=%s\n", list, key))

	all := filepath.Join(dir, "packages", "All")
	cmd := exec.Command(filepath.Join(tools(t), "pkgsign"), "verify", "--gpg-pubkey", pub, "--store", "file://"+filepath.Join(dir, "packages"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pkgsign verify: %v\n%s", err, out)
	}
	// exgrep and its dependency exwc (and the bootstrap package) were built.
	names := summaryNames(t, filepath.Join(all, "pkg_summary.gz"))
	if len(names) < 2 {
		t.Fatalf("pkg_summary lists %v, want exgrep and its dependencies", names)
	}
	sizes := summarySizes(t, filepath.Join(all, "pkg_summary.gz"))
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(all, n+".tgz"))
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 8)
		f, _ := os.Open(filepath.Join(all, n+".tgz"))
		f.Read(head)
		f.Close()
		if string(head) != "!<arch>\n" {
			t.Errorf("%s is not signed (no ar container)", n)
		}
		if sizes[n] != fi.Size() {
			t.Errorf("%s: pkg_summary FILE_SIZE=%d, signed file has %d bytes", n, sizes[n], fi.Size())
		}
	}
}

// summarySizes maps PKGNAME to FILE_SIZE in a pkg_summary.gz.
func summarySizes(t *testing.T, path string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var name string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "PKGNAME="); ok {
			name = n
		}
		if v, ok := strings.CutPrefix(sc.Text(), "FILE_SIZE="); ok {
			var n int64
			fmt.Sscan(v, &n)
			out[name] = n
		}
	}
	return out
}
