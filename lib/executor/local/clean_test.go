package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

// TestCleanJobDirs lays out a work root with the job directories of stale
// jobs and everything that looks like one but must stay, and checks what
// cleanJobDirs removes, keeps (and says why) and leaves alone.
func TestCleanJobDirs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc to tell which directories are in use")
	}
	root := t.TempDir()
	outside := t.TempDir()
	precious := filepath.Join(outside, "precious")
	if err := os.WriteFile(precious, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-time.Minute)
	jobs := []executor.StaleJob{
		{PkgName: "foo-1.0", Started: started},
		{PkgName: "bar-2.0", Started: started},
		{PkgName: "baz-1.0", Started: started},
		{PkgName: "busy-1.0", Started: started},
	}
	mkdir := func(name string) string {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(p, "work"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(p, "work", "x.o"), []byte("x"), 0o644)
		return p
	}
	tests := []struct {
		name    string
		setup   func() string // makes the entry, returns its path
		removed bool
		kept    string // part of the reason it was kept; "" when not reported
	}{
		{name: "job directory of a stale job", setup: func() string { return mkdir("foo-1.0.123456") }, removed: true},
		{name: "with a symlink out of the work root", removed: true, setup: func() string {
			p := mkdir("baz-1.0.42")
			if err := os.Symlink(outside, filepath.Join(p, "work", "out")); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{name: "another package's name is a prefix", setup: func() string { return mkdir("foo-1.0.1.777") }},
		{name: "package not stale", setup: func() string { return mkdir("other-1.0.555") }},
		{name: "older than the job", setup: func() string {
			p := mkdir("foo-1.0.999")
			old := started.Add(-time.Hour)
			os.Chtimes(p, old, old)
			return p
		}},
		{name: "symlink named like a job directory", kept: "not a directory", setup: func() string {
			p := filepath.Join(root, "bar-2.0.111")
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{name: "in use by a live process", kept: "in use", setup: func() string {
			p := mkdir("busy-1.0.222")
			cmd := exec.Command("sleep", "60")
			cmd.Dir = p
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			return p
		}},
		{name: "no suffix", setup: func() string { return mkdir("bar-2.0.") }},
	}
	paths := make([]string, len(tests))
	for i, tt := range tests {
		paths[i] = tt.setup()
	}
	found, err := cleanJobDirs(context.Background(), root, jobs)
	if err != nil {
		t.Fatal(err)
	}
	reported := map[string]executor.Cleaned{}
	for _, f := range found {
		reported[f.Path] = f
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := paths[i]
			_, err := os.Lstat(p)
			gone := os.IsNotExist(err)
			if gone != tt.removed {
				t.Errorf("%s: removed %v, want %v", p, gone, tt.removed)
			}
			f, ok := reported[p]
			switch {
			case tt.removed && (!ok || f.Err != nil):
				t.Errorf("%s: removal reported as %+v", p, f)
			case tt.kept != "" && (!ok || f.Err == nil || !strings.Contains(f.Err.Error(), tt.kept)):
				t.Errorf("%s: reported as %+v, want kept: %s", p, f, tt.kept)
			case !tt.removed && tt.kept == "" && ok:
				t.Errorf("%s: not a stale job's directory, but reported: %+v", p, f)
			}
		})
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me" {
		t.Errorf("a file outside the work root was touched: %v", err)
	}
	// Nothing but the removed directories went away.
	entries, _ := os.ReadDir(root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != len(tests)-2 {
		t.Errorf("work root holds %v", names)
	}
}

func TestUsageUnder(t *testing.T) {
	u := &usage{
		paths:  map[string]string{"/w/a-1.0.1/work/x.o": "pid 7 (cc)"},
		mounts: []string{"/", "/w/b-1.0.2/pkgsrc"},
	}
	tests := []struct {
		dir  string
		want string
	}{
		{"/w/a-1.0.1", "pid 7 (cc)"},
		{"/w/a-1.0", ""},
		{"/w/b-1.0.2", "mount point /w/b-1.0.2/pkgsrc"},
		{"/w/b-1.0.22", ""},
	}
	for _, tt := range tests {
		got := u.under(tt.dir)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("under(%s) = %q, want %q", tt.dir, got, tt.want)
		}
	}
	if got := unescapeMount(`/mnt/a\040b`); got != "/mnt/a b" {
		t.Errorf("unescapeMount: %q", got)
	}
}
