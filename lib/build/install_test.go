package build

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/pkgbulk/pkgbulk/lib/ar"
)

type member struct {
	name, body, link string
	typ              byte
	mode             int64
}

// writePkg writes a gzipped package with the members in order.
func writePkg(t testing.TB, file string, members []member) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(m.body)), Linkname: m.link}
		if m.mode != 0 {
			h.Mode = m.mode
		}
		if m.typ != 0 {
			h.Typeflag = m.typ
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(m.body))
		}
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

const testContents = `@name demo-1.0
@pkgdep base>=1
@blddep base-1.2
@cwd /old/prefix
bin/demo
@comment MD5:0
bin/demo-link
@comment Symlink:demo
bin/demo-hard
@cwd /old/prefix/share
demo/data
@cwd .
@ignore
+COMMENT
`

func demoMembers(contents string) []member {
	return []member{
		{name: "+CONTENTS", body: contents},
		{name: "+COMMENT", body: "a demo\n"},
		{name: "+DESC", body: "demo\n"},
		{name: "+INSTALL", body: "echo \"$2 $PKG_PREFIX $(basename $PKG_METADATA_DIR)\" >> \"$SCRIPT_LOG\"\n"},
		{name: "+DEINSTALL", body: "echo \"$2\" >> \"$SCRIPT_LOG\"\n"},
		{name: "bin/demo", body: "#!/bin/sh\necho demo\n", mode: 0o755},
		{name: "bin/demo-link", typ: tar.TypeSymlink, link: "demo"},
		{name: "bin/demo-hard", typ: tar.TypeLink, link: "bin/demo"},
		{name: "demo/data", body: "data\n"},
	}
}

func newTestInstaller(t testing.TB) (*installer, string, *bytes.Buffer) {
	dir := t.TempDir()
	scriptLog := filepath.Join(dir, "scripts.log")
	var log bytes.Buffer
	in := &installer{prefix: filepath.Join(dir, "prefix"), pkgdb: filepath.Join(dir, "pkgdb"), log: &log}
	os.MkdirAll(in.prefix, 0o755)
	os.MkdirAll(in.pkgdb, 0o755)
	in.script = func(ctx context.Context, dir string, env []string, argv ...string) error {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), env...), "SCRIPT_LOG="+scriptLog)
		cmd.Stdout, cmd.Stderr = &log, &log
		return cmd.Run()
	}
	return in, scriptLog, &log
}

func TestInstallDeinstall(t *testing.T) {
	in, scriptLog, log := newTestInstaller(t)
	pkg := filepath.Join(t.TempDir(), "demo-1.0.tgz")
	writePkg(t, pkg, demoMembers(testContents))
	ctx := context.Background()
	name, err := in.install(ctx, pkg)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, log)
	}
	if name != "demo-1.0" {
		t.Errorf("name %q", name)
	}
	check := func(rel, want string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(in.prefix, rel))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	check("bin/demo", "#!/bin/sh\necho demo\n")
	check("bin/demo-link", "#!/bin/sh\necho demo\n")
	check("bin/demo-hard", "#!/bin/sh\necho demo\n")
	check("share/demo/data", "data\n")
	if fi, err := os.Stat(filepath.Join(in.prefix, "bin/demo")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/demo mode %v %v", fi.Mode(), err)
	}
	if l, _ := os.Readlink(filepath.Join(in.prefix, "bin/demo-link")); l != "demo" {
		t.Errorf("symlink target %q", l)
	}
	if _, err := os.Stat(filepath.Join(in.prefix, "+COMMENT")); err == nil {
		t.Error("an @ignore'd metadata file was installed into the prefix")
	}
	reg, err := os.ReadFile(filepath.Join(in.pkgdb, "demo-1.0", "+CONTENTS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"@cwd " + in.prefix + "\n", "@cwd " + in.prefix + "/share\n", "@cwd .\n", "@blddep base-1.2\n"} {
		if !strings.Contains(string(reg), want) {
			t.Errorf("registered +CONTENTS lacks %q:\n%s", want, reg)
		}
	}
	if _, err := in.install(ctx, pkg); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("second install: %v", err)
	}

	if err := in.deinstall(ctx, "demo-1.0"); err != nil {
		t.Fatalf("deinstall: %v\n%s", err, log)
	}
	left, _ := os.ReadDir(in.prefix)
	if len(left) != 0 {
		t.Errorf("prefix not empty after deinstall: %v", left)
	}
	if _, err := os.Stat(filepath.Join(in.pkgdb, "demo-1.0")); err == nil {
		t.Error("pkgdb entry survived")
	}
	scripts, _ := os.ReadFile(scriptLog)
	want := "PRE-INSTALL " + in.prefix + " demo-1.0\nPOST-INSTALL " + in.prefix + " demo-1.0\nDEINSTALL\nPOST-DEINSTALL\n"
	if string(scripts) != want {
		t.Errorf("scripts ran:\n%s\nwant:\n%s", scripts, want)
	}
}

