package qemu

import "testing"

func TestGuestURL(t *testing.T) {
	for _, tt := range []struct {
		in, guest, host string
		ok              bool
	}{
		{"https://127.0.0.1:8443", "https://10.0.2.100:8443", "127.0.0.1:8443", true},
		{"https://bulk.example.org:8443/base", "https://10.0.2.100:8443/base", "bulk.example.org:8443", true},
		{"https://[::1]:9000", "https://10.0.2.100:9000", "[::1]:9000", true},
		{"https://bulk.example.org", "https://10.0.2.100:443", "bulk.example.org:443", true},
		{"ftp://x", "", "", false},
		{"::", "", "", false},
		{"https://a,b:1", "", "", false},
		{"https:///x", "", "", false},
	} {
		g, h, err := guestURL(tt.in, MasterAddr)
		if (err == nil) != tt.ok || g != tt.guest || h != tt.host {
			t.Errorf("guestURL(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, g, h, err, tt.guest, tt.host, tt.ok)
		}
	}
}
