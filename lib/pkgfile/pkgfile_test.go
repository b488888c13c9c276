package pkgfile_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var sampleMeta = map[string][]byte{
	"+CONTENTS":   []byte("@name foo-1.0\n@pkgdep bar>=1\n@cwd /usr/pkg\nbin/foo\n@ignore\n+COMMENT\n"),
	"+COMMENT":    []byte("A foo\n"),
	"+DESC":       []byte("Foo does things.\n"),
	"+BUILD_INFO": []byte("OPSYS=Linux\nPKGPATH=misc/foo\n"),
	"+SIZE_PKG":   []byte("1234\n"),
}

func build(t testing.TB, c pkgfile.Compression, ms []pkgtest.Member) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := pkgtest.Build(&b, c, ms); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func samplePkg(t testing.TB, c pkgfile.Compression) []byte {
	return build(t, c, append(pkgtest.MetaMembers(sampleMeta),
		pkgtest.Member{Name: "bin/foo", Data: bytes.Repeat([]byte("x"), 100000), Mode: 0o755}))
}

func checkSample(t *testing.T, m *pkgfile.Meta) {
	t.Helper()
	if m.PkgName() != "foo-1.0" {
		t.Errorf("PkgName = %q", m.PkgName())
	}
	want := []string{"+CONTENTS", "+COMMENT", "+DESC", "+BUILD_INFO", "+SIZE_PKG"}
	if strings.Join(m.Order, ",") != strings.Join(want, ",") {
		t.Errorf("Order = %v, want %v", m.Order, want)
	}
	for n, d := range sampleMeta {
		if !bytes.Equal(m.Files[n], d) {
			t.Errorf("%s = %q, want %q", n, m.Files[n], d)
		}
	}
}

func TestCompressions(t *testing.T) {
	for _, c := range []pkgfile.Compression{pkgfile.None, pkgfile.Gzip, pkgfile.Bzip2, pkgfile.XZ, pkgfile.Zstd} {
		t.Run(string(c), func(t *testing.T) {
			m, err := pkgfile.ReadMeta("foo-1.0.tgz", bytes.NewReader(samplePkg(t, c)))
			if err != nil {
				t.Fatal(err)
			}
			checkSample(t, m)
			if m.Signed {
				t.Error("Signed set on a plain package")
			}
		})
	}
}

