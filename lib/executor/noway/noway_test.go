package noway

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		entry string
		err   string // "" : valid
	}{
		{"www/firefox*", ""},
		{"lang/gcc1[0-4]", ""},
		{"firefox-[0-9]*", ""},
		{"gcc>=12", ""},
		{"{firefox,thunderbird}-[0-9]*", ""},
		{"firefox", ""},
		{"", "want a pkgpath glob"},
		{" www/firefox", "want a pkgpath glob"},
		{"www/fire fox", "no spaces"},
		{"www/firefox/x", "CATEGORY/NAME"},
		{"/firefox", "CATEGORY/NAME"},
		{"www/", "CATEGORY/NAME"},
		{"www/[firefox", "bad pkgpath glob"},
		{"{firefox-[0-9]*", "bad package pattern"},
		{"firefox-[0-9*", "unclosed '['"},
	} {
		_, err := Parse([]string{"www/ok*", tc.entry})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.entry, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.entry, err, tc.err)
		}
	}
}

func TestAccepts(t *testing.T) {
	l, err := Parse([]string{"www/firefox*", "lang/gcc1[0-4]", "thunderbird-[0-9]*", "rust>=1.80", "libreoffice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pkgpath, pkgname string
		want             bool
	}{
		{"www/firefox", "firefox-128.0", false},
		{"www/firefox-esr", "firefox-esr-115.0", false},
		{"www/seamonkey", "seamonkey-2.53", true},
		{"lang/gcc12", "gcc12-12.4.0", false},
		{"lang/gcc9", "gcc9-9.5.0", true},
		{"lang/gcc15", "gcc15-15.1", true},
		{"mail/thunderbird", "thunderbird-128.1", false},
		{"mail/thunderbird-l10n", "thunderbird-l10n-128.1", true},
		{"lang/rust", "rust-1.86.0", false},
		{"lang/rust", "rust-1.79.0", true},
		{"misc/libreoffice", "libreoffice-24.8.1", false}, // a bare base name matches every version
		{"misc/libreoffice-l10n", "libreoffice-l10n-24.8", true},
		{"devel/foo", "foo-1.0", true},
	} {
		if got := l.Accepts(tc.pkgpath, tc.pkgname); got != tc.want {
			t.Errorf("Accepts(%s, %s) = %v, want %v", tc.pkgpath, tc.pkgname, got, tc.want)
		}
	}
	var empty List
	if !empty.Accepts("www/firefox", "firefox-1") || !empty.Empty() {
		t.Error("the empty list refuses something")
	}
	if got := l.Entries(); len(got) != 5 || got[0] != "www/firefox*" {
		t.Errorf("Entries: %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"www/firefox*", "firefox-[0-9]*", "{a,b}-[0-9]*", "gcc>=12<13", "[", "a/[b"} {
		f.Add(s, "www/firefox", "firefox-1.0")
	}
	f.Fuzz(func(t *testing.T, entry, pkgpath, pkgname string) {
		l, err := Parse([]string{entry})
		if err != nil {
			return
		}
		l.Accepts(pkgpath, pkgname)
		if len(l.Entries()) != 1 {
			t.Errorf("%q: %d entries", entry, len(l.Entries()))
		}
	})
}
