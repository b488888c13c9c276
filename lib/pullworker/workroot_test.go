package pullworker

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestCleanLeftovers: what a killed worker left (its lease directories
// and the job directories of those leases' packages) goes; everything
// else in the work root stays.
func TestCleanLeftovers(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("leases/L1/store/All")
	os.WriteFile(filepath.Join(root, "leases/L1", pkgnameFile), []byte("foo-1.0\n"), 0o600)
	mk("leases/L2") // no package name: only the lease directory goes
	for _, d := range []string{"foo-1.0.abc123", "foo-1.0.1.def456", "bar-2.0.xyz", ".kits/k1", "foo-1.0."} {
		mk(d)
	}
	os.Symlink(filepath.Join(root, "bar-2.0.xyz"), filepath.Join(root, "foo-1.0.link"))
	os.WriteFile(filepath.Join(root, "foo-1.0.file"), nil, 0o644)

	removed, err := cleanLeftovers(root)
	if err != nil {
		t.Fatal(err)
	}
	for i := range removed {
		removed[i] = strings.TrimPrefix(removed[i], root+"/")
	}
	sort.Strings(removed)
	if got, want := strings.Join(removed, " "), "foo-1.0.abc123 leases/L1 leases/L2"; got != want {
		t.Errorf("removed %s, want %s", got, want)
	}
	for _, keep := range []string{"foo-1.0.1.def456", "bar-2.0.xyz", ".kits/k1", "foo-1.0.", "foo-1.0.link", "foo-1.0.file"} {
		if _, err := os.Lstat(filepath.Join(root, keep)); err != nil {
			t.Errorf("%s was removed", keep)
		}
	}
	if again, err := cleanLeftovers(root); err != nil || len(again) != 0 {
		t.Errorf("a second clean removed %v (%v)", again, err)
	}
}

// TestWorkRootLock: one worker per work root.
func TestWorkRootLock(t *testing.T) {
	root := filepath.Join(t.TempDir(), "work")
	f, err := lockWorkRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := lockWorkRoot(root); err == nil || !strings.Contains(err.Error(), "another pkgrun worker") {
		t.Errorf("a second lock: %v", err)
		if g != nil {
			g.Close()
		}
	}
	f.Close()
	g, err := lockWorkRoot(root)
	if err != nil {
		t.Errorf("lock after the first was released: %v", err)
	} else {
		g.Close()
	}
}