func TestInstallRejects(t *testing.T) {
	tests := []struct {
		name     string
		contents string
		members  func([]member) []member
		want     string
	}{
		{name: "cwd outside prefix", contents: strings.Replace(testContents, "@cwd /old/prefix/share", "@cwd /etc", 1), want: "outside the package's prefix"},
		{name: "entry not listed", contents: testContents, members: func(m []member) []member {
			return append(m, member{name: "bin/extra", body: "x"})
		}, want: "not in +CONTENTS"},
		{name: "listed entry missing", contents: testContents, members: func(m []member) []member {
			return m[:len(m)-1]
		}, want: "has no such entry"},
		{name: "climbing file name", contents: strings.Replace(testContents, "demo/data", "../../etc/passwd", 1), want: "outside its @cwd"},
		{name: "no @name", contents: strings.Replace(testContents, "@name demo-1.0\n", "", 1), want: "@name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _, _ := newTestInstaller(t)
			pkg := filepath.Join(t.TempDir(), "demo-1.0.tgz")
			m := demoMembers(tt.contents)
			if tt.members != nil {
				m = tt.members(m)
			}
			writePkg(t, pkg, m)
			_, err := in.install(context.Background(), pkg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDeinstallMissingFile(t *testing.T) {
	in, _, _ := newTestInstaller(t)
	pkg := filepath.Join(t.TempDir(), "demo-1.0.tgz")
	writePkg(t, pkg, demoMembers(testContents))
	if _, err := in.install(context.Background(), pkg); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(in.prefix, "share/demo/data"))
	err := in.deinstall(context.Background(), "demo-1.0")
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("deinstall with a missing file: %v", err)
	}
}

func TestFailingInstallScript(t *testing.T) {
	in, _, _ := newTestInstaller(t)
	pkg := filepath.Join(t.TempDir(), "demo-1.0.tgz")
	m := demoMembers(testContents)
	m[3].body = "[ \"$2\" != PRE-INSTALL ] || { echo refusing; exit 1; }\n"
	writePkg(t, pkg, m)
	_, err := in.install(context.Background(), pkg)
	if err == nil || !strings.Contains(err.Error(), "+INSTALL PRE-INSTALL") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(in.pkgdb, "demo-1.0")); err == nil {
		t.Error("a package whose PRE-INSTALL failed stayed registered")
	}
}

// TestInstallSigned installs a package wrapped in pkg_install's signed
// container (an ar archive of +PKG_HASH, +PKG_GPG_SIGNATURE and the
// package), as SIGN_PACKAGES makes STAGE_PKGFILE.
func TestInstallSigned(t *testing.T) {
	in, _, log := newTestInstaller(t)
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.tgz")
	writePkg(t, inner, demoMembers(testContents))
	pkgBytes, _ := os.ReadFile(inner)
	var buf bytes.Buffer
	w := ar.NewWriter(&buf)
	for _, m := range []struct {
		name string
		data []byte
	}{{"+PKG_HASH", []byte("pkgsrc signature\n")}, {"+PKG_GPG_SIGNATURE", []byte("sig")}, {"demo-1.0.tgz", pkgBytes}} {
		if err := w.WriteHeader(&ar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data))}); err != nil {
			t.Fatal(err)
		}
		w.Write(m.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(dir, "demo-1.0.tgz")
	os.WriteFile(signed, buf.Bytes(), 0o644)
	if _, err := in.install(context.Background(), signed); err != nil {
		t.Fatalf("install: %v\n%s", err, log)
	}
	if b, err := os.ReadFile(filepath.Join(in.prefix, "share/demo/data")); err != nil || string(b) != "data\n" {
		t.Errorf("payload not installed: %q %v", b, err)
	}
}
