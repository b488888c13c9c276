package pull

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"", "a=b", "os=netbsd,arch=x86_64", "a=b,,c=d", "=x", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseLabels(s)
		if err != nil {
			return
		}
		// What parses formats back to something that parses the same.
		m2, err := ParseLabels(FormatLabels(m))
		if err != nil || len(m2) != len(m) {
			t.Fatalf("%q: round trip %v %v", s, m2, err)
		}
		for k, v := range m {
			if m2[k] != v {
				t.Fatalf("%q: %s=%q became %q", s, k, v, m2[k])
			}
		}
	})
}

func FuzzCompileNoWay(f *testing.F) {
	for _, s := range []string{"lang/rust", "www/firefox*", "gcc1[0-3]", "qt5-qtbase>=5.15", "{a,b}-[0-9]*", "[", "a>=", "x/"} {
		f.Add(s, "lang/rust", "rust-1.80.0")
	}
	f.Fuzz(func(t *testing.T, entry, pkgpath, pkgname string) {
		n, err := CompileNoWay(strings.Split(entry, "\n"))
		if err != nil {
			return
		}
		n.Refuses(pkgpath, pkgname) // must not panic
	})
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add(strings.Repeat("AB:", 31) + "AB")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseFingerprint(s)
		if err == nil && len(b) != 32 {
			t.Fatalf("%q: %d bytes", s, len(b))
		}
	})
}

// FuzzRequests: every request document the server decodes either parses
// or is refused; none panics.
func FuzzRequests(f *testing.F) {
	f.Add(`{"version":1,"token":"x","cores":2,"labels":{"a":"b"},"no_way":["lang/rust"]}`)
	f.Add(`{"tree_revision":"abc","wait":"5s"}`)
	f.Add(`{"exit":{"code":0},"stdout":"{}"}`)
	f.Add(`{"wait":"-5s"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var r RegisterRequest
		var l LeaseRequest
		var rep ResultReport
		json.Unmarshal([]byte(s), &r)
		json.Unmarshal([]byte(s), &l)
		json.Unmarshal([]byte(s), &rep)
		if l.Wait < 0 {
			t.Fatalf("%q: negative wait parsed", s)
		}
		CompileNoWay(r.NoWay)
	})
}
