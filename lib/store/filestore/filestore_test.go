package filestore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := filestore.New(filepath.Join(t.TempDir(), "store"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The directory is a plain pkgsrc PACKAGES tree: objects are files at
// their names, readable by others, and temporary files are invisible.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "All/zlib-1.3.tgz", strings.NewReader("pkg"), 3); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "All", "zlib-1.3.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	// A crash mid-Put leaves a temp file; List must not report it.
	if err := os.WriteFile(filepath.Join(dir, "All", store.TempPrefix+"123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := s.List(ctx, "", func(fi store.Info) error { names = append(names, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "All/zlib-1.3.tgz" {
		t.Errorf("List = %q", names)
	}
	if got, want := s.String(), "file://"+filepath.ToSlash(dir); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// go test -run '^$' -bench . ./lib/store/...
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := filestore.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

// pkgsrc's category directories are symlinks into All/: they are objects
// for List as for Get and Stat; dangling links are not.
func TestCategorySymlinks(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "All/zlib-1.3.tgz", strings.NewReader("pkg"), 3); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "devel"), 0o755)
	if err := os.Symlink("../All/zlib-1.3.tgz", filepath.Join(dir, "devel", "zlib-1.3.tgz")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("../All/gone-1.0.tgz", filepath.Join(dir, "devel", "gone-1.0.tgz"))
	got := map[string]int64{}
	if err := s.List(ctx, "", func(fi store.Info) error { got[fi.Name] = fi.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["devel/zlib-1.3.tgz"] != 3 || got["All/zlib-1.3.tgz"] != 3 {
		t.Errorf("List = %v", got)
	}
	if fi, err := s.Stat(ctx, "devel/zlib-1.3.tgz"); err != nil || fi.Size != 3 {
		t.Errorf("Stat of the symlink: %+v, %v", fi, err)
	}
	if _, err := s.Stat(ctx, "devel/gone-1.0.tgz"); !store.IsNotExist(err) {
		t.Errorf("Stat of a dangling symlink: %v", err)
	}
}
