// Package testenv finds what tests need outside the repository (the shared
// third-party data beside a checkout, programs such as bmake or sshd) and
// decides whether a missing piece skips the test or fails it.
//
// A user's fresh clone has no ../shared and may lack sshd: those tests skip
// with a message. CI sets PKGBULK_TEST_REQUIRE (a comma-separated list of
// names, or "all") so that a required suite that would skip fails instead.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Required reports whether PKGBULK_TEST_REQUIRE names what (or says "all").
func Required(what string) bool {
	for _, w := range strings.Split(os.Getenv("PKGBULK_TEST_REQUIRE"), ",") {
		w = strings.TrimSpace(w)
		if w == "all" || w == what {
			return true
		}
	}
	return false
}

// Skip skips t with the reason, or fails it when what is required.
func Skip(t testing.TB, what, reason string) {
	t.Helper()
	if Required(what) {
		t.Fatalf("%s is required here (PKGBULK_TEST_REQUIRE) but unavailable: %s", what, reason)
	}
	t.Skipf("skipping: %s", reason)
}

// RepoRoot returns the directory holding go.mod, searching upwards from the
// test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// SharedDir returns the shared data directory: $PKGBULK_SHARED_DATA, else
// ../shared/data beside the repository. It returns "" when neither exists.
func SharedDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PKGBULK_SHARED_DATA"); d != "" {
		return d
	}
	d := filepath.Join(filepath.Dir(RepoRoot(t)), "shared", "data")
	if _, err := os.Stat(d); err != nil {
		return ""
	}
	return d
}

// SharedData returns the path of rel inside the shared data directory, or
// skips the test (fails it when "shared" is required) when it is missing.
func SharedData(t testing.TB, rel string) string {
	t.Helper()
	d := SharedDir(t)
	if d == "" {
		Skip(t, "shared", "no ../shared/data beside this checkout (third-party test data; CI has it)")
	}
	p := filepath.Join(d, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		Skip(t, "shared", "shared data file missing: "+p)
	}
	return p
}

// Program returns the path of a program on PATH, or skips (fails when
// required under the given name) when it is not installed.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, name, name+" is not installed (scripts/setup.sh --test installs it)")
	}
	return p
}
