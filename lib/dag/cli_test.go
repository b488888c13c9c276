package dag

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/db"
)

// pkgdag runs the command in-process and returns exit code, stdout, stderr.
func pkgdag(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &cli.Globals{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
	code := cli.Run(context.Background(), "pkgdag", Description, &Command{}, args, g)
	return code, out.String(), errb.String()
}

func TestCLIBuildFromStdin(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "bulk.db")
	code, out, stderr := pkgdag(t, smallScan, "build", "-o", dbPath, "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var summary struct {
		Output string `json:"output"`
		Counts
	}
	if err := json.Unmarshal([]byte(out), &summary); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if summary.Output != dbPath || summary.Packages != 9 || summary.Unresolved != 1 || summary.Cycles != 1 {
		t.Errorf("summary %+v", summary)
	}
	for _, want := range []string{
		"pkgdag: No match found for dependency gone>=2 of package lost-1\n",
		"pkgdag: dependency cycle 1: loop-a-1 loop-b-1",
		"pkgdag:   loop-b-1 -> loop-a-1 (pattern loop-a-[0-9]*, <stdin>:",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	d := openDB(t, dbPath)
	var n int
	d.QueryRow("SELECT count(*) FROM packages").Scan(&n)
	if n != 9 {
		t.Errorf("%d packages in the database", n)
	}

	// --strict: same database, exit 1.
	code, _, stderr = pkgdag(t, smallScan, "build", "-q", "--strict", "-o", dbPath)
	if code != 1 || !strings.Contains(stderr, "1 unresolved dependency patterns, 1 dependency cycles (--strict)") || strings.Contains(stderr, "No match") {
		t.Errorf("--strict -q: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("--strict did not write the database: %v", err)
	}
}

func TestCLIPresolve(t *testing.T) {
	dir := t.TempDir()
	// A zstd-compressed file and a plain one, concatenated.
	enc, _ := zstd.NewWriter(nil)
	half := strings.Index(smallScan, "PKGNAME=tool-1")
	first := filepath.Join(dir, "a.scan.zst")
	os.WriteFile(first, enc.EncodeAll([]byte(smallScan[:half]), nil), 0o644)
	second := filepath.Join(dir, "b.scan")
	os.WriteFile(second, []byte(smallScan[half:]), 0o644)

	g, err := resolveText(t, smallScan)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	g.WritePresolve(&want, nil)

	code, out, stderr := pkgdag(t, "", "presolve", first, second)
	if code != 0 || out != want.String() {
		t.Errorf("exit %d, stderr %s, output:\n%s", code, stderr, out)
	}
	if !strings.Contains(stderr, "No match found for dependency gone>=2 of package lost-1") {
		t.Errorf("stderr: %s", stderr)
	}
	code, _, _ = pkgdag(t, smallScan, "presolve", "--strict", "-")
	if code != 1 {
		t.Errorf("presolve --strict with an unresolved pattern: exit %d", code)
	}

	// Limited: only the closure, in input order; -o writes atomically.
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte("x/py-mod # both variants\n"), 0o644)
	outFile := filepath.Join(dir, "presolve")
	code, out, stderr = pkgdag(t, smallScan, "presolve", "-l", list, "-o", outFile, "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(outFile)
	var names []string
	for _, line := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(line, "PKGNAME=") {
			names = append(names, strings.TrimPrefix(line, "PKGNAME="))
		}
	}
	if strings.Join(names, " ") != "base-1.0 lib-2.1nb3 py312-mod-1 py311-mod-1" {
		t.Errorf("limited presolve has %v", names)
	}
	if !strings.Contains(out, `"selected": 4`) || strings.Contains(stderr, "No match") {
		t.Errorf("json %s, stderr %s", out, stderr)
	}
}

func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "bulk.db")
	if code, _, stderr := pkgdag(t, smallScan, "build", "-o", dbPath, "-"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	before, _ := os.ReadFile(dbPath)
	bad := filepath.Join(dir, "bad.scan")
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte("x/base\n\nx/nowhere\n"), 0o644)
	n := strings.Count(smallScan, "\n")
	at := func(line int) string { return bad + ":" + strconv.Itoa(line) + ": " }
	tests := []struct {
		name, input string
		args        []string
		want        string
	}{
		{"line without =", smallScan + "garbage line\n", nil, at(n+1) + "line without '='"},
		{"no PKGNAME first", "ALL_DEPENDS=\n" + smallScan, nil, bad + ":1: invalid input: text before the first PKGNAME= line"},
		{"duplicate PKGNAME", smallScan + rec("lib-2.1nb3", "y/lib", ""), nil, at(n+1) + "duplicate package lib-2.1nb3 (first at " + bad + ":15)"},
		{"malformed pattern", smallScan + rec("new-1", "y/new", "lib-{1:../../x/lib"), nil, at(n+3) + "malformed dependency pattern"},
		{"malformed entry", smallScan + rec("new-1", "y/new", "lib-1"), nil, at(n+3) + "Incorrect dependency for new-1"},
		{"truncated", smallScan[:len(smallScan)-5], nil, at(n) + "file does not end with a newline"},
		{"unknown limited pkgpath", smallScan, []string{"-l", list}, list + ":3: pkgpath x/nowhere is not in the scan"},
		// Issue 9, point 10: names and locations that would leave the
		// store or the tree, NUL bytes, and an empty scan.
		{"PKGNAME with a path", smallScan + rec("../../evil-1.0", "y/evil", ""), nil, at(n+1) + `invalid input: PKGNAME "../../evil-1.0" contains '/'`},
		{"PKGNAME with a leading dash", smallScan + rec("-rf-1.0", "y/rf", ""), nil, at(n+1) + `invalid input: PKGNAME "-rf-1.0" starts with '-'`},
		{"PKGNAME with a leading dot", rec(".hidden-1", "y/hidden", "") + smallScan, nil, bad + `:1: invalid input: PKGNAME ".hidden-1" starts with '.'`},
		{"PKGNAME without a version", smallScan + rec("noversion", "y/nov", ""), nil, at(n+1) + `invalid input: PKGNAME "noversion" is not NAME-VERSION`},
		{"PKGNAME with a control character", smallScan + rec("foo\v-1.0", "y/foo", ""), nil, at(n+1) + `invalid input: PKGNAME "foo\v-1.0" contains whitespace or a control character`},
		{"absolute PKG_LOCATION", smallScan + rec("evil-1.0", "/etc", ""), nil, at(n+2) + `invalid input: PKG_LOCATION of evil-1.0: location "/etc" is absolute`},
		{"PKG_LOCATION with ..", rec("evil-1.0", "../../etc", "") + smallScan, nil, bad + `:2: invalid input: PKG_LOCATION of evil-1.0: location "../../etc" leaves the pkgsrc tree`},
		{"PKG_LOCATION one level", smallScan + rec("evil-1.0", "etc", ""), nil, at(n+2) + `invalid input: PKG_LOCATION of evil-1.0: location "etc" is not category/dir`},
		{"NUL in a value", smallScan + rec("nul-1.0", "y/nul", "", "COMMENT=a\x00b"), nil, at(n+14) + `NUL byte in the value of "COMMENT"`},
		{"NUL in PKGNAME", smallScan + rec("nul\x00-1.0", "y/nul", ""), nil, at(n+1) + `NUL byte in the value of "PKGNAME"`},
		{"empty scan", "", nil, bad + ": empty scan: no PKGNAME= record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(bad, []byte(tt.input), 0o644)
			args := append([]string{"build", "-o", dbPath}, tt.args...)
			code, _, stderr := pkgdag(t, "", append(args, bad)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
			if after, _ := os.ReadFile(dbPath); !bytes.Equal(before, after) {
				t.Error("the existing database changed")
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if name := e.Name(); name != "bulk.db" && name != "bad.scan" && name != "list" {
					t.Errorf("%s left behind", name)
				}
			}
		})
	}
	for _, cmd := range []string{"build", "presolve"} {
		code, out, stderr := pkgdag(t, "", cmd, "-o", dbPath+"."+cmd, "-")
		if code != 2 || out != "" || stderr != "pkgdag: <stdin>: empty scan: no PKGNAME= record (did the scan fail?)\n" {
			t.Errorf("%s of an empty stdin: exit %d, stdout %q, stderr %q", cmd, code, out, stderr)
		}
		if _, err := os.Stat(dbPath + "." + cmd); !os.IsNotExist(err) {
			t.Errorf("%s of an empty stdin wrote %s.%s", cmd, dbPath, cmd)
		}
	}
	if code, _, stderr := pkgdag(t, "", "build", "-o", dbPath, filepath.Join(dir, "missing.scan")); code != 2 || !strings.Contains(stderr, "missing.scan") {
		t.Errorf("missing input: exit %d, %s", code, stderr)
	}
	if code, _, _ := pkgdag(t, "", "build"); code != 2 {
		t.Errorf("build without -o: exit %d", code)
	}
	if code, out, _ := pkgdag(t, "", "build", "--help"); code != 0 || !strings.Contains(out, "history table") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestCLIScanOrigin: --pkgsrc records the tree's revision (a git commit or
