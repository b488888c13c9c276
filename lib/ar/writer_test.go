package ar

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func writeArchive(t *testing.T, ms []member, hdr func(m member) *Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, m := range ms {
		if err := w.WriteHeader(hdr(m)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWriterMatchesBsdtar writes the same files with bsdtar --format=arbsd
// (libarchive's ar_bsd writer, which pkg_admin uses) and with Writer, from
// the same stat, and wants identical bytes.
func TestWriterMatchesBsdtar(t *testing.T) {
	bsdtar := testenv.Program(t, "bsdtar")
	dir := t.TempDir()
	mtime := time.Unix(1763416988, 0)
	var names []string
	ms := testMembers()
	for _, m := range ms {
		p := filepath.Join(dir, m.name)
		if err := os.WriteFile(p, m.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		names = append(names, m.name)
	}
	cmd := exec.Command(bsdtar, append([]string{"-cf", "ref.a", "--format=arbsd"}, names...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(dir, "ref.a"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ms[0].name))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := statIDs(fi)
	got := writeArchive(t, ms, func(m member) *Header {
		return &Header{Name: m.name, ModTime: mtime, UID: uid, GID: gid, Mode: 0o100644, Size: int64(len(m.data))}
	})
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("Writer output differs from bsdtar's at byte %d (len %d vs %d)\n got %q\nwant %q",
			i, len(got), len(want), got[max(0, i-40):min(len(got), i+40)], want[max(0, i-40):min(len(want), i+40)])
	}
	if !bytes.Contains(got, []byte("#1/18")) {
		t.Fatal("no BSD long name written; the test lost its point")
	}
}

// TestWriterReadBack reads Writer's output with this package's reader, with
// binutils ar (t and p) and with bsdtar (-t and -xO).
func TestWriterReadBack(t *testing.T) {
	ms := testMembers()
	mtime := time.Unix(1700000000, 0)
	data := writeArchive(t, ms, func(m member) *Header {
		return &Header{Name: m.name, ModTime: mtime, UID: 1000, GID: 100, Mode: 0o100444, Size: int64(len(m.data))}
	})
	got := readAll(t, data)
	if len(got) != len(ms) {
		t.Fatalf("read %d members, wrote %d", len(got), len(ms))
	}
	for i := range ms {
		if got[i].name != ms[i].name || !bytes.Equal(got[i].data, ms[i].data) {
			t.Fatalf("member %d: got %q (%d bytes), want %q (%d bytes)", i, got[i].name, len(got[i].data), ms[i].name, len(ms[i].data))
		}
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.UID != 1000 || h.GID != 100 || h.Mode != 0o100444 || !h.ModTime.Equal(mtime) {
		t.Fatalf("header fields read back as %+v", h)
	}

	dir := t.TempDir()
	arch := filepath.Join(dir, "out.a")
	if err := os.WriteFile(arch, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("bsdtar", func(t *testing.T) {
		bsdtar := testenv.Program(t, "bsdtar")
		out, err := exec.Command(bsdtar, "-tf", arch).Output()
		if err != nil {
			t.Fatalf("bsdtar -tf: %v", err)
		}
		var want []string
		for _, m := range ms {
			want = append(want, m.name)
		}
		if strings.Join(strings.Fields(string(out)), ",") != strings.Join(want, ",") {
			t.Fatalf("bsdtar -tf lists %q, want %q", out, want)
		}
		for _, m := range ms {
			b, err := exec.Command(bsdtar, "-xOf", arch, m.name).Output()
			if err != nil {
				t.Fatalf("bsdtar -xOf %s: %v", m.name, err)
			}
			if !bytes.Equal(b, m.data) {
				t.Fatalf("bsdtar -xOf %s: %d bytes differ from the %d written", m.name, len(b), len(m.data))
			}
		}
	})
	t.Run("binutils", func(t *testing.T) {
		arProg := testenv.Program(t, "ar")
		out, err := exec.Command(arProg, "t", arch).Output()
		if err != nil {
			t.Fatalf("ar t: %v", err)
		}
		var want []string
		for _, m := range ms {
			want = append(want, m.name)
		}
		if strings.Join(strings.Fields(string(out)), ",") != strings.Join(want, ",") {
			t.Fatalf("ar t lists %q, want %q", out, want)
		}
		for _, m := range ms {
			b, err := exec.Command(arProg, "p", arch, m.name).Output()
			if err != nil {
				t.Fatalf("ar p %s: %v", m.name, err)
			}
			if !bytes.Equal(b, m.data) {
				t.Fatalf("ar p %s: %d bytes differ from the %d written", m.name, len(b), len(m.data))
			}
		}
	})
}

func TestWriterErrors(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		data string
		want string
	}{
		{"uid too large", Header{Name: "a", UID: 1234567, Size: 1}, "x", "uid"},
		{"mode too large", Header{Name: "a", Mode: 0o777777777, Size: 1}, "x", "mode"},
		{"empty name", Header{Name: "", Size: 1}, "x", "empty"},
		{"trailing slash", Header{Name: "dir/", Size: 1}, "x", "ends in /"},
		{"short data", Header{Name: "a", Size: 3}, "x", "short"},
		{"long data", Header{Name: "a", Size: 1}, "xy", "past"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			err := w.WriteHeader(&tt.h)
			if err == nil {
				_, err = w.Write([]byte(tt.data))
			}
			if err == nil {
				err = w.Close()
			}
			if err == nil || !errors.Is(err, ErrWrite) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an ErrWrite mentioning %q", err, tt.want)
			}
		})
	}
	var buf bytes.Buffer
	if err := NewWriter(&buf).Close(); err != nil || buf.String() != Magic {
		t.Fatalf("empty archive: %q, %v", buf.String(), err)
	}
	buf.Reset()
	w := NewWriter(&buf)
	if err := w.WriteHeader(&Header{Name: "/abs/dir/name", Size: 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String()[8:], "name            0 ") {
		t.Fatalf("leading directories not stripped: %q", buf.String())
	}
}

func statIDs(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
