package distfile

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, in, err string
		files         []string // distfiles
		size          int64
	}{
		{name: "pkgsrc", in: "$NetBSD: distinfo,v 1.1 $\n\nSHA1 (foo-1.0.tar.gz) = AB12\nRMD160 (foo-1.0.tar.gz) = cd\nSize (foo-1.0.tar.gz) = 491 bytes\nSHA1 (patch-aa) = 00\n",
			files: []string{"foo-1.0.tar.gz"}, size: 491},
		{name: "subdir", in: "SHA512 (sub/x.zip) = 01\nSize (sub/x.zip) = 3 bytes\n", files: []string{"sub/x.zip"}, size: 3},
		{name: "paren in name", in: "SHA256 (a(b).tgz) = 01\n", files: []string{"a(b).tgz"}, size: -1},
		{name: "empty", in: "$NetBSD$\n"},
		{name: "garbage", in: "hello\n", err: "x:1: not ALGORITHM"},
		{name: "dotdot", in: "SHA1 (../etc/passwd) = 00\n", err: "bad file name"},
		{name: "absolute", in: "SHA1 (/etc/passwd) = 00\n", err: "bad file name"},
		{name: "bad size", in: "Size (a) = 12\n", err: "ends in ' bytes'"},
		{name: "not hex", in: "SHA1 (a) = xyz\n", err: "not hexadecimal"},
		{name: "two sizes", in: "Size (a) = 1 bytes\nSize (a) = 2 bytes\n", err: "second, different Size"},
		{name: "two digests", in: "SHA1 (a) = 01\nSHA1 (a) = 02\n", err: "second, different SHA1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse(strings.NewReader(c.in), "x")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range d.Distfiles() {
				got = append(got, e.Name)
				if e.Size != c.size {
					t.Errorf("%s: size %d, want %d", e.Name, e.Size, c.size)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.files) {
				t.Errorf("distfiles %v, want %v", got, c.files)
			}
		})
	}
}

func entryFor(name string, data []byte) Entry {
	s2 := sha256.Sum256(data)
	s5 := sha512.Sum512(data)
	return Entry{Name: name, Size: int64(len(data)), Sums: map[string]string{
		"SHA256": hex.EncodeToString(s2[:]), "SHA512": hex.EncodeToString(s5[:]),
	}}
}

func TestVerify(t *testing.T) {
	data := []byte("the distfile\n")
	e := entryFor("a.tar.gz", data)
	if err := e.Verify(strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		data string
		e    Entry
		want error
	}{
		"one byte changed": {"the distfilE\n", e, ErrMismatch},
		"shorter":          {"the distfile", e, ErrMismatch},
		"longer":           {"the distfile\n\n", e, ErrMismatch},
		"wrong size only":  {string(data), Entry{Name: "a", Size: 3, Sums: e.Sums}, ErrMismatch},
		"md5 only":         {string(data), Entry{Name: "a", Size: -1, Sums: map[string]string{"MD5": "00"}}, ErrUnverifiable},
		"no digest":        {string(data), Entry{Name: "a", Size: 13}, ErrUnverifiable},
	} {
		if err := c.e.Verify(strings.NewReader(c.data)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// Every algorithm pkgsrc writes is checked.
	for alg, sum := range map[string]string{
		"SHA1":    "b1b1c3d4fc4c3cf6b3e0a7e3c8b7a0e5b7e0d1c2",
		"RMD160":  "0000000000000000000000000000000000000000",
		"BLAKE2s": "00",
	} {
		e := Entry{Name: "a", Size: -1, Sums: map[string]string{alg: sum}}
		if err := e.Verify(strings.NewReader(string(data))); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: %v, want a mismatch", alg, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("$NetBSD$\n\nSHA1 (foo-1.0.tar.gz) = ab\nSize (foo-1.0.tar.gz) = 491 bytes\n")
	f.Add("SHA512 (a/b) = 0\nSHA1 (patch-aa) = 1\n")
	f.Add("Size (x) = 99999999999999999999 bytes\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := Parse(strings.NewReader(in), "f")
		if err != nil {
			return
		}
		for _, e := range d.Entries {
			if CheckName(e.Name) != nil {
				t.Fatalf("accepted bad name %q", e.Name)
			}
			if got, ok := d.Lookup(e.Name); !ok || got.Name != e.Name {
				t.Fatalf("lookup %q", e.Name)
			}
			_ = e.Verify(strings.NewReader(in))
		}
	})
}
