package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// ReadFileInfo is merge's fast path for small objects: the same bytes as
// Get, the same errors, and no hang on a FIFO in place of an object.
func TestReadFileInfo(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	os.MkdirAll(filepath.Join(dir, "index", "sub"), 0o755)
	big := storetest.Random(t, 1<<20+3)
	for name, data := range map[string][]byte{"index/empty": nil, "index/a.pkginfo": []byte("PKGNAME=a-1\n\n"), "index/big": big} {
		if err := s.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		// The bytes of the object, described as Stat does.
		got, info, err := s.ReadFileInfo(ctx, name)
		want, serr := s.Stat(ctx, name)
		if err != nil || serr != nil || !bytes.Equal(got, data) || info.Name != want.Name || info.Size != want.Size || !info.ModTime.Equal(want.ModTime) {
			t.Errorf("ReadFileInfo(%s) = %d bytes, %+v, %v; Stat: %+v, %v", name, len(got), info, err, want, serr)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "index", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index/missing", "index/sub", "index/fifo"} {
		if _, _, err := s.ReadFileInfo(ctx, name); !store.IsNotExist(err) {
			t.Errorf("ReadFileInfo(%s): %v, want a not-exist error", name, err)
		}
	}
	if _, _, err := s.ReadFileInfo(ctx, "../x"); err == nil || store.IsNotExist(err) {
		t.Errorf("ReadFileInfo(../x): %v, want an invalid-name error", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.ReadFileInfo(cancelled, "index/a.pkginfo"); err != context.Canceled {
		t.Errorf("ReadFileInfo after cancel: %v", err)
	}
}

// Directories with many entries are lstat'ed on several goroutines; the
// listing must still be complete and exact, nested directories included.
func TestListLargeDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, sub := range []string{"All", "All/nested", "index"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	for i := range 2000 {
		name := fmt.Sprintf("All/p%d-1.0.tgz", i)
		if i%100 == 0 {
			name = fmt.Sprintf("All/nested/n%d.tgz", i)
		}
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, i), 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = int64(i)
	}
	os.WriteFile(filepath.Join(dir, "index", "x.pkginfo"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "All", store.TempPrefix+"1"), nil, 0o644)
	got := map[string]int64{}
	if err := s.List(context.Background(), "All/", func(fi store.Info) error {
		if _, dup := got[fi.Name]; dup {
			t.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("List(All/) gave %d objects, want %d", len(got), len(want))
	}
	stop := errors.New("enough")
	n := 0
	err = s.List(context.Background(), "All/p", func(store.Info) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if err != stop || n != 10 {
		t.Errorf("List stopped by fn: %v after %d calls", err, n)
	}
}
