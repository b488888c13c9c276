package indexcli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMergeCheckStore: --check-store opens the store and lists All/, and
// publishes nothing; an unknown scheme or an unreachable server is exit 2
// with the reason on one line.
func TestMergeCheckStore(t *testing.T) {
	dir := t.TempDir()
	writePkgs(t, dir, "a-1")
	code, out, errs := run(t, "merge", "--check-store", "--store", "file://"+dir)
	if code != 0 || out != "" || errs != "" {
		t.Fatalf("usable store: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "All", "pkg_summary.gz")); err == nil {
		t.Errorf("--check-store published a pkg_summary")
	}
	for _, c := range []struct{ url, want string }{
		{"ftp://host/dir", `unknown scheme "ftp"`},
		{"mem://x", `unknown scheme "mem"`},
		{"s3://bucket/p?endpoint=http://127.0.0.1:1", "connection refused"},
	} {
		code, out, errs := run(t, "merge", "--check-store", "--store", c.url)
		if code != 2 || out != "" || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("--store %s: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", c.url, code, out, errs, c.want)
		}
	}
}
