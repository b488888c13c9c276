package ar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

type member struct {
	name string
	data []byte
}

// testMembers covers odd and even sizes, empty data, and names that need
// the long-name conventions of both variants (+PKG_GPG_SIGNATURE is 18
// bytes).
func testMembers() []member {
	return []member{
		{"+PKG_HASH", []byte("pkgsrc signature\n\nversion: 1\n")},
		{"+PKG_GPG_SIGNATURE", []byte("-----BEGIN PGP SIGNATURE-----\nodd\n")},
		{"foo-1.0.tmp.tgz", bytes.Repeat([]byte{0x1f, 0x8b, 7}, 1001)},
		{"even", []byte("ab")},
		{"a-name-of-exactly-16", []byte("x")},
		{"empty", nil},
	}
}

func readAll(t *testing.T, data []byte) []member {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []member
	for {
		h, err := r.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("after %d members: %v", len(got), err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != h.Size {
			t.Fatalf("%s: read %d bytes, header says %d", h.Name, len(b), h.Size)
		}
		got = append(got, member{h.Name, b})
	}
}

func checkMembers(t *testing.T, got, want []member) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d members, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].name != want[i].name || !bytes.Equal(got[i].data, want[i].data) {
			t.Errorf("member %d: got %q (%d bytes), want %q (%d bytes)", i, got[i].name, len(got[i].data), want[i].name, len(want[i].data))
		}
	}
}

func writeFiles(t *testing.T, dir string, ms []member) []string {
	t.Helper()
	var names []string
	for _, m := range ms {
		if err := os.WriteFile(filepath.Join(dir, m.name), m.data, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, m.name)
	}
	return names
}

// TestBinutils reads archives written by GNU ar (binutils), in
// deterministic (D) and real-metadata (U) modes: GNU "name/" names and the
// "//" long-name table.
func TestBinutils(t *testing.T) {
	arProg := testenv.Program(t, "ar")
	for _, mode := range []string{"rcD", "rcU"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			ms := testMembers()
			names := writeFiles(t, dir, ms)
			cmd := exec.Command(arProg, append([]string{mode, "out.a"}, names...)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ar: %v\n%s", err, out)
			}
			data, err := os.ReadFile(filepath.Join(dir, "out.a"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte("//  ")) {
				t.Fatal("binutils did not write a long-name table; the test lost its point")
			}
			checkMembers(t, readAll(t, data), ms)
		})
	}
}

// TestBsdtar reads archives written by libarchive's BSD ar writer, the
// one pkg_admin uses for signed packages ("#1/<len>" long names).
func TestBsdtar(t *testing.T) {
	bsdtar := testenv.Program(t, "bsdtar")
	dir := t.TempDir()
	ms := append(testMembers(), member{"name with space", []byte("odd")})
	names := writeFiles(t, dir, ms)
	cmd := exec.Command(bsdtar, append([]string{"-cf", "out.a", "--format=arbsd"}, names...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "out.a"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("#1/18")) {
		t.Fatal("bsdtar did not write a BSD long name; the test lost its point")
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, ms[0].name))
	if err != nil {
		t.Fatal(err)
	}
	if h.ModTime.Unix() != st.ModTime().Unix() || h.Mode&0o777 != 0o644 || h.UID != os.Getuid() {
		t.Errorf("header %+v does not match the file's stat (mtime %v, mode 0644, uid %d)", h, st.ModTime(), os.Getuid())
	}
	checkMembers(t, readAll(t, data), ms)
}

func hdr(name string, size int) string {
	return fmt.Sprintf("%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, 1700000000, 0, 0, 0o644, size)
}

// TestHandMade covers what the real tools above do not write: a GNU symbol
// table, a missing final pad byte, macOS-style NUL-padded long names.
func TestHandMade(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []member
	}{
		{"gnu symbol table skipped", Magic + hdr("/", 4) + "\x00\x00\x00\x00" + hdr("x.o/", 3) + "abc\n",
			[]member{{"x.o", []byte("abc")}}},
		{"missing final pad", Magic + hdr("x", 3) + "abc", []member{{"x", []byte("abc")}}},
		{"nul padded bsd name", Magic + hdr("#1/8", 9) + "long\x00\x00\x00\x00z\n", []member{{"long", []byte("z")}}},
		{"empty archive", Magic, nil},
		{"trailing newline", Magic + hdr("x", 2) + "ab\n", []member{{"x", []byte("ab")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMembers(t, readAll(t, []byte(tt.data)), tt.want)
		})
	}
}

func TestErrors(t *testing.T) {
	good := Magic + hdr("a", 3) + "abc\n"
	tests := []struct {
		name, data, want string
	}{
		{"no magic", "!<arch>x" + hdr("a", 1), "magic"},
		{"short magic", "!<ar", "too short"},
		{"truncated header", Magic + hdr("a", 3)[:30], "truncated header"},
		{"bad terminator", Magic + strings.Replace(hdr("a", 3), "`\n", "xx", 1) + "abc\n", "terminator"},
		{"bad size", Magic + strings.Replace(hdr("a", 3), "3         ", "3x        ", 1) + "abc\n", "size"},
		{"bad mode", Magic + strings.Replace(hdr("a", 3), "644     ", "699     ", 1) + "abc\n", "mode"},
		{"bsd name longer than size", Magic + hdr("#1/20", 3) + "abc\n", "long name"},
		{"gnu name outside table", Magic + hdr("/5", 3) + "abc\n", "outside the name table"},
		{"truncated data", good[:len(good)-3] + hdr("b", 1), "truncated"},
		{"truncated bsd name", Magic + hdr("#1/10", 12) + "abc", "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.data))
			for err == nil {
				_, err = r.Next()
				if err == nil {
					_, err = io.ReadAll(r)
				}
			}
			if err == io.EOF {
				t.Fatalf("no error")
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want ErrFormat mentioning %q", err, tt.want)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		Magic + hdr("a", 3) + "abc\n",
		Magic + hdr("//", 8) + "longname" + hdr("/0", 1) + "x\n",
		Magic + hdr("#1/18", 20) + "+PKG_GPG_SIGNATUREab",
		Magic + hdr("/", 4) + "\x00\x00\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			h, err := r.Next()
			if err != nil {
				return
			}
			if h.Size < 0 || h.Name == "" {
				t.Fatalf("bad header %+v", h)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}
