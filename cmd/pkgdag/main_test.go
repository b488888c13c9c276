package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// asMain makes the test binary act as pkgdag, so the tests below run the
// real process: its exit status, its stdin and stdout.
const asMain = "PKGDAG_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}

const scanText = `PKGNAME=app-1.0
PKG_LOCATION=x/app
ALL_DEPENDS= lib>=1:../../x/lib
PKG_SKIP_REASON=
PKG_FAIL_REASON=
PKGNAME=lib-1.2
PKG_LOCATION=x/lib
ALL_DEPENDS=
PKG_SKIP_REASON=
PKG_FAIL_REASON=
PKGNAME=odd-1.0
PKG_LOCATION=x/odd
ALL_DEPENDS=nothing-[0-9]*:../../x/nothing
PKG_SKIP_REASON=
PKG_FAIL_REASON=
`

func pkgdag(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMain+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func TestProcess(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bulk.db")

	code, out, stderr := pkgdag(t, scanText, "presolve")
	want := `PKGNAME=app-1.0
PKG_LOCATION=x/app
ALL_DEPENDS= lib>=1:../../x/lib
PKG_SKIP_REASON=
PKG_FAIL_REASON=
DEPENDS=lib-1.2
PKGNAME=lib-1.2
PKG_LOCATION=x/lib
ALL_DEPENDS=
PKG_SKIP_REASON=
PKG_FAIL_REASON=
PKGNAME=odd-1.0
PKG_LOCATION=x/odd
ALL_DEPENDS=nothing-[0-9]*:../../x/nothing
PKG_SKIP_REASON=
PKG_FAIL_REASON="could not resolve dependency "nothing-[0-9]*""
`
	if code != 0 || out != want || !strings.Contains(stderr, "pkgdag: No match found for dependency nothing-[0-9]* of package odd-1.0") {
		t.Errorf("presolve: exit %d\n%s\nwant\n%s\nstderr %s", code, out, want, stderr)
	}

	if code, _, stderr := pkgdag(t, scanText, "build", "-o", db, "--strict", "-"); code != 1 || !strings.Contains(stderr, "--strict") {
		t.Errorf("build --strict: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("build --strict wrote no database: %v", err)
	}
	code, out, _ = pkgdag(t, scanText, "build", "-q", "--json", "-o", db)
	if code != 0 || !strings.Contains(out, `"packages": 3`) {
		t.Errorf("build --json: exit %d, %s", code, out)
	}

	bad := filepath.Join(dir, "bad.scan")
	os.WriteFile(bad, []byte(scanText+"no equals sign\n"), 0o644)
	if code, _, stderr := pkgdag(t, "", "build", "-o", db, bad); code != 2 || !strings.Contains(stderr, bad+":16: line without '='") {
		t.Errorf("bad input: exit %d, %s", code, stderr)
	}
	if code, _, _ := pkgdag(t, "", "build", "--no-such-flag"); code != 2 {
		t.Errorf("bad usage: exit %d", code)
	}
	if code, out, _ := pkgdag(t, "", "--help"); code != 0 || !strings.Contains(out, "Exit status") {
		t.Errorf("--help: exit %d", code)
	}
}