// TestRealTools compresses a tar written by bsdtar with the real gzip,
// bzip2, xz and zstd programs.
func TestRealTools(t *testing.T) {
	bsdtar := testenv.Program(t, "bsdtar")
	dir := t.TempDir()
	var names []string
	for _, m := range pkgtest.MetaMembers(sampleMeta) {
		if err := os.WriteFile(filepath.Join(dir, m.Name), m.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
	}
	cmd := exec.Command(bsdtar, append([]string{"-cf", "pkg.tar", "--format=pax"}, names...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, out)
	}
	for _, tool := range []string{"gzip", "bzip2", "xz", "zstd"} {
		t.Run(tool, func(t *testing.T) {
			prog := testenv.Program(t, tool)
			out, err := exec.Command(prog, "-c", filepath.Join(dir, "pkg.tar")).Output()
			if err != nil {
				t.Fatal(err)
			}
			m, err := pkgfile.ReadMeta(tool, bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			checkSample(t, m)
		})
	}
}

// bsdAr writes a BSD ar archive as libarchive's ar_bsd writer does.
func bsdAr(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range members {
		name, data := m[0], m[1]
		if len(name) > 16 || strings.Contains(name, " ") {
			fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", "#1/"+fmt.Sprint(len(name)), 1700000000, 0, 0, 0o100644, len(name)+len(data))
			b.WriteString(name)
			data = name + data
		} else {
			fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, 1700000000, 0, 0, 0o100644, len(data))
		}
		b.WriteString(data[len(data)-len(m[1]):])
		if len(data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func TestSigned(t *testing.T) {
	inner := string(samplePkg(t, pkgfile.Gzip))
	for _, sig := range []string{pkgfile.GPGSigName, pkgfile.X509SigName} {
		t.Run(sig, func(t *testing.T) {
			data := bsdAr([2]string{"+PKG_HASH", "hash\n"}, [2]string{sig, "sig"}, [2]string{"foo-1.0.tmp.tgz", inner})
			m, err := pkgfile.ReadMeta("foo-1.0.tgz", bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			checkSample(t, m)
			if !m.Signed || m.SignatureName != sig || string(m.Signature) != "sig" || string(m.HashFile) != "hash\n" ||
				m.InnerName != "foo-1.0.tmp.tgz" || m.InnerSize != int64(len(inner)) {
				t.Errorf("signed fields: %v %q %q %q %q %d", m.Signed, m.SignatureName, m.Signature, m.HashFile, m.InnerName, m.InnerSize)
			}
		})
	}
}

// TestSignedBsdtar reads a container written by libarchive itself.
func TestSignedBsdtar(t *testing.T) {
	bsdtar := testenv.Program(t, "bsdtar")
	dir := t.TempDir()
	files := [][2]string{{"+PKG_HASH", "pkgsrc signature\n"}, {"+PKG_GPG_SIGNATURE", "-----BEGIN PGP SIGNATURE-----\n"},
		{"foo-1.0.tmp.tgz", string(samplePkg(t, pkgfile.Gzip))}}
	var names []string
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, f[0])
	}
	cmd := exec.Command(bsdtar, append([]string{"-cf", "signed.tgz", "--format=arbsd"}, names...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, out)
	}
	m, err := pkgfile.ReadMetaFile(filepath.Join(dir, "signed.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, m)
	if !m.Signed || m.SignatureName != pkgfile.GPGSigName {
		t.Errorf("Signed %v, signature member %q", m.Signed, m.SignatureName)
	}
}

func TestErrors(t *testing.T) {
	good := samplePkg(t, pkgfile.Gzip)
	meta := pkgtest.MetaMembers(sampleMeta)
	payload := pkgtest.Member{Name: "bin/foo", Data: []byte("x"), Mode: 0o755}
	inner := string(good)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "empty file"},
		{"truncated gzip", good[:len(good)/50], "truncated stream"},
		{"truncated plain tar", samplePkg(t, pkgfile.None)[:700], "truncated stream"},
		{"not a tar", bytes.Repeat([]byte("hello world\n"), 100), "not a tar"},
		{"gzip of not a tar", gz(t, bytes.Repeat([]byte("hello world\n"), 100)), "not a tar"},
		{"corrupt gzip", append(append([]byte{}, good[:20]...), bytes.Repeat([]byte{0xff}, 100)...), "corrupt gzip"},
		{"empty tar", build(t, pkgfile.Gzip, nil), "no +CONTENTS"},
		{"payload first", build(t, pkgfile.Gzip, append([]pkgtest.Member{payload}, meta...)), "+CONTENTS not first"},
		{"comment first", build(t, pkgfile.Gzip, append([]pkgtest.Member{meta[1], meta[0]}, meta[2:]...)), "+CONTENTS not first"},
		{"no +DESC", build(t, pkgfile.Gzip, []pkgtest.Member{meta[0], meta[1], payload}), "no +DESC"},
		{"duplicate", build(t, pkgfile.Gzip, append(append([]pkgtest.Member{}, meta...), meta[1])), "duplicate member +COMMENT"},
		{"bad ar header", []byte("!<arch>\n+PKG_HASH       12345678901 0     0     100644  xx        `\n"), "bad ar header"},
		{"signed wrong first", bsdAr([2]string{"foo.tgz", inner}), "wrong member order"},
		{"signed wrong second", bsdAr([2]string{"+PKG_HASH", "h"}, [2]string{"foo.tgz", inner}), "wrong member order"},
		{"signed no package", bsdAr([2]string{"+PKG_HASH", "h"}, [2]string{"+PKG_SIGNATURE", "s"}), "no third member"},
		{"signed truncated", bsdAr([2]string{"+PKG_HASH", "h"}, [2]string{"+PKG_SIGNATURE", "s"}, [2]string{"foo.tgz", inner})[:300], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pkgfile.ReadMeta("pkg.tgz", bytes.NewReader(tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "pkg.tgz: ") {
				t.Errorf("error %q: want it to start with the file name and mention %q", err, tt.want)
			}
			if !errors.Is(err, pkgfile.ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
		})
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	cmd := exec.Command(testenv.Program(t, "gzip"), "-c")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStopsAtPayload checks that ReadMeta does not read the payload: the
// stream after the metadata is cut off, which must not matter.
func TestStopsAtPayload(t *testing.T) {
	members := append(pkgtest.MetaMembers(sampleMeta), pkgtest.PayloadMembers(sampleMeta["+CONTENTS"], 4<<20, 1)...)
	data := build(t, pkgfile.None, members)
	// Cut the plain tar in the middle of the 4 MB payload.
	m, err := pkgfile.ReadMeta("cut.tar", bytes.NewReader(data[:len(data)/2]))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, m)
}

func TestParseContents(t *testing.T) {
	in := "@name foo-1.0  \r\n\n@pkgdep  bar>=1\n@pkgcfl baz-[0-9]*\n@comment $NetBSD$\nbin/foo\n" +
		"@bogus x\n@namex-2\n@ignore\n+COMMENT\n@cwd\n\x00@pkgdep hidden\n"
	es, err := pkgfile.ParseContents([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []pkgfile.PlistEntry{{"name", "foo-1.0"}, {"pkgdep", "bar>=1"}, {"pkgcfl", "baz-[0-9]*"},
		{"comment", "$NetBSD$"}, {"", "bin/foo"}, {"name", "x-2"}, {"ignore", ""}, {"", "+COMMENT"}, {"cwd", ""}}
	if fmt.Sprint(es) != fmt.Sprint(want) {
		t.Errorf("got  %q\nwant %q", es, want)
	}
	if _, err := pkgfile.ParseContents([]byte("bin/foo\n@name\n")); err == nil {
		t.Error("no error for a packing list without @name")
	}
}

func FuzzReadMeta(f *testing.F) {
	f.Add(samplePkg(f, pkgfile.Gzip))
	f.Add(samplePkg(f, pkgfile.None))
	f.Add(samplePkg(f, pkgfile.Zstd))
	f.Add(bsdAr([2]string{"+PKG_HASH", "h"}, [2]string{"+PKG_SIGNATURE", "s"}, [2]string{"f.tgz", string(samplePkg(f, pkgfile.None))}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := pkgfile.ReadMeta("fuzz", bytes.NewReader(data))
		if err == nil && m.Files["+CONTENTS"] == nil {
			t.Fatal("no error but no +CONTENTS")
		}
	})
}

func FuzzParseContents(f *testing.F) {
	f.Add([]byte(sampleMeta["+CONTENTS"]))
	f.Add([]byte("@name\n@pkgdep\t x \n@c\n@\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, _ := pkgfile.ParseContents(data)
		for _, e := range es {
			if strings.ContainsAny(e.Arg, "\n\x00") {
				t.Fatalf("argument %q holds a newline or NUL", e.Arg)
			}
		}
	})
}

// TestPaxGlobalHeader: a pax global header before +CONTENTS (GNU tar and
// bsdtar can write one) is not a member.
func TestPaxGlobalHeader(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": "made by a test"}}); err != nil {
		t.Fatal(err)
	}
	for _, m := range pkgtest.MetaMembers(sampleMeta) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.Name, Size: int64(len(m.Data)), Mode: m.Mode}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.Data)
	}
	tw.Close()
	m, err := pkgfile.ReadMeta("global.tar", &b)
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, m)
}

// TestSignedBinutils reads a signed container written by GNU ar: "name/"
// short names and a "//" table for +PKG_GPG_SIGNATURE, which libarchive's
// generic ar reader (pkg_add's) also accepts.
func TestSignedBinutils(t *testing.T) {
	arProg := testenv.Program(t, "ar")
	dir := t.TempDir()
	files := [][2]string{{"+PKG_HASH", "pkgsrc signature\n"}, {"+PKG_GPG_SIGNATURE", "sig\n"},
		{"foo-1.0.tmp.tgz", string(samplePkg(t, pkgfile.Gzip))}}
	args := []string{"rcD", "signed.tgz"}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f[0])
	}
	cmd := exec.Command(arProg, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ar: %v\n%s", err, out)
	}
	m, err := pkgfile.ReadMetaFile(filepath.Join(dir, "signed.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, m)
	if !m.Signed || m.SignatureName != pkgfile.GPGSigName || m.InnerName != "foo-1.0.tmp.tgz" {
		t.Errorf("Signed %v, signature %q, inner %q", m.Signed, m.SignatureName, m.InnerName)
	}
}
