package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// RealPkgsrcTarball is the real pkgsrc tree of ../shared/pkgsrc (pkgsrc of
// 2018-08-31, trimmed to 125 packages; its README says what builds).
const RealPkgsrcTarball = "pkgsrc-2018-08-31-subset.tar.zst"

// RealPkgsrc returns the path of the real pkgsrc tarball, or skips the test
// (fails it when "pkgsrc" is required) when ../shared/pkgsrc is missing.
func RealPkgsrc(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PKGBULK_SHARED_PKGSRC")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(RepoRoot(t)), "shared", "pkgsrc")
	}
	p := filepath.Join(dir, RealPkgsrcTarball)
	if _, err := os.Stat(p); err != nil {
		Skip(t, "pkgsrc", "no real pkgsrc tree at "+p+" (third-party test data; CI has it)")
	}
	return p
}

// UnpackPkgsrc unpacks the tarball into a new temporary directory and
// returns the tree's root (dir/pkgsrc). It needs tar with zstd.
func UnpackPkgsrc(t testing.TB, tarball string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("tar", "--zstd", "-xf", tarball, "-C", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("unpack %s: %v\n%s", tarball, err, out)
	}
	return filepath.Join(dir, "pkgsrc")
}

// CacheDir is where test set-ups keep what is slow to make (bootstrap kits),
// outside the repository: $PKGBULK_TEST_CACHE, else the user's cache
// directory's pkgbulk-test (the temporary directory's without a HOME).
func CacheDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("PKGBULK_TEST_CACHE")
	if d == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			// No HOME (a bare CI environment): the temporary directory
			// still keeps the kit for the rest of the run.
			c = os.TempDir()
		}
		d = filepath.Join(c, "pkgbulk-test")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// Cached returns the file name in CacheDir keyed by the SHA-256 of the
// input file, making it with make(path) when it is missing. Concurrent
// test binaries wait for each other (a lock file beside it); make writes
// to the path it is given, which is renamed into place when it succeeds.
func Cached(t testing.TB, input, name string, make func(path string) error) string {
	t.Helper()
	f, err := os.Open(input)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := CacheDir(t)
	path := filepath.Join(dir, fmt.Sprintf("%s-%s", hex.EncodeToString(h.Sum(nil))[:16], name))
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".new"
	os.Remove(tmp)
	if err := make(tmp); err != nil {
		os.Remove(tmp)
		t.Fatalf("make %s: %v", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}
