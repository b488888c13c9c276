package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestInstallerEscapes installs hostile packages: each tries to make the
// installer write, link or remove something outside the prefix through a
// symbolic link it installed first, a ".." path or an unchecked @pkgdir.
// Every one must be refused, and a canary directory beside the prefix (the
// target of every link) must stay empty.
func TestInstallerEscapes(t *testing.T) {
	cases := []struct {
		name     string
		contents string
		members  []member
	}{
		{"file through an absolute link", "lnk\nlnk/file\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "CANARY"},
			{name: "lnk/file", body: "owned\n"},
		}},
		{"file through a relative link", "lnk\nlnk/file\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "../canary"},
			{name: "lnk/file", body: "owned\n"},
		}},
		{"@cwd through a link", "lnk\n@cwd /usr/pkg/lnk\nfile\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "CANARY"},
			{name: "file", body: "owned\n"},
		}},
		{"directory through a link", "lnk\nlnk/sub/file\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "CANARY"},
			{name: "lnk/sub/", typ: tar.TypeDir},
			{name: "lnk/sub/file", body: "owned\n"},
		}},
		{"hard link through a link", "lnk\nreal\nlnk/hard\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "CANARY"},
			{name: "real", body: "x\n"},
			{name: "lnk/hard", typ: tar.TypeLink, link: "real"},
		}},
		{"hard link to a file outside", "lnk\nhard\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "CANARY"},
			{name: "hard", typ: tar.TypeLink, link: "lnk/secret"},
		}},
		{"@pkgdir climbing out", "file\n@pkgdir ../../canary/made\n", []member{
			{name: "file", body: "x\n"},
		}},
		{"@pkgdir through a link", "lnk\n@pkgdir lnk/made\n", []member{
			{name: "lnk", typ: tar.TypeSymlink, link: "CANARY"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, _, _ := newTestInstaller(t)
			canary := filepath.Join(filepath.Dir(in.prefix), "canary")
			if err := os.Mkdir(canary, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(canary, "secret"), []byte("s"), 0o600)
			contents := "@name evil-1.0\n@cwd /usr/pkg\n" + c.contents
			m := []member{{name: "+CONTENTS", body: contents}, {name: "+COMMENT", body: "evil\n"}}
			for _, x := range c.members {
				x.link = strings.ReplaceAll(x.link, "CANARY", canary)
				m = append(m, x)
			}
			pkg := filepath.Join(t.TempDir(), "evil-1.0.tgz")
			writePkg(t, pkg, m)
			_, err := in.install(context.Background(), pkg)
			if err == nil {
				t.Errorf("installed")
			}
			ents, _ := os.ReadDir(canary)
			if len(ents) != 1 {
				t.Errorf("the canary outside the prefix changed: %d entries (%v)", len(ents), err)
			}
		})
	}
}

// TestDeinstallEscapes: a registered +CONTENTS naming files through a link
// (or with "..") must not make the deinstall remove anything outside.
func TestDeinstallEscapes(t *testing.T) {
	for _, entry := range []string{"lnk/secret", "../canary/secret"} {
		in, _, _ := newTestInstaller(t)
		canary := filepath.Join(filepath.Dir(in.prefix), "canary")
		os.Mkdir(canary, 0o755)
		os.WriteFile(filepath.Join(canary, "secret"), []byte("s"), 0o600)
		os.Symlink(canary, filepath.Join(in.prefix, "lnk"))
		os.MkdirAll(filepath.Join(in.pkgdb, "evil-1.0"), 0o755)
		os.WriteFile(filepath.Join(in.pkgdb, "evil-1.0", "+CONTENTS"), []byte("@name evil-1.0\n@cwd "+in.prefix+"\n"+entry+"\n"), 0o644)
		in.deinstall(context.Background(), "evil-1.0")
		if _, err := os.Stat(filepath.Join(canary, "secret")); err != nil {
			t.Errorf("%s: the deinstall removed a file outside the prefix", entry)
		}
	}
}

// TestKitEscapes: the bootstrap kit's extractor refuses entries that climb
// out or pass through a link the kit made.
func TestKitEscapes(t *testing.T) {
	for _, c := range []struct {
		name    string
		members []member
	}{
		{"dot-dot", []member{{name: "../canary/file", body: "x"}}},
		{"through a link", []member{{name: "usr/pkg/lnk", typ: tar.TypeSymlink, link: "CANARY"}, {name: "usr/pkg/lnk/file", body: "x"}}},
		{"hard link through a link", []member{{name: "usr/pkg/lnk", typ: tar.TypeSymlink, link: "CANARY"}, {name: "usr/pkg/h", typ: tar.TypeLink, link: "usr/pkg/lnk/secret"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			canary, dir := filepath.Join(base, "canary"), filepath.Join(base, "kit")
			os.Mkdir(canary, 0o755)
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(canary, "secret"), []byte("s"), 0o600)
			var m []member
			for _, x := range c.members {
				x.link = strings.ReplaceAll(x.link, "CANARY", canary)
				m = append(m, x)
			}
			kit := filepath.Join(base, "kit.tgz")
			writePkg(t, kit, m)
			b, _ := os.ReadFile(kit)
			if err := unpackKit(bytes.NewReader(b), dir); err == nil {
				t.Error("unpacked")
			}
			if ents, _ := os.ReadDir(canary); len(ents) != 1 {
				t.Errorf("the canary changed: %d entries", len(ents))
			}
		})
	}
}

