package store

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"All/zlib-1.3.tgz", true},
		{"bulklog/foo-1.0/build.log", true},
		{"top", true},
		{".hidden", true},
		{"a..b/c", true},
		{"", false},
		{"/abs", false},
		{"a/", false},
		{"a//b", false},
		{"..", false},
		{"a/../b", false},
		{"./a", false},
		{"a/.", false},
		{"a\\b", false},
		{"a\x00", false},
		{"All/" + TempPrefix + "1", false},
	} {
		err := CheckName(c.name)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalidName)) {
			t.Errorf("CheckName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, c := range []struct {
		prefix string
		ok     bool
	}{
		{"", true}, {"All/", true}, {"All/zlib-", true}, {"bulklog/foo/", true},
		{"/", false}, {"/All/", false}, {"../", false}, {"a//", false}, {"a/../", false},
	} {
		if err := CheckPrefix(c.prefix); (err == nil) != c.ok {
			t.Errorf("CheckPrefix(%q) = %v, want ok=%v", c.prefix, err, c.ok)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("auth failed")
	p := Permanent(base)
	if !IsPermanent(p) || !errors.Is(p, base) || p.Error() != base.Error() {
		t.Errorf("Permanent(%v) = %v", base, p)
	}
	if IsPermanent(base) || Permanent(nil) != nil {
		t.Error("plain error counted as permanent, or Permanent(nil) != nil")
	}
}

// A valid name never escapes the root however it is joined.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"All/x.tgz", "../x", "a//b", "/", "a/./b", ".pkgbulk-tmp-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckName(name) != nil {
			return
		}
		for _, e := range strings.Split(name, "/") {
			if e == "" || e == "." || e == ".." || strings.HasPrefix(e, TempPrefix) {
				t.Fatalf("CheckName accepted %q", name)
			}
		}
		if CheckPrefix(name) != nil || CheckPrefix(name+"/") != nil {
			t.Fatalf("valid name %q is not a valid prefix", name)
		}
	})
}
