package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A failing writer leaves the old file and no temporary file.
	boom := errors.New("boom")
	err := WriteFile(p, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want it to wrap the writer's error", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("after a failed write the file holds %q, want the old content", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	// A successful write replaces it whole.
	if err := WriteFile(p, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("file holds %q, want %q", b, "new")
	}
	fi, _ := os.Stat(p)
	if want := os.FileMode(0o666 &^ umask()); fi.Mode().Perm() != want {
		t.Errorf("mode %v, want %v (0666 less the umask, as pbulk creates its files)", fi.Mode().Perm(), want)
	}
}

func TestAbortAfterCommit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "data")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // must not remove the committed file
	if b, err := os.ReadFile(p); err != nil || string(b) != "data" {
		t.Errorf("after Commit and Abort: %q, %v", b, err)
	}
	if err := f.Commit(); err == nil {
		t.Error("a second Commit succeeded")
	}
}
