package indexcli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
	"github.com/pkgbulk/pkgbulk/lib/summary"
	"github.com/pkgbulk/pkgbulk/lib/summary/merge"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code := cli.Run(context.Background(), "pkgindex", Description, &Command{}, args, g)
	return code, out.String(), errb.String()
}

func writePkgs(t *testing.T, dir string, names ...string) []string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "All"), 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i, n := range names {
		data, err := pkgtest.Package(map[string][]byte{
			"+CONTENTS":   []byte("@name " + n + "\n@pkgdep dep>=1\n"),
			"+COMMENT":    []byte("Comment of " + n + "\n"),
			"+DESC":       []byte("Line 1\n\nLine 3\n"),
			"+BUILD_INFO": []byte("OPSYS=Linux\nPKGPATH=misc/" + n + "\n"),
		}, pkgfile.Gzip, 1000*(i+1), uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "All", n+".tgz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestFragment(t *testing.T) {
	dir := t.TempDir()
	paths := writePkgs(t, dir, "a-1", "b-2")
	code, out, errs := run(t, append([]string{"fragment"}, paths...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var want bytes.Buffer
	for _, p := range paths {
		e, err := summary.EntryFromFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want.Write(e)
	}
	if out != want.String() {
		t.Errorf("got:\n%s\nwant:\n%s", out, want.String())
	}
	if !strings.Contains(out, "PKGNAME=a-1\nDEPENDS=dep>=1\nCOMMENT=Comment of a-1\nOPSYS=Linux\nPKGPATH=misc/a-1\nFILE_NAME=a-1.tgz\n") {
		t.Errorf("unexpected entry layout:\n%s", out)
	}

	code, out, _ = run(t, "fragment", "--cksum", paths[0])
	if code != 0 || !strings.Contains(out, "\nFILE_CKSUM=sha256 ") {
		t.Errorf("--cksum: exit %d\n%s", code, out)
	}

	bad := filepath.Join(dir, "bad.tgz")
	os.WriteFile(bad, []byte("junk"), 0o644)
	code, out, errs = run(t, "fragment", paths[0], bad)
	if code != 1 || !strings.Contains(errs, bad) || !strings.Contains(out, "PKGNAME=a-1") {
		t.Errorf("bad file: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := run(t, "fragment"); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if code, out, _ := run(t, "--help"); code != 0 || !strings.Contains(out, "Exit status") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func TestMergeCommand(t *testing.T) {
	dir := t.TempDir()
	writePkgs(t, dir, "a-1", "b-2", "c-3")
	code, out, errs := run(t, "merge", "--store", "file://"+dir, "--json", "--sha512", "--formats", "gz,zst,plain")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res merge.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if res.Packages != 3 || res.Computed != 3 || strings.Join(res.Published, " ") != "All/pkg_summary.gz All/pkg_summary.zst All/pkg_summary SHA512.bz2" {
		t.Errorf("result %+v", res)
	}
	plain, err := os.ReadFile(filepath.Join(dir, "All", "pkg_summary"))
	if err != nil || !bytes.HasPrefix(plain, []byte("PKGNAME=a-1\n")) {
		t.Errorf("All/pkg_summary: %v %q", err, plain)
	}

	code, out, _ = run(t, "merge", "--store", dir, "--stdout")
	if code != 0 || out != string(plain) {
		t.Errorf("--stdout: exit %d, output differs from All/pkg_summary", code)
	}

	success := filepath.Join(dir, "success")
	os.WriteFile(success, []byte("a-1\nnope-1\n"), 0o644)
	code, _, errs = run(t, "merge", "--store", dir, "--success", success, "--stdout")
	if code != 1 || !strings.Contains(errs, "nope-1") {
		t.Errorf("success list with a missing package: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := run(t, "merge", "--store", "bogus://x"); code != 2 {
		t.Errorf("bad store URL: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "merge", "--store", dir, "--formats", "rar"); code != 2 {
		t.Errorf("bad format: exit %d, want 2", code)
	}
}

func TestFragmentStdin(t *testing.T) {
	paths := writePkgs(t, t.TempDir(), "s-1")
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	g := &cli.Globals{Stdin: bytes.NewReader(data), Stdout: &out, Stderr: &errb}
	if code := cli.Run(context.Background(), "pkgindex", Description, &Command{}, []string{"fragment", "-"}, g); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	file, err := summary.EntryFromFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	// Same entry, without the FILE_ lines.
	want := strings.Replace(string(file), "FILE_NAME=s-1.tgz\nFILE_SIZE="+strconv.Itoa(len(data))+"\n", "", 1)
	if out.String() != want {
		t.Errorf("stdin entry:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestMergeSFTPFlags drives "merge --store sftp://..." with the ssh flags
// against a real sshd on loopback.
func TestMergeSFTPFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd")
	}
	srv := storetest.StartSSHD(t)
	repo := filepath.Join(srv.Dir, "repo")
	writePkgs(t, repo, "a-1", "b-2")
	code, out, errs := run(t, "merge", "--store", srv.URL("repo"), "--ssh-identity", srv.IdentityFile,
		"--known-hosts", srv.KnownHosts, "--json", "--formats", "gz")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res merge.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Packages != 2 {
		t.Fatalf("result %q: %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(repo, "All", "pkg_summary.gz")); err != nil {
		t.Error(err)
	}
}
