package build

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseJob(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  *Job
		error string
	}{
		{
			name: "full presolve record",
			in: "PKGNAME=py312-widget-2.1nb3\nPKG_LOCATION=devel/py-widget\n" +
				"ALL_DEPENDS=  py312-setuptools-[0-9]*:../../devel/py-setuptools\nPKG_SKIP_REASON=\nPKG_FAIL_REASON=\n" +
				"NO_BIN_ON_FTP=\nRESTRICTED=\nCATEGORIES=devel python\nMAINTAINER=pkgsrc-users@NetBSD.org\n" +
				"USE_DESTDIR=user-destdir\nBOOTSTRAP_PKG=\nUSERGROUP_PHASE=pre-configure\nSCAN_DEPENDS=Makefile\n" +
				"MULTI_VERSION= PYTHON_VERSION_REQD=312\nDEPENDS=py312-setuptools-75.8.0 python312-3.12.11\n",
			want: &Job{PkgName: "py312-widget-2.1nb3", PkgLocation: "devel/py-widget",
				Depends: []string{"py312-setuptools-75.8.0", "python312-3.12.11"}, Categories: []string{"devel", "python"},
				MultiVersion: []string{"PYTHON_VERSION_REQD=312"}, UseDestdir: "user-destdir", UsergroupPhase: "pre-configure"},
		},
		{
			name: "last value wins, CRLF and blank lines",
			in:   "PKGNAME=foo-1.0\r\n\nPKG_LOCATION=x/old\nBOOTSTRAP_PKG=yes\nPKG_LOCATION=x/foo\nDEPENDS=a-1\nDEPENDS=\n",
			want: &Job{PkgName: "foo-1.0", PkgLocation: "x/foo", BootstrapPkg: "yes"},
		},
		{name: "empty", in: "", error: "no PKGNAME"},
		{name: "not first", in: "PKG_LOCATION=x/foo\nPKGNAME=foo-1.0\n", error: "must start with PKGNAME"},
		{name: "two records", in: "PKGNAME=foo-1.0\nPKG_LOCATION=x/foo\nPKGNAME=bar-1.0\n", error: "second record"},
		{name: "no equals", in: "PKGNAME=foo-1.0\ngarbage\n", error: "test:2: not a KEY=VALUE"},
		{name: "short name", in: "PKGNAME=a-1\nPKG_LOCATION=x/a\n", error: "invalid PKGNAME"},
		{name: "no location", in: "PKGNAME=foo-1.0\n", error: "no PKG_LOCATION"},
		{name: "escaping location", in: "PKGNAME=foo-1.0\nPKG_LOCATION=../../etc\n", error: "invalid PKG_LOCATION"},
		{name: "absolute location", in: "PKGNAME=foo-1.0\nPKG_LOCATION=/usr/pkgsrc/x/foo\n", error: "invalid PKG_LOCATION"},
		{name: "unclean location", in: "PKGNAME=foo-1.0\nPKG_LOCATION=x/../../foo\n", error: "invalid PKG_LOCATION"},
		{name: "slash in depends", in: "PKGNAME=foo-1.0\nPKG_LOCATION=x/foo\nDEPENDS=../x\n", error: "invalid DEPENDS"},
		{name: "bad multi-version", in: "PKGNAME=foo-1.0\nPKG_LOCATION=x/foo\nMULTI_VERSION= =3\n", error: "MULTI_VERSION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJob("test", strings.NewReader(tt.in))
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("error %v, want one containing %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseJob(f *testing.F) {
	f.Add("PKGNAME=foo-1.0\nPKG_LOCATION=x/foo\nDEPENDS=a-1 b-2\nMULTI_VERSION= A=1\n")
	f.Add("PKGNAME=foo-1.0\nPKG_LOCATION=x/../foo\n")
	f.Add("\n\nPKGNAME=\n=\n")
	f.Fuzz(func(t *testing.T, in string) {
		j, err := ParseJob("fuzz", strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever is accepted must be safe to use as paths and names.
		if l := j.PkgLocation; l == ".." || strings.HasPrefix(l, "../") || strings.HasPrefix(l, "/") || strings.Contains(l, "/../") || strings.HasSuffix(l, "/..") {
			t.Errorf("accepted escaping location %q", j.PkgLocation)
		}
		if strings.ContainsAny(j.PkgName, " \t/") || len(j.PkgName) < 4 {
			t.Errorf("accepted name %q", j.PkgName)
		}
		for _, d := range j.Depends {
			if strings.Contains(d, "/") {
				t.Errorf("accepted dependency %q", d)
			}
		}
	})
}

func TestParseBuildVersion(t *testing.T) {
	ids, order, err := parseBuildVersion([]byte("x/foo/Makefile: abc\nx/foo/distinfo:\t$NetBSD: distinfo,v 1.2 $\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || ids["x/foo/Makefile"] != "abc" || ids["x/foo/distinfo"] != "$NetBSD: distinfo,v 1.2 $" {
		t.Errorf("ids %v order %v", ids, order)
	}
	if _, _, err := parseBuildVersion([]byte("no colon here\n")); err == nil {
		t.Error("accepted a line without ':'")
	}
}

func FuzzParseBuildVersion(f *testing.F) {
	f.Add([]byte("a/b/Makefile: 0123\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, order, err := parseBuildVersion(b)
		if err == nil && len(ids) != len(order) {
			t.Errorf("%d ids, %d in order", len(ids), len(order))
		}
	})
}

func TestSameID(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "Makefile")
	os.WriteFile(file, []byte("# $NetBSD: Makefile,v 1.7 2024/01/01 00:00:00 wiz Exp $\n# $NetBSD: second $\nDISTNAME=x\n"), 0o644)
	plain := filepath.Join(dir, "distinfo")
	os.WriteFile(plain, []byte("hello\n"), 0o644)
	const helloSHA = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	tests := []struct {
		file, id string
		same     bool
	}{
		{file, "$NetBSD: Makefile,v 1.7 2024/01/01 00:00:00 wiz Exp $", true},
		{file, "$NetBSD: Makefile,v 1.6 2023/01/01 00:00:00 wiz Exp $", false},
		{file, "$NetBSD: second $", false}, // only the first keyword counts
		{plain, helloSHA, true},
		{plain, strings.Repeat("0", 64), false},
		{plain, "$NetBSD: distinfo,v 1.1 $", false}, // no keyword in the file
		{filepath.Join(dir, "gone"), helloSHA, false},
	}
	for _, tt := range tests {
		if same, why := sameID(tt.file, tt.id); same != tt.same {
			t.Errorf("sameID(%s, %q) = %v (%s), want %v", filepath.Base(tt.file), tt.id, same, why, tt.same)
		}
	}
}
