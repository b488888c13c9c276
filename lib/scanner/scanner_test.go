package scanner

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// copyTree copies testdata/<name> into a fresh directory and dates every
// file an hour back, as a tree checked out earlier would be (files written
// the very moment a scan starts are, rightly, not trusted by the cache).
func copyTree(t *testing.T, name string) string {
	t.Helper()
	testenv.Program(t, "bmake")
	src := filepath.Join("testdata", name)
	dst := filepath.Join(t.TempDir(), name)
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
		return os.Chtimes(target, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// countingMake writes a make wrapper that logs "<dir> <args>" for every
// invocation and runs the real bmake.
func countingMake(t *testing.T) (prog, log string) {
	t.Helper()
	bmake := testenv.Program(t, "bmake")
	dir := t.TempDir()
	prog = filepath.Join(dir, "countmake")
	log = filepath.Join(dir, "calls.log")
	script := "#!/bin/sh\necho \"$PWD $*\" >> " + log + "\nexec " + bmake + " \"$@\"\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return prog, log
}

// calls returns the logged make invocations and resets the log.
func calls(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// scanned returns the locations (relative to tree) for which `make
// pbulk-index` ran, sorted; sub-makes of multi-version packages are not
// counted.
func scanned(tree string, calls []string) []string {
	var locs []string
	for _, c := range calls {
		if strings.HasSuffix(c, " pbulk-index") {
			dir := strings.TrimSuffix(c, " pbulk-index")
			locs = append(locs, strings.TrimPrefix(dir, tree+"/"))
		}
	}
	sort.Strings(locs)
	return locs
}

// pkgscan runs the command line as pkgscan would and returns stdout,
// stderr and the exit code.
func pkgscan(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	g := &cli.Globals{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr}
	code := cli.Run(context.Background(), "pkgscan", Description, &Command{}, args, g)
	return stdout.String(), stderr.String(), code
}

// sequentialScan is the reference: pbulk-scan's algorithm written out
// plainly, one bmake at a time, independent of the scanner's code.
func sequentialScan(t *testing.T, tree string) string {
	t.Helper()
	run := func(dir string, args ...string) string {
		cmd := exec.Command("bmake", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bmake %v in %s: %v", args, dir, err)
		}
		return string(out)
	}
	var out strings.Builder
	seen := map[string]bool{}
	for _, cat := range strings.Fields(run(tree, "show-subdir-var", "VARNAME=SUBDIR")) {
		for _, pkg := range strings.Fields(run(filepath.Join(tree, cat), "show-subdir-var", "VARNAME=SUBDIR")) {
			loc := cat + "/" + pkg
			var rec []string
			flush := func() {
				if len(rec) == 0 {
					return
				}
				name := strings.TrimPrefix(rec[0], "PKGNAME=")
				if !seen[name] {
					seen[name] = true
					out.WriteString(rec[0] + "\nPKG_LOCATION=" + loc + "\n")
					for _, l := range rec[1:] {
						out.WriteString(l + "\n")
					}
				}
				rec = nil
			}
			for _, l := range strings.Split(strings.TrimSuffix(run(filepath.Join(tree, loc), "pbulk-index"), "\n"), "\n") {
				if strings.HasPrefix(l, "PKGNAME=") {
					flush()
				}
				rec = append(rec, l)
			}
			flush()
		}
	}
	return out.String()
}

func TestFullScanOrderAnyJobs(t *testing.T) {
	tree := copyTree(t, "tree")
	want := sequentialScan(t, tree)
	if strings.Count(want, "PKGNAME=") != 10 {
		t.Fatalf("reference scan has %d records, the fixture yields 10:\n%s", strings.Count(want, "PKGNAME="), want)
	}
	for _, j := range []string{"1", "2", "8"} {
		out, stderr, code := pkgscan(t, "", "-C", tree, "-j", j)
		if code != 0 {
			t.Fatalf("-j %s: exit %d, stderr:\n%s", j, code, stderr)
		}
		if out != want {
			t.Errorf("-j %s: output differs from the sequential scan:\n%s\nwant:\n%s", j, out, want)
		}
		if !strings.Contains(stderr, "pkgscan: Duplicate package: alpha-1.0\n") {
			t.Errorf("-j %s: no duplicate warning in stderr:\n%s", j, stderr)
		}
	}
}

func TestScanRecords(t *testing.T) {
	tree := copyTree(t, "tree")
	out, _, code := pkgscan(t, "", "-C", tree, "-j", "2")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Multi-version: two records from lang/py-multi, default first.
	i312 := strings.Index(out, "PKGNAME=py312-multi-1.0\nPKG_LOCATION=lang/py-multi\n")
	i311 := strings.Index(out, "PKGNAME=py311-multi-1.0\nPKG_LOCATION=lang/py-multi\n")
	if i312 < 0 || i311 < 0 || i311 < i312 {
		t.Errorf("multi-version records missing or out of order:\n%s", out)
	}
	// Duplicate: www/dup's alpha-1.0 is dropped, its second record kept.
	if strings.Count(out, "PKGNAME=alpha-1.0\n") != 1 || !strings.Contains(out, "PKGNAME=alpha-1.0\nPKG_LOCATION=devel/alpha\n") {
		t.Errorf("alpha-1.0 should appear once, from devel/alpha:\n%s", out)
	}
	if !strings.Contains(out, "PKGNAME=dup-new-1.0\nPKG_LOCATION=www/dup\n") {
		t.Errorf("www/dup's second record is missing")
	}
	if strings.Contains(out, "\n\n") {
		t.Errorf("output has a blank line")
	}
}

func TestLimitedLists(t *testing.T) {
	tree := copyTree(t, "tree")
	full, _, _ := pkgscan(t, "", "-C", tree, "-j", "1")
	records := map[string]string{} // location → its records in the full scan
	for _, part := range splitRecords(full) {
		loc := part[strings.Index(part, "PKG_LOCATION=")+len("PKG_LOCATION="):]
		loc = loc[:strings.IndexByte(loc, '\n')]
		records[loc] += part
	}
	want := records["devel/gamma"] + records["lang/slow"] + records["www/site"]

	list := "# comment line\nwww/site   \n\nlang/slow # trailing comment\ndevel/gamma\nwww/site\n"
	listFile := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(listFile, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"arguments", "", []string{"www/site", "lang/slow", "devel/gamma", "www/site"}},
		{"file", "", []string{"-l", listFile}},
		{"stdin", list, []string{"-l", "-"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := pkgscan(t, c.stdin, append([]string{"-C", tree, "-j", "2"}, c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if out != want {
				t.Errorf("got:\n%s\nwant (sorted, de-duplicated):\n%s", out, want)
			}
		})
	}

	_, stderr, code := pkgscan(t, "", "-C", tree, "devel/alpha", "devel/nonexistent")
	if code != 1 || !strings.Contains(stderr, "pkgscan: Scan failed for devel/nonexistent\n  no such package directory (in "+tree+"/devel/nonexistent)\n") {
		t.Errorf("missing package directory: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = pkgscan(t, "", "-C", tree, "-M", "no-such-make-program")
	if code != 2 || !strings.Contains(stderr, "no-such-make-program") {
		t.Errorf("missing make: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = pkgscan(t, "", "-C", tree, "../etc")
	if code != 2 || !strings.Contains(stderr, "leaves the pkgsrc tree") {
		t.Errorf("location ../etc: exit %d, stderr %q; want 2 and a clear message", code, stderr)
	}
	_, stderr, code = pkgscan(t, "", "-C", tree, "-l", listFile, "www/site")
	if code != 2 {
		t.Errorf("list and arguments together: exit %d (%s), want 2", code, stderr)
	}
	_, stderr, code = pkgscan(t, "", "-C", tree, "-l", filepath.Join(tree, "nonexistent"))
	if code != 2 || !strings.Contains(stderr, "nonexistent") {
		t.Errorf("missing list: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = pkgscan(t, "", "-C", filepath.Join(tree, "nonexistent"))
	if code != 2 || !strings.Contains(stderr, "nonexistent") {
		t.Errorf("missing tree: exit %d, stderr %q", code, stderr)
	}
}

func splitRecords(s string) []string {
	var out []string
	for len(s) > 0 {
		end := strings.Index(s[1:], "\nPKGNAME=")
		if end < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:end+2])
		s = s[end+2:]
	}
	return out
}

func TestFailingLocations(t *testing.T) {
	tree := copyTree(t, "badtree")
	out, stderr, code := pkgscan(t, "", "-C", tree, "-j", "3")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	wantOut := []string{"PKGNAME=ok-1.0\nPKG_LOCATION=bad/ok\n", "PKGNAME=garbage-1.0\nPKG_LOCATION=bad/garbage\nPKG_SKIP_REASON=\nSCAN_DEPENDS=Makefile\n"}
	for _, w := range wantOut {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if n := strings.Count(out, "PKGNAME="); n != 3 {
		t.Errorf("output has %d records, want 3 (ok, garbage's first, noisy):\n%s", n, out)
	}
	wantErr := []string{
		"pkgscan: Scan failed for bad/fails\n",
		"exit status 1 (in " + tree + "/bad/fails)",
		"  | fails: this package cannot be scanned\n",
		"  | giving up\n",
		"pkgscan: Scan failed for bad/nul\n",
		"printed a NUL byte",
		"pkgscan: Scan failed for bad/empty\n",
		"printed nothing",
		"  | nothing to index here\n",
		"pkgscan: pbulk-index output not recognized for bad/garbage\n",
		"pkgscan: pbulk-index output not recognized for bad/unterminated\n",
		"pkgscan: Cannot extract subdirectories for broken\n",
		"this category is broken on purpose",
		"bad/noisy: WARNING: noisy has no LICENSE\n",
		"pkgscan: 4 of 7 locations failed to scan",
	}
	for _, w := range wantErr {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	// Reports come in job order whatever -j is.
	if strings.Index(stderr, "bad/fails") > strings.Index(stderr, "bad/nul") ||
		strings.Index(stderr, "bad/nul") > strings.Index(stderr, "bad/empty") {
		t.Errorf("failures not reported in job order:\n%s", stderr)
	}

	// A failing tree root is fatal: exit 2.
	if err := os.WriteFile(filepath.Join(tree, "Makefile"), []byte(".error \"no tree\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = pkgscan(t, "", "-C", tree)
	if code != 2 || !strings.Contains(stderr, "Cannot extract categories") {
		t.Errorf("broken root: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestOutputFileAtomic(t *testing.T) {
	tree := copyTree(t, "badtree")
	dir := t.TempDir()
	outFile := filepath.Join(dir, "pscan")
	if err := os.WriteFile(outFile, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Exit 2 (unreadable old scan) leaves the old output alone, with no
	// temporary file behind.
	bad := filepath.Join(dir, "bad-old-scan")
	if err := os.WriteFile(bad, []byte("not a scan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := pkgscan(t, "", "-C", tree, "-o", outFile, "--reuse", bad)
	if code != 2 || !strings.Contains(stderr, bad) {
		t.Errorf("corrupt --reuse file: exit %d, stderr %q", code, stderr)
	}
	if data, _ := os.ReadFile(outFile); string(data) != "old\n" {
		t.Errorf("output file changed on exit 2: %q", data)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries after a failed run, want 2 (no temporary left)", len(ents))
	}
	// Exit 1 (some locations failed) still writes the output, as pbulk does.
	stdout, _, code := pkgscan(t, "", "-C", tree, "-o", outFile)
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if data, _ := os.ReadFile(outFile); !strings.HasPrefix(string(data), "PKGNAME=ok-1.0\n") {
		t.Errorf("output file: %q", data)
	}
}

// TestStreaming proves records are written before the scan ends: the slow
// package waits (in make) for a gate file that the test creates only once
// the first records have arrived on stdout.
func TestStreaming(t *testing.T) {
	tree := copyTree(t, "tree")
	gate := filepath.Join(t.TempDir(), "gate")
	t.Setenv("SCAN_GATE", gate)
	w := &gateWriter{gate: gate}
	res, err := Scan(context.Background(), Config{Pkgsrc: tree, Make: "bmake", Jobs: 2}, w)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 {
		t.Fatalf("%d locations failed: the slow package timed out waiting for records to stream", res.Failed)
	}
	if !strings.HasPrefix(w.firstWrite, "PKGNAME=alpha-1.0\n") {
		t.Errorf("first write %q", w.firstWrite)
	}
}

type gateWriter struct {
	mu         sync.Mutex
	gate       string
	firstWrite string
	buf        bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.firstWrite == "" {
		g.firstWrite = string(p)
		if err := os.WriteFile(g.gate, nil, 0o644); err != nil {
			return 0, err
		}
	}
	return g.buf.Write(p)
}
