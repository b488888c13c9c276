package sign

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func hexSHA512(b []byte) string {
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:])
}

func TestComputeHashFile(t *testing.T) {
	data := make([]byte, 2*BlockSize+70000-2*BlockSize) // 70000 bytes: 2 blocks
	for i := range data {
		data[i] = byte(i * 7)
	}
	hf, err := ComputeHashFile("foo-1.0", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The exact text of spec §3.2, built independently of Marshal.
	want := "pkgsrc signature\n\nversion: 1\npkgname: foo-1.0\nalgorithm: SHA512\nblock size: 65536\nfile size: 70000\n\n" +
		hexSHA512(data[:65536]) + "\n" + hexSHA512(data[65536:]) + "\nend pkgsrc signature\n"
	if got := string(hf.Marshal()); got != want {
		t.Fatalf("hash file:\n%s\nwant:\n%s", got, want)
	}
	back, err := ParseHashFile([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if back.PkgName != "foo-1.0" || back.FileSize != 70000 || back.BlockSize != 65536 || len(back.Hashes) != 2 {
		t.Fatalf("parsed back as %+v", back)
	}
	if back.BlockLen(0) != 65536 || back.BlockLen(1) != 70000-65536 {
		t.Fatalf("block lengths %d %d", back.BlockLen(0), back.BlockLen(1))
	}
}

func TestComputeHashFileRefuses(t *testing.T) {
	for _, size := range []int64{65536, 131072, 3 * 65536} {
		_, err := ComputeHashFile("foo-1.0", bytes.NewReader(make([]byte, size)), size)
		if !errors.Is(err, ErrBlockMultiple) {
			t.Errorf("size %d: got %v, want ErrBlockMultiple", size, err)
		}
	}
	if _, err := ComputeHashFile("foo-1.0", bytes.NewReader(nil), 0); err == nil {
		t.Error("empty package accepted")
	}
	if _, err := ComputeHashFile("foo 1.0", bytes.NewReader([]byte("x")), 1); err == nil {
		t.Error("pkgname with a space accepted")
	}
	if _, err := ComputeHashFile("foo-1.0", bytes.NewReader([]byte("x")), 2); err == nil {
		t.Error("short input accepted")
	}
}

func TestParseHashFileErrors(t *testing.T) {
	h := hexSHA512([]byte("x"))
	good := "pkgsrc signature\n\nversion: 1\npkgname: foo-1.0\nalgorithm: SHA512\nblock size: 65536\nfile size: 1\n\n" + h + "\nend pkgsrc signature\n"
	if _, err := ParseHashFile([]byte(good)); err != nil {
		t.Fatalf("good file rejected: %v", err)
	}
	tests := []struct {
		name, in, want string
	}{
		{"version 2", strings.Replace(good, "version: 1", "version: 2", 1), "line 1-4"},
		{"empty pkgname", strings.Replace(good, "foo-1.0", "", 1), "empty pkgname"},
		{"space in pkgname", strings.Replace(good, "foo-1.0", "foo 1.0", 1), "non-printable or space"},
		{"sha256", strings.Replace(good, "SHA512", "SHA256", 1), "line 5-6"},
		{"small block", strings.Replace(good, "65536", "1023", 1), "minimum 1024"},
		{"signed block size", strings.Replace(good, "65536", "+65536", 1), "block size is not"},
		{"zero size", strings.Replace(good, "file size: 1", "file size: 0", 1), "at least 1"},
		{"huge size", strings.Replace(good, "file size: 1", "file size: 99999999999999999999", 1), "out of range"},
		{"missing empty line", strings.Replace(good, "file size: 1\n\n", "file size: 1\n", 1), "line 8"},
		{"uppercase hash", strings.Replace(good, h, strings.ToUpper(h), 1), "line 9"},
		{"short hash", strings.Replace(good, h, h[:127], 1), "hash lines"},
		{"too many blocks claimed", strings.Replace(good, "file size: 1", "file size: 65537", 1), "hash lines"},
		{"extra hash line", strings.Replace(good, h+"\n", h+"\n"+h+"\n", 1), "line 10"},
		{"no trailer", strings.TrimSuffix(good, "end pkgsrc signature\n"), "hash lines"},
		{"after trailer", good + "x", "after the trailer"},
		{"NUL after trailer", good + "\x00junk", "after the trailer"},
		{"CRLF", strings.ReplaceAll(good, "\n", "\r\n"), "line 1-4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHashFile([]byte(tt.in))
			if err == nil || !errors.Is(err, ErrHashFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrHashFile mentioning %q", err, tt.want)
			}
		})
	}
}

func FuzzParseHashFile(f *testing.F) {
	h := hexSHA512([]byte("x"))
	f.Add([]byte("pkgsrc signature\n\nversion: 1\npkgname: foo-1.0\nalgorithm: SHA512\nblock size: 65536\nfile size: 1\n\n" + h + "\nend pkgsrc signature\n"))
	f.Add([]byte("pkgsrc signature\n\nversion: 1\npkgname: a\nalgorithm: SHA512\nblock size: 1024\nfile size: 999999999999999\n\n"))
	f.Add([]byte("pkgsrc signature\n\nversion: 1\npkgname: "))
	f.Fuzz(func(t *testing.T, b []byte) {
		hf, err := ParseHashFile(b)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to something that parses the
		// same (numbers may lose leading zeros).
		again, err := ParseHashFile(hf.Marshal())
		if err != nil || again.PkgName != hf.PkgName || again.FileSize != hf.FileSize ||
			again.BlockSize != hf.BlockSize || len(again.Hashes) != len(hf.Hashes) {
			t.Fatalf("parsed %q, but its re-encoding parses as %+v, %v", b, again, err)
		}
	})
}
