package pullworker

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
)

var fooScope = pull.ObjectScope{Package: "All/foo-1.0.tgz", LogDir: "bulklog/foo-1.0/", Fragment: "index/foo-1.0.pkginfo"}

func TestInScope(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{"All/foo-1.0.tgz", true},
		{"index/foo-1.0.pkginfo", true},
		{"bulklog/foo-1.0/build.log", true},
		{"bulklog/foo-1.0/wrkdir.tar.gz", true},
		{"bulklog/foo-1.0/", false},
		{"bulklog/foo-1.0/sub/x.log", false},
		{"bulklog/foo-1.0/../bar-1.0/build.log", false},
		{"bulklog/foo-1.0/./x", false},
		{"All/bar-1.0.tgz", false},
		{"All/foo-1.0.tgz.asc", false},
		{"index/bar-1.0.pkginfo", false},
		{"bulklog/bar-1.0/build.log", false},
		{"All/pkg_summary.gz", false},
		{"distfiles/foo-1.0.tar.gz", false},
		{"", false},
	} {
		if got := InScope(fooScope, c.name); got != c.want {
			t.Errorf("InScope(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

func put(t *testing.T, s store.Store, name, data string) error {
	t.Helper()
	return s.Put(context.Background(), name, strings.NewReader(data), int64(len(data)))
}

func read(t *testing.T, s store.Store, name string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func list(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var names []string
	if err := s.List(context.Background(), prefix, func(i store.Info) error {
		names = append(names, i.Name)
		return nil
	}); err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

// TestStaging: writes stay local and only in the lease's scope; reads
// fall through to the server's store; the server's objects are never
// deleted; Staged lists exactly what Upload sends.
func TestStaging(t *testing.T) {
	ctx := context.Background()
	remote := memstore.New("server")
	for _, n := range []string{"All/dep-1.0.tgz", "All/other-2.0.tgz", "bulklog/foo-1.0/old.log", "index/dep-1.0.pkginfo"} {
		if err := put(t, remote, n, "server "+n); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "lease")
	st, err := NewStaging(dir, remote, fooScope, "test lease")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"All/foo-1.0.tgz", true},
		{"index/foo-1.0.pkginfo", true},
		{"bulklog/foo-1.0/build.log", true},
		{"distfiles/foo-1.0.tar.gz", true},       // local only
		{"locks/distfiles/foo-1.0.tar.gz", true}, // local only
		{"All/other-2.0.tgz", false},
		{"All/pkg_summary.gz", false},
		{"bulklog/other-2.0/build.log", false},
		{"index/other-2.0.pkginfo", false},
	} {
		err := put(t, st, c.name, "staged "+c.name)
		switch {
		case c.ok && err != nil:
			t.Errorf("put %s: %v", c.name, err)
		case !c.ok && !errors.Is(err, ErrOutOfScope):
			t.Errorf("put %s: %v, want an error wrapping ErrOutOfScope", c.name, err)
		}
	}
	if got := read(t, st, "All/dep-1.0.tgz"); got != "server All/dep-1.0.tgz" {
		t.Errorf("dependency read %q", got)
	}
	if got := read(t, st, "All/foo-1.0.tgz"); got != "staged All/foo-1.0.tgz" {
		t.Errorf("staged read %q", got)
	}
	if got := read(t, remote, "All/other-2.0.tgz"); got != "server All/other-2.0.tgz" {
		t.Errorf("the server's object changed: %q", got)
	}
	if _, err := st.Stat(ctx, "All/missing-1.0.tgz"); !store.IsNotExist(err) {
		t.Errorf("stat of a missing package: %v", err)
	}
	if got, want := strings.Join(list(t, st, "All/"), " "), "All/dep-1.0.tgz All/foo-1.0.tgz All/other-2.0.tgz"; got != want {
		t.Errorf("list All/: %s, want %s", got, want)
	}
	// The lease's log directory is its own: the server's old logs are not
	// listed (so lib/build does not try to delete them).
	if got, want := strings.Join(list(t, st, "bulklog/foo-1.0/"), " "), "bulklog/foo-1.0/build.log"; got != want {
		t.Errorf("list of the log directory: %s, want %s", got, want)
	}
	if err := st.Delete(ctx, "All/dep-1.0.tgz"); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Stat(ctx, "All/dep-1.0.tgz"); err != nil {
		t.Errorf("a worker's delete reached the server's store: %v", err)
	}
	// Distfile locks are never asked of the server.
	put(t, remote, "locks/distfiles/bar.tar.gz", "someone's lock")
	if _, err := st.Stat(ctx, "locks/distfiles/bar.tar.gz"); !store.IsNotExist(err) {
		t.Errorf("a lock was read from the server: %v", err)
	}
	staged, err := st.Staged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range staged {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	if got, want := strings.Join(names, " "), "All/foo-1.0.tgz bulklog/foo-1.0/build.log index/foo-1.0.pkginfo"; got != want {
		t.Errorf("staged: %s, want %s", got, want)
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, data string
		mode       os.FileMode
		want       string // "" : an error
	}{
		{"ok", "pbt_abc123\n", 0o600, "pbt_abc123"},
		{"group-readable", "pbt_abc123\n", 0o640, ""},
		{"world-readable", "pbt_abc123\n", 0o644, ""},
		{"empty", "\n", 0o600, ""},
		{"two words", "pbt_abc 123\n", 0o600, ""},
		{"too long", strings.Repeat("x", 5000), 0o600, ""},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.WriteFile(p, []byte(c.data), c.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, c.mode)
		got, err := ReadToken(p)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s: token %q read, want an error", c.name, got)
			} else if strings.Contains(err.Error(), "abc") {
				t.Errorf("%s: the error shows the token: %v", c.name, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file was read")
	}
}

// FuzzReadToken: whatever the file holds, a token read from it is one
// non-empty word of at most 4 kB taken from the file.
func FuzzReadToken(f *testing.F) {
	for _, s := range []string{"pkgbulk-token-abc\n", "", "\n\n", "a b\n", "x\r\n", strings.Repeat("y", 4097)} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		p := filepath.Join(dir, "token")
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := ReadToken(p)
		if err != nil {
			return
		}
		if tok == "" || len(tok) > 4096 || strings.ContainsAny(tok, " \t\r\n") || !strings.Contains(data, tok) {
			t.Errorf("ReadToken(%q) = %q", data, tok)
		}
	})
}
