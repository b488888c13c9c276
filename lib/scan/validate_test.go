package scan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func TestCheckPkgName(t *testing.T) {
	tests := []struct {
		name string
		err  string // "" for valid
	}{
		{"foo-1.0", ""},
		{"py312-setuptools-75.8.0", ""},
		{"xaos-4.2.1nb26", ""},
		{"a-b", ""},
		{"foo-1.0{,nb1}", ""}, // odd, but pbulk and the file names cope
		{"", "is empty"},
		{"../../evil-1.0", "contains '/'"},
		{"evil/x-1.0", "contains '/'"},
		{"foo 1-1", "whitespace"},
		{"foo\t-1", "whitespace"},
		{"foo-1\r", "whitespace"},
		{"foo\x01-1", "control"},
		{"foo\x7f-1", "control"},
		{"-foo-1.0", `starts with '-'`},
		{".foo-1.0", `starts with '.'`},
		{"..-1", `starts with '.'`},
		{"foo", "not NAME-VERSION"},
		{"foo-", "not NAME-VERSION"},
		{"foo-1.0-", "not NAME-VERSION"},
	}
	for _, tt := range tests {
		err := CheckPkgName(tt.name)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CheckPkgName(%q) = %v, want %q", tt.name, err, tt.err)
		}
	}
}

func TestCheckLocation(t *testing.T) {
	tests := []struct {
		loc string
		err string // "" for valid
	}{
		{"devel/foo", ""},
		{"x11/XaoS", ""},
		{"lang/python312", ""},
		{"www/.hidden", ""}, // a clean relative path all the same
		{"", "is empty"},
		{"/etc", "is absolute"},
		{"/etc/passwd", "is absolute"},
		{"../../etc", "leaves the pkgsrc tree"},
		{"devel/..", "leaves the pkgsrc tree"},
		{"../etc", "leaves the pkgsrc tree"},
		{"devel/foo/../../..", "leaves the pkgsrc tree"},
		{"devel", "not category/dir"},
		{"devel/foo/bar", "not category/dir"},
		{"devel/", "not category/dir"},
		{"/", "is absolute"},
		{"devel//foo", "not category/dir"},
		{"./foo", "not category/dir"},
		{"devel/.", "not category/dir"},
		{"devel/foo bar", "whitespace"},
		{"devel/foo\n", "whitespace"},
		{"devel/\x00foo", "control"},
	}
	for _, tt := range tests {
		err := CheckLocation(tt.loc)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CheckLocation(%q) = %v, want %q", tt.loc, err, tt.err)
		}
	}
}

// TestCheckRealScan proves the checks reject no real record: every PKGNAME,
// PKG_LOCATION and ALL_DEPENDS location of the 29,022-record scan passes.
func TestCheckRealScan(t *testing.T) {
	recs, err := ReadFile(testenv.SharedData(t, "scan/pscan-illumos-2026.txt.zst"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		r := &recs[i]
		if err := CheckPkgName(r.PkgName()); err != nil {
			t.Errorf("%s:%d: %v", r.File(), r.Line(), err)
		}
		if err := CheckLocation(r.Location()); err != nil {
			t.Errorf("%s:%d: %v", r.File(), r.LineOf(KeyPkgLocation), err)
		}
		deps, _ := r.GetBytes(KeyAllDepends)
		for _, f := range bytes.Fields(deps) {
			_, path, _ := bytes.Cut(f, []byte(":../../"))
			if err := CheckLocation(string(path)); err != nil {
				t.Errorf("%s:%d: ALL_DEPENDS: %v", r.File(), r.LineOf(KeyAllDepends), err)
			}
		}
	}
}

func FuzzCheckLocation(f *testing.F) {
	for _, s := range []string{"devel/foo", "../etc", "/etc", "a/b/c", "a/..", "a//b", ".", "a/."} {
		f.Add(s)
	}
	root := filepath.FromSlash("/pkgsrc")
	f.Fuzz(func(t *testing.T, loc string) {
		if CheckLocation(loc) != nil {
			return
		}
		// Accepted: two elements, inside the tree, one level below a
		// category, and already clean.
		p := filepath.Join(root, loc)
		if filepath.Dir(filepath.Dir(p)) != root || filepath.Clean(loc) != loc || strings.Count(loc, "/") != 1 {
			t.Fatalf("accepted %q, which is %s", loc, p)
		}
	})
}

func FuzzCheckPkgName(f *testing.F) {
	for _, s := range []string{"foo-1.0", "../../evil-1.0", "-x-1", ".x-1", "foo", "a b-1"} {
		f.Add(s)
	}
	dir := string(os.PathSeparator) + "store"
	f.Fuzz(func(t *testing.T, name string) {
		if CheckPkgName(name) != nil {
			return
		}
		// Accepted: a single file name, not an option, with a version.
		if filepath.Dir(filepath.Join(dir, name+".tgz")) != dir || name[0] == '-' ||
			strings.ContainsAny(name, " \t\n\x00") || !strings.Contains(name[1:len(name)-1], "-") {
			t.Fatalf("accepted %q", name)
		}
	})
}