// a CVS tag) and --platform the platform, where the pull server's skew
// check reads them; a tree of neither kind records nothing; a
// malformed platform is bad usage and writes no database.
func TestCLIScanOrigin(t *testing.T) {
	dir := t.TempDir()
	git := filepath.Join(dir, "git")
	cvs := filepath.Join(dir, "cvs")
	plain := filepath.Join(dir, "plain")
	os.MkdirAll(filepath.Join(cvs, "CVS"), 0o755)
	os.WriteFile(filepath.Join(cvs, "CVS", "Tag"), []byte("Tpkgsrc-2026Q3\n"), 0o644)
	os.MkdirAll(plain, 0o755)
	var commit string
	if _, err := exec.LookPath("git"); err == nil {
		os.MkdirAll(git, 0o755)
		for _, a := range [][]string{{"init", "-q"}, {"-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "x"}} {
			if out, err := exec.Command("git", append([]string{"-C", git}, a...)...).CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", a, err, out)
			}
		}
		out, _ := exec.Command("git", "-C", git, "rev-parse", "HEAD").Output()
		commit = strings.TrimSpace(string(out))
	}
	meta := func(path, key string) string {
		var v string
		openDB(t, path).QueryRow("SELECT value FROM meta WHERE key = ?", key).Scan(&v)
		return v
	}
	for _, c := range []struct {
		name, tree, platform  string
		code                  int
		wantRev, wantPlatform string
		stderr                string
	}{
		{"cvs", cvs, "NetBSD 10.0/x86_64", 0, "Tpkgsrc-2026Q3", "NetBSD 10.0/x86_64", ""},
		{"git", git, "Linux/x86_64", 0, commit, "Linux/x86_64", ""},
		{"plain", plain, "", 0, "", "", ""},
		{"bad platform", cvs, "NetBSD 10.0", 2, "", "", "--platform: platform \"NetBSD 10.0\": want OPSYS/ARCH"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.tree == git && commit == "" {
				t.Skip("no git")
			}
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".db")
			args := []string{"build", "-q", "-o", path, "--pkgsrc", c.tree}
			if c.platform != "" {
				args = append(args, "--platform", c.platform)
			}
			code, _, stderr := pkgdag(t, smallScan, append(args, "-")...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, c.code, stderr, c.stderr)
			}
			if c.code != 0 {
				if _, err := os.Stat(path); err == nil {
					t.Error("a database was written")
				}
				return
			}
			if got := meta(path, db.MetaTreeRevision); got != c.wantRev {
				t.Errorf("tree revision %q, want %q", got, c.wantRev)
			}
			if got := meta(path, db.MetaPlatform); got != c.wantPlatform {
				t.Errorf("platform %q, want %q", got, c.wantPlatform)
			}
		})
	}
}
