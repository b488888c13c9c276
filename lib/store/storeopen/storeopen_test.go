package storeopen_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func TestSuiteFileURL(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := storeopen.Open(context.Background(), "file://"+t.TempDir(), storeopen.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSuiteMem(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		// A registry per subtest: each wants an empty store.
		s, err := storeopen.Open(context.Background(), "mem://suite", storeopen.Options{Mem: new(memstore.Registry)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenFileForms(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a, err := storeopen.Open(ctx, "file://"+dir, storeopen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "All/x-1.tgz", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{dir, dir + "/", "file://localhost" + dir} {
		b, err := storeopen.Open(ctx, u, storeopen.Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, err := b.Stat(ctx, "All/x-1.tgz"); err != nil {
			t.Errorf("Open(%q) is another store: %v", u, err)
		}
	}
	// A relative plain path is relative to the working directory.
	t.Chdir(dir)
	c, err := storeopen.Open(ctx, "sub", storeopen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "file://" + filepath.Join(dir, "sub"); c.String() != want {
		t.Errorf("String() = %q, want %q", c.String(), want)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "empty URL"},
		{"file://host/dir", `not host "host"`},
		{"file:rel", "absolute path"},
		{"ftp://user:hunter2@host/dir", `unknown scheme "ftp"`},
		// mem:// is for tests (Options.Mem); users never get it.
		{"mem://x", `unknown scheme "mem" (want file, sftp or s3)`},
	} {
		_, err := storeopen.Open(context.Background(), c.url, storeopen.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) error = %v, want one containing %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error leaks the password: %v", c.url, err)
		}
	}
}

func TestMemRegistry(t *testing.T) {
	ctx := context.Background()
	opts := storeopen.Options{Mem: new(memstore.Registry)}
	a, _ := storeopen.Open(ctx, "mem://shared", opts)
	b, _ := storeopen.Open(ctx, "mem://shared", opts)
	if err := a.Put(ctx, "index/x.pkginfo", strings.NewReader("PKGNAME=x\n"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "index/x.pkginfo"); err != nil {
		t.Errorf("second Open of the same mem:// name does not share: %v", err)
	}
	other, _ := storeopen.Open(ctx, "mem://shared", storeopen.Options{Mem: new(memstore.Registry)})
	if _, err := other.Stat(ctx, "index/x.pkginfo"); !store.IsNotExist(err) {
		t.Errorf("another registry's mem:// store must be another store: %v", err)
	}
}
