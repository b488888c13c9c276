package db

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// childEnv makes the test binary read a database and exit (see TestMain):
// the value is the database's path. readAsOther runs it as another user.
const childEnv = "PKGBULK_DB_TEST_READ"

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		os.Exit(readChild(p, os.Getenv(childEnv+"_RW") == "1"))
	}
	os.Exit(m.Run())
}

// readChild opens the database (read-only, or with Open when rw) and
// prints the meta value of key "k".
func readChild(path string, rw bool) int {
	ctx := context.Background()
	open := OpenReadOnly
	if rw {
		open = Open
	}
	d, err := open(ctx, path)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer d.Close()
	var v string
	if err := d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'k'`).Scan(&v); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("value:", v)
	return 0
}

// readAsOther reads the database at path from a process that cannot write
// it or its directory: as root, a child running as nobody (root ignores
// file modes); else this user, with the directory and file made read-only.
// It returns what readChild printed.
func readAsOther(t *testing.T, path string, rw bool) string {
	t.Helper()
	env := append(os.Environ(), childEnv+"="+path)
	if rw {
		env = append(env, childEnv+"_RW=1")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		// nobody must reach the binary: copy it where everyone can.
		dir, err := os.MkdirTemp("", "dbtest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		bin := filepath.Join(dir, "db.test")
		copyFile(t, self, bin, 0o755)
		self = bin
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		dir := filepath.Dir(path)
		os.Chmod(path, 0o444)
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	cmd := exec.Command(self)
	cmd.Env = env
	cmd.SysProcAttr = attr
	cmd.Dir = "/"
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// newDB makes a database in a directory everyone may read but only its
// owner write, with meta k = v.
func newDB(t *testing.T, v string) string {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "dbtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755); os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "bulk.db")
	d, err := Create(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('k', ?)`, v); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	return path
}

// TestOpenReadOnly reads databases that the reader cannot write: as
// pkgdag wrote it, after pkgsched ran on it (WAL mode), and while a
// pkgsched writes it (its commits still in the -wal file). Open fails
// there; OpenReadOnly must not, and must see every commit.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// prepare runs as the owner before the read; it returns a
		// cleanup run after it.
		prepare func(t *testing.T, path string) func()
		want    string
		// rootOnly: the case needs a writer and a reader that are
		// different users.
		rootOnly bool
	}{
		{name: "as pkgdag wrote it", want: "v1"},
		{name: "after a pkgsched run", want: "v2", prepare: func(t *testing.T, path string) func() {
			d, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.ExecContext(ctx, `UPDATE meta SET value = 'v2' WHERE key = 'k'`); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + "-wal"); err == nil {
				t.Fatalf("a closed database left its -wal file")
			}
			return func() {}
		}},
		{name: "during a pkgsched run", want: "v3", rootOnly: true, prepare: func(t *testing.T, path string) func() {
			d, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.ExecContext(ctx, `UPDATE meta SET value = 'v3' WHERE key = 'k'`); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
				t.Fatalf("the commit is not in the -wal file: %v", err)
			}
			return func() { d.Close() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root: the writer and the reader must be different users")
			}
			path := newDB(t, "v1")
			if tt.prepare != nil {
				defer tt.prepare(t, path)()
			}
			if got := readAsOther(t, path, false); got != "value: "+tt.want {
				t.Errorf("OpenReadOnly: %q, want value %s", got, tt.want)
			}
			// Open needs to write: the reader really cannot.
			if tt.want != "v3" {
				if got := readAsOther(t, path, true); !strings.HasPrefix(got, "error:") {
					t.Errorf("Open of a read-only database: %q, want an error", got)
				}
			}
		})
	}
}

func TestOpenReadOnlyChecks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := OpenReadOnly(ctx, filepath.Join(dir, "missing.db")); err == nil || !strings.Contains(err.Error(), "missing.db") {
		t.Errorf("missing file: %v", err)
	}
	other := filepath.Join(dir, "other.db")
	d, err := Create(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	d.Exec(`PRAGMA user_version = 99`)
	d.Close()
	if _, err := OpenReadOnly(ctx, other); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("other schema: %v", err)
	}
	// A path with characters that mean something in a URI.
	odd := filepath.Join(dir, "a?b#c%d.db")
	d, err = Create(ctx, odd)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, open := range []func(context.Context, string) (*sql.DB, error){Open, OpenReadOnly} {
		d, err := open(ctx, odd)
		if err != nil {
			t.Errorf("open %s: %v", odd, err)
			continue
		}
		d.Close()
	}
	// Before the escaping, SQLite took "a" for the path.
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Errorf("opening %s created %s", odd, filepath.Join(dir, "a"))
	}
}
