package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree makes a prefix with links that point out of it, and an empty
// canary directory beside it.
func tree(t *testing.T) (*Dir, string, string) {
	t.Helper()
	base := t.TempDir()
	prefix, canary := filepath.Join(base, "prefix"), filepath.Join(base, "canary")
	for _, d := range []string{prefix, canary, filepath.Join(prefix, "real")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs":     canary,              // absolute link out
		"rel":     "../canary",         // relative link out
		"deep":    "real/../../canary", // climbs through a real directory
		"inside":  "real",              // stays inside: allowed
		"self":    ".",
		"outfile": filepath.Join(canary, "f"),
	}
	for name, to := range links {
		if err := os.Symlink(to, filepath.Join(prefix, name)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, prefix, canary
}

func TestEscapes(t *testing.T) {
	cases := []struct {
		name string
		op   func(d *Dir) error
		ok   bool
	}{
		{"file through absolute link", func(d *Dir) error { return d.WriteFile("abs/f", strings.NewReader("x"), 0o644) }, false},
		{"file through relative link", func(d *Dir) error { return d.WriteFile("rel/f", strings.NewReader("x"), 0o644) }, false},
		{"file through a climbing link", func(d *Dir) error { return d.WriteFile("deep/f", strings.NewReader("x"), 0o644) }, false},
		{"directory through a link", func(d *Dir) error { return d.MkdirAll("abs/sub/dir", 0o755) }, false},
		{"symlink through a link", func(d *Dir) error { return d.Symlink("x", "rel/l") }, false},
		{"hard link through a link", func(d *Dir) error { return d.Link("real/../inside/../real", "abs/h") }, false},
		{"hard link to a file outside", func(d *Dir) error { return d.Link("rel/secret", "h") }, false},
		{"dot-dot path", func(d *Dir) error { return d.WriteFile("../canary/f", strings.NewReader("x"), 0o644) }, false},
		{"absolute path", func(d *Dir) error {
			return d.WriteFile(filepath.Join(os.TempDir(), "f"), strings.NewReader("x"), 0o644)
		}, false},
		{"remove through a link", func(d *Dir) error { return d.Remove("abs/keep") }, false},
		{"read through a link", func(d *Dir) error { _, err := d.ReadFile("rel/keep", 100); return err }, false},
		{"write over a link to a file outside", func(d *Dir) error { return d.WriteFile("outfile", strings.NewReader("x"), 0o644) }, true},
		{"file through a link that stays inside", func(d *Dir) error { return d.WriteFile("inside/f", strings.NewReader("x"), 0o644) }, true},
		{"file through dot", func(d *Dir) error { return d.WriteFile("self/g", strings.NewReader("x"), 0o644) }, true},
		{"nested directories", func(d *Dir) error { return d.MkdirAll("a/b/c", 0o755) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, prefix, canary := tree(t)
			os.WriteFile(filepath.Join(canary, "keep"), []byte("k"), 0o644)
			os.WriteFile(filepath.Join(canary, "secret"), []byte("s"), 0o600)
			err := c.op(d)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok {
				if err == nil {
					t.Fatal("allowed")
				}
				if !errors.Is(err, ErrOutside) && !errors.Is(err, os.ErrNotExist) {
					t.Logf("refused with %v", err)
				}
			}
			ents, _ := os.ReadDir(canary)
			if len(ents) != 2 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("the canary outside %s changed: %v", prefix, names)
			}
			if b, _ := os.ReadFile(filepath.Join(canary, "keep")); string(b) != "k" {
				t.Errorf("a file outside was changed: %q", b)
			}
		})
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", "a/../../b", "a/./b", "", ".", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		c, err := clean(rel)
		if err != nil {
			return
		}
		if strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") {
			t.Fatalf("clean(%q) = %q leads out", rel, c)
		}
	})
}