// TestBuildEnvironment: a build that dumps its environment and goes for
// the store finds neither the store's keys nor the store.
func TestBuildEnvironment(t *testing.T) {
	e := newEnv(t)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIAPKGBULKTEST", "AWS_SECRET_ACCESS_KEY": "pkgbulk-secret-key",
		"SSH_AUTH_SOCK": filepath.Join(t.TempDir(), "agent.sock"), "MAKEFLAGS": "-j99",
	} {
		t.Setenv(k, v)
	}
	// A store where the sandbox would show the host (not below /tmp,
	// which is the job's own there).
	dir, err := os.MkdirTemp("/var/lib", "pkgbulk-test-store-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st, err := storeopen.Open(context.Background(), "file://"+dir, storeopen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.store, e.storeDir = st, dir
	b := e.builder(func(s *job.Settings) { s.Environment = []string{"TARGET_STORE=" + dir} })
	res := e.run(b, "PKGNAME=envdump-1.0\nPKG_LOCATION=fixture/envdump\nDEPENDS=\n")
	if res.Status != job.StatusFailed || res.FailedPhase != "build" {
		t.Fatalf("status %s phase %q: %s", res.Status, res.FailedPhase, res.Message)
	}
	log := e.read("bulklog/envdump-1.0/build.log")
	if !strings.Contains(log, "=== end") {
		t.Fatalf("the build did not run:\n%s", log)
	}
	for _, leak := range []string{"AKIAPKGBULKTEST", "pkgbulk-secret-key", "SSH_AUTH_SOCK", "AWS_", "MAKEFLAGS=-j99", "PLANTED", "SAW-STORE", "AGENT"} {
		if strings.Contains(log, leak) {
			t.Errorf("the build's log shows %q:\n%s", leak, log)
		}
	}
	if e.exists("All/planted-1.0.tgz") {
		t.Error("the build planted a package in the store")
	}
}

// TestWorkRootFull: a build that fails because the work root is full is
// the builder's fault (ErrNoSpace, pkgrun's exit 3), not a failed package.
func TestWorkRootFull(t *testing.T) {
	e := newEnv(t)
	small := t.TempDir()
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=16m"); err != nil {
		testenv.Skip(t, "root", "cannot mount a small tmpfs: "+err.Error())
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	b := e.builder(func(s *job.Settings) { s.WorkRoot = small })
	j, _ := ParseJob("test", strings.NewReader("PKGNAME=filler-1.0\nPKG_LOCATION=fixture/filler\nDEPENDS=\n"))
	res, err := b.Run(context.Background(), j)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Run = %+v, %v; want ErrNoSpace", res, err)
	}
	if cli.ExitCode(err) != job.ExitNoSpace {
		t.Errorf("exit code %d, want %d", cli.ExitCode(err), job.ExitNoSpace)
	}
	if e.exists("bulklog/filler-1.0/build.log") {
		t.Error("the package's failure was recorded in the store")
	}
	if ents, _ := os.ReadDir(small); len(ents) != 0 {
		t.Errorf("left in the work root: %v", ents)
	}
}

// TestMakeJobs: the MAKE_JOBS a scheduler grants (the record's MAKE_JOBS=
// line) reaches the build, which then runs its four slow units at once;
// the build log and the result say what the job got.
func TestMakeJobs(t *testing.T) {
	e := newEnv(t)
	build := func(rec string) (*job.Result, time.Duration) {
		res := e.run(e.builder(func(s *job.Settings) { s.Force = true; s.KeepWorkdir = true }), rec)
		if res.Status != job.StatusDone {
			t.Fatalf("%s: %s", res.Status, res.Message)
		}
		for _, p := range res.Phases {
			if p.Name == "build" {
				return res, time.Duration(p.WallMS) * time.Millisecond
			}
		}
		t.Fatal("no build phase")
		return nil, 0
	}
	rec := "PKGNAME=parallel-1.0\nPKG_LOCATION=fixture/parallel\nDEPENDS=\n"
	_, serial := build(rec)
	res, parallel := build(rec + "MAKE_JOBS=4\n")
	if res.MakeJobs != 4 {
		t.Errorf("result says MAKE_JOBS %d", res.MakeJobs)
	}
	if serial < 4*time.Second || parallel > 3*time.Second {
		t.Errorf("build phase %v with one job, %v with MAKE_JOBS=4", serial, parallel)
	}
	t.Logf("build phase: %v with one job, %v with MAKE_JOBS=4", serial, parallel)
	if _, err := ParseJob("t", strings.NewReader(rec+"MAKE_JOBS=lots\n")); err == nil || !strings.Contains(err.Error(), "MAKE_JOBS") {
		t.Errorf("a bad MAKE_JOBS line: %v", err)
	}
}
