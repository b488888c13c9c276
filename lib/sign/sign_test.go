package sign

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/ar"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var testSizes = []int{3001, 65537, 3*65536 + 1, 200000}

type signedCase struct {
	orig     []byte
	path     string
	origTime time.Time
}

// signSizes makes packages of testSizes, signs them with s and checks the
// report; it returns them for interop checks.
func signSizes(t *testing.T, s Signer) []signedCase {
	t.Helper()
	dir := t.TempDir()
	var cases []signedCase
	var files []string
	mtime := time.Unix(1763416988, 0)
	for i, size := range testSizes {
		// Not 16 bytes of inner name: binutils ar shows such a name
		// (stored without "#1/", as libarchive writes it) cut to 15.
		p := filepath.Join(dir, "testpkg"+string(rune('a'+i))+"-1.0.tgz")
		b := makePackage(t, p, "testpkg"+string(rune('a'+i))+"-1.0", size, uint64(i))
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, signedCase{orig: b, path: p, origTime: mtime})
		files = append(files, p)
	}
	rep, err := SignFiles(context.Background(), files, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Signed != len(files) {
		t.Fatalf("signed %d of %d: %+v", rep.Signed, len(files), rep.Outcomes)
	}
	for _, c := range cases {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(c.origTime) {
			t.Errorf("%s: signed file has mtime %v; it must keep the original's %v (pkgrun's age check)", c.path, fi.ModTime(), c.origTime)
		}
		meta, err := pkgfile.ReadMetaFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if !meta.Signed || meta.SignatureName != s.MemberName() {
			t.Fatalf("%s: pkgfile reads it as signed=%v %s", c.path, meta.Signed, meta.SignatureName)
		}
		// The ar headers carry the input's stat.
		f, _ := os.Open(c.path)
		a, err := ar.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			h, err := a.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !h.ModTime.Equal(c.origTime) || h.Mode != 0o100644 {
				t.Errorf("%s member %s: mtime %v mode %o, want the input's %v 100644", c.path, h.Name, h.ModTime, h.Mode, c.origTime)
			}
		}
		f.Close()
	}
	return cases
}

// checkContainerTools lists and extracts the container with binutils ar
// and bsdtar and compares the inner package with the original bytes; it
// returns +PKG_HASH and the signature as extracted by ar.
func checkContainerTools(t *testing.T, c signedCase, sigMember string) (hash, sig []byte) {
	t.Helper()
	pkgname := strings.TrimSuffix(filepath.Base(c.path), ".tgz")
	inner := pkgname + ".tmp.tgz"
	want := []string{HashMember, sigMember, inner}
	arProg := testenv.Program(t, "ar")
	bsdtar := testenv.Program(t, "bsdtar")
	out, err := exec.Command(arProg, "t", c.path).Output()
	if err != nil {
		t.Fatalf("ar t %s: %v", c.path, err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ar t: %q, want %q", got, want)
	}
	out, err = exec.Command(bsdtar, "-tf", c.path).Output()
	if err != nil {
		t.Fatalf("bsdtar -tf %s: %v", c.path, err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("bsdtar -tf: %q, want %q", got, want)
	}
	arInner, err := exec.Command(arProg, "p", c.path, inner).Output()
	if err != nil {
		t.Fatal(err)
	}
	tarInner, err := exec.Command(bsdtar, "-xOf", c.path, inner).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(arInner, c.orig) || !bytes.Equal(tarInner, c.orig) {
		t.Fatalf("%s: inner package extracted by ar (%d bytes) / bsdtar (%d bytes) differs from the %d-byte input",
			c.path, len(arInner), len(tarInner), len(c.orig))
	}
	if hash, err = exec.Command(arProg, "p", c.path, HashMember).Output(); err != nil {
		t.Fatal(err)
	}
	if sig, err = exec.Command(arProg, "p", c.path, sigMember).Output(); err != nil {
		t.Fatal(err)
	}
	hf, err := ParseHashFile(hash)
	if err != nil {
		t.Fatal(err)
	}
	if hf.PkgName != pkgname || hf.FileSize != int64(len(c.orig)) {
		t.Fatalf("+PKG_HASH says %s, %d bytes", hf.PkgName, hf.FileSize)
	}
	return hash, sig
}

func TestGPGInterop(t *testing.T) {
	k := testGPG(t)
	s, err := LoadGPGSigner(k.Secret, pass(k.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	cases := signSizes(t, s)
	v, err := NewGPGVerifier(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh GnuPG home that only knows the exported public key.
	home := t.TempDir()
	env := []string{"GNUPGHOME=" + home}
	run(t, home, env, "gpg", "--batch", "--import", k.Public)
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), env...)
		_ = cmd.Run()
	})
	for _, c := range cases {
		res := verifyFile(t, c.path, v)
		if !res.OK() || res.PkgAdd != "accept" {
			t.Fatalf("%s: %+v", c.path, res)
		}
		hash, sig := checkContainerTools(t, c, GPGMember)
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "hash"), hash, 0o644)
		os.WriteFile(filepath.Join(dir, "sig.asc"), sig, 0o644)
		out := run(t, dir, env, "gpg", "--batch", "--status-fd", "1", "--verify", "sig.asc", "hash")
		if !strings.Contains(out, "[GNUPG:] GOODSIG") || !strings.Contains(out, "[GNUPG:] VALIDSIG") {
			t.Fatalf("gpg --verify: %s", out)
		}
		// A binary-document signature (class 0x00), SHA-512 (digest algo
		// 10), and no notation gpg would not write.
		pk := run(t, dir, env, "gpg", "--batch", "--list-packets", "sig.asc")
		if !strings.Contains(pk, "sigclass 0x00") || !strings.Contains(pk, "digest algo 10") || strings.Contains(pk, "notation") {
			t.Errorf("signature packet is not what gpg --detach-sign writes:\n%s", pk)
		}
		// And gpg rejects the signature over a changed hash file.
		os.WriteFile(filepath.Join(dir, "hash"), append(hash[:len(hash)-2:len(hash)-2], 'X', '\n'), 0o644)
		cmd := exec.Command("gpg", "--batch", "--verify", "sig.asc", "hash")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		if err := cmd.Run(); err == nil {
			t.Fatal("gpg accepted the signature over a changed +PKG_HASH")
		}
	}
}

func TestX509Interop(t *testing.T) {
	k := testX509(t)
	for _, tc := range []struct{ name, cert, key string }{
		{"rsa", k.Leaf, k.LeafKey},
		{"ecdsa", k.ECLeaf, k.ECKey},
		{"pkcs8-encrypted", k.Leaf, k.LeafEncKey},
		{"legacy-encrypted", k.Leaf, k.LeafLegacyEncKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadX509Signer(tc.key, tc.cert, pass("secret"))
			if err != nil {
				t.Fatal(err)
			}
			cases := signSizes(t, s)
			v, err := NewX509Verifier(k.CA, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cases[:2] {
				res := verifyFile(t, c.path, v)
				if !res.OK() || res.PkgAdd != "accept" {
					t.Fatalf("%s: %+v", c.path, res)
				}
				hash, sig := checkContainerTools(t, c, X509Member)
				dir := t.TempDir()
				os.WriteFile(filepath.Join(dir, "hash"), hash, 0o644)
				os.WriteFile(filepath.Join(dir, "sig.pem"), sig, 0o644)
				if !bytes.HasPrefix(sig, []byte("-----BEGIN PKCS7-----\n")) {
					t.Fatalf("signature is not PEM PKCS7: %.40q", sig)
				}
				// OpenSSL's verify applies the S/MIME signing purpose by
				// default, which a codeSigning-only certificate does not
				// have; -purpose any checks the signature and the chain.
				for _, tool := range []string{"smime", "cms"} {
					out := run(t, dir, nil, "openssl", tool, "-verify", "-binary", "-inform", "PEM", "-in", "sig.pem",
						"-content", "hash", "-CAfile", k.CA, "-purpose", "any", "-out", "/dev/null")
					if !strings.Contains(out, "Verification successful") {
						t.Fatalf("openssl %s -verify: %s", tool, out)
					}
				}
				// No signed attributes (PKCS7_NOATTR), signer certificate included.
				out := run(t, dir, nil, "openssl", "cms", "-cmsout", "-print", "-inform", "PEM", "-in", "sig.pem")
				if !regexp.MustCompile(`\n\s*signedAttrs:\s*<ABSENT>`).MatchString(out) || !regexp.MustCompile(`eContent:\s*<ABSENT>`).MatchString(out) {
					t.Errorf("signature carries signed attributes:\n%s", out)
				}
				if !strings.Contains(out, "pkgsign ") {
					t.Errorf("signer certificate not included:\n%s", out)
				}
				// A changed hash file fails openssl's check.
				os.WriteFile(filepath.Join(dir, "hash"), append(bytes.Clone(hash[:len(hash)-2]), 'X', '\n'), 0o644)
				cmd := exec.Command("openssl", "smime", "-verify", "-binary", "-inform", "PEM", "-in", "sig.pem",
					"-content", "hash", "-CAfile", k.CA, "-purpose", "any", "-out", "/dev/null")
				cmd.Dir = dir
				if err := cmd.Run(); err == nil {
					t.Fatal("openssl accepted the signature over a changed +PKG_HASH")
				}
			}
		})
	}
}

// TestOpenSSLDefaultPurpose records what OpenSSL does without -purpose
// (pkg_install's PKCS7_verify call passes none): see docs/signing.md.
func TestOpenSSLDefaultPurpose(t *testing.T) {
	k := testX509(t)
	s, err := LoadX509Signer(k.LeafKey, k.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := []byte("pkgsrc signature\n")
	sig, err := s.Sign(hash)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hash"), hash, 0o644)
	os.WriteFile(filepath.Join(dir, "sig.pem"), sig, 0o644)
	cmd := exec.Command("openssl", "smime", "-verify", "-binary", "-inform", "PEM", "-in", "sig.pem",
		"-content", "hash", "-CAfile", k.CA, "-out", "/dev/null")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("openssl smime -verify without -purpose: err=%v\n%s", err, out)
}

func verifyFile(t *testing.T, path string, v Verifier) *Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := VerifyPackage(path, f, v)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRefuseBlockMultiple(t *testing.T) {
	k := testX509(t)
	s, err := LoadX509Signer(k.LeafKey, k.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "exact-1.0.tgz")
	orig := makePackage(t, p, "exact-1.0", 131072, 7)
	rep, err := SignFiles(context.Background(), []string{p}, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 1 || !strings.Contains(rep.Outcomes[0].Reason, "exact multiple of 65536") {
		t.Fatalf("131072-byte package: %+v", rep.Outcomes)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, orig) {
		t.Fatal("refused package was changed")
	}
	// A container forged around such a package is predicted as rejected.
	var buf bytes.Buffer
	hf := &HashFile{PkgName: "exact-1.0", BlockSize: BlockSize, FileSize: 131072,
		Hashes: []string{hexSHA512(orig[:65536]), hexSHA512(orig[65536:])}}
	hash := hf.Marshal()
	sig, _ := s.Sign(hash)
	aw := ar.NewWriter(&buf)
	for _, m := range []struct {
		n string
		d []byte
	}{{HashMember, hash}, {X509Member, sig}, {"exact-1.0.tmp.tgz", orig}} {
		aw.WriteHeader(&ar.Header{Name: m.n, Mode: 0o100644, Size: int64(len(m.d))})
		aw.Write(m.d)
	}
	aw.Close()
	res, err := VerifyPackage("forged", &buf, s.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.PkgAdd != "reject" || !strings.Contains(strings.Join(res.Problems, "\n"), "Invalid signature of block 1") {
		t.Fatalf("forged 131072-byte package: %+v", res)
	}
}

func TestBadKeys(t *testing.T) {
	g := testGPG(t)
	x := testX509(t)
	tests := []struct {
		name string
		load func() error
		want string
	}{
		{"gpg wrong passphrase", func() error { _, err := LoadGPGSigner(g.Secret, pass("wrong")); return err }, "wrong passphrase"},
		{"gpg no passphrase source", func() error { _, err := LoadGPGSigner(g.Secret, nil); return err }, "passphrase-protected"},
		{"gpg public key as secret", func() error { _, err := LoadGPGSigner(g.Public, nil); return err }, "public key"},
		{"gpg given an RSA PEM key", func() error { _, err := LoadGPGSigner(x.LeafKey, nil); return err }, "PEM"},
		{"gpg given a certificate", func() error { _, err := LoadGPGSigner(x.Leaf, nil); return err }, "not an armoured OpenPGP secret key"},
		{"x509 CA certificate", func() error { _, err := LoadX509Signer(x.CAKey, x.CA, nil); return err }, "CA keys are not valid"},
		{"x509 no codeSigning", func() error { _, err := LoadX509Signer(x.NoEKUKey, x.NoEKU, nil); return err }, "CODE SIGNING"},
		{"x509 extra EKU", func() error { _, err := LoadX509Signer(x.ExtraEKUKey, x.ExtraEKU, nil); return err }, "emailProtection"},
		{"x509 key mismatch", func() error { _, err := LoadX509Signer(x.OtherKey, x.Leaf, nil); return err }, "doesn't match"},
		{"x509 two certificates", func() error { _, err := LoadX509Signer(x.LeafKey, x.Chain2, nil); return err }, "exactly one"},
		{"x509 wrong passphrase pkcs8", func() error { _, err := LoadX509Signer(x.LeafEncKey, x.Leaf, pass("wrong")); return err }, "passphrase"},
		{"x509 wrong passphrase legacy", func() error { _, err := LoadX509Signer(x.LeafLegacyEncKey, x.Leaf, pass("wrong")); return err }, "passphrase"},
		{"x509 no passphrase source", func() error { _, err := LoadX509Signer(x.LeafEncKey, x.Leaf, nil); return err }, "passphrase-protected"},
		{"x509 gpg key as key", func() error { _, err := LoadX509Signer(g.PlainSecret, x.Leaf, nil); return err }, "OpenPGP"},
		{"x509 cert as key", func() error { _, err := LoadX509Signer(x.Leaf, x.Leaf, nil); return err }, "CERTIFICATE, not a private key"},
		{"x509 missing file", func() error { _, err := LoadX509Signer("/nonexistent.key", x.Leaf, nil); return err }, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load()
			if err == nil || !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrKey mentioning %q", err, tt.want)
			}
		})
	}
}

// TestVerifierRejectsBadSigners signs with certificates pkg_install refuses
// (bypassing LoadX509Signer's checks) and wants the verifier to say why.
func TestVerifierRejectsBadSigners(t *testing.T) {
	x := testX509(t)
	v, err := NewX509Verifier(x.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	hash := []byte("pkgsrc signature\n")
	for _, tc := range []struct{ cert, key, want string }{
		{x.NoEKU, x.NoEKUKey, "CODE SIGNING"},
		{x.ExtraEKU, x.ExtraEKUKey, "CODE SIGNING"},
		{x.CA, x.CAKey, "CA keys"},
	} {
		certs, err := ReadCertificates(tc.cert)
		if err != nil {
			t.Fatal(err)
		}
		key, err := readPrivateKey(tc.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := (&X509Signer{Cert: certs[0], Key: key}).Sign(hash)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(X509Member, hash, sig); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", filepath.Base(tc.cert), err, tc.want)
		}
	}
	// A signature by a certificate from another CA fails the chain.
	g, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := g.Sign(hash)
	other := &X509Verifier{Anchors: mustPool(t, x.Other)}
	if _, err := other.Verify(X509Member, hash, sig); err == nil {
		t.Error("signature accepted against an unrelated anchor")
	}
	if _, err := v.Verify(GPGMember, hash, sig); err == nil || !strings.Contains(err.Error(), "X.509 trust anchor") {
		t.Errorf("gpg member with x509 verifier: %v", err)
	}
}

// TestGnuPGMadeSignature builds a container around a signature made by
// gpg --detach-sign --armor itself (what pkg_admin gpg-sign-package
// stores) and wants the verifier, armour checks included, to accept it.
func TestGnuPGMadeSignature(t *testing.T) {
	g := testGPG(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "gnupg-1.0.tgz")
	orig := makePackage(t, p, "gnupg-1.0", 70001, 5)
	hf, err := ComputeHashFile("gnupg-1.0", bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	hash := hf.Marshal()
	os.WriteFile(filepath.Join(dir, "hash"), hash, 0o644)
	env := []string{"GNUPGHOME=" + filepath.Join(keysDir, "gnupg")}
	run(t, dir, env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", "plain@example.org",
		"--digest-algo", "SHA512", "--detach-sign", "--armor", "--output", "sig.asc", "hash")
	sig, err := os.ReadFile(filepath.Join(dir, "sig.asc"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw := ar.NewWriter(&buf)
	for _, m := range []struct {
		n string
		d []byte
	}{{HashMember, hash}, {GPGMember, sig}, {"gnupg-1.0.tmp.tgz", orig}} {
		if err := aw.WriteHeader(&ar.Header{Name: m.n, ModTime: time.Unix(1700000000, 0), Mode: 0o100644, Size: int64(len(m.d))}); err != nil {
			t.Fatal(err)
		}
		aw.Write(m.d)
	}
	aw.Close()
	v, err := NewGPGVerifier(g.PlainPub)
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyPackage("gnupg-made", &buf, v)
	if err != nil || !res.OK() || res.PkgAdd != "accept" {
		t.Fatalf("container with gpg's own signature: %v %+v", err, res)
	}
}

// TestPkgnameAndOrder: the pkgname comes from +CONTENTS' @name (not the
// file name), and a package whose first member is not +CONTENTS is
// refused, as pkg_admin refuses it.
func TestPkgnameAndOrder(t *testing.T) {
	x := testX509(t)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "renamed.tgz")
	makePackage(t, p, "realname-2.0nb1", 5000, 1)
	if rep, err := SignFiles(context.Background(), []string{p}, s, Options{}); err != nil || rep.Signed != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
	res := verifyFile(t, p, s.Verifier())
	if !res.OK() || res.PkgName != "realname-2.0nb1" || res.InnerName != "realname-2.0nb1.tmp.tgz" {
		t.Fatalf("%+v", res)
	}

	// +COMMENT before +CONTENTS.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range []struct{ n, d string }{{"+COMMENT", "c\n"}, {"+CONTENTS", "@name bad-1.0\n"}, {"+DESC", "d\n"}} {
		tw.WriteHeader(&tar.Header{Name: m.n, Mode: 0o644, Size: int64(len(m.d)), Typeflag: tar.TypeReg})
		tw.Write([]byte(m.d))
	}
	tw.Close()
	bad := filepath.Join(dir, "bad-1.0.tar")
	os.WriteFile(bad, buf.Bytes(), 0o644)
	rep, err := SignFiles(context.Background(), []string{bad}, s, Options{})
	if err != nil || rep.Failed != 1 || !strings.Contains(rep.Outcomes[0].Reason, "+CONTENTS") {
		t.Fatalf("misordered package: %v %+v", err, rep.Outcomes)
	}
	if b, _ := os.ReadFile(bad); !bytes.Equal(b, buf.Bytes()) {
		t.Fatal("refused package changed")
	}
}

func TestGPGKeyWarning(t *testing.T) {
	g := testGPG(t)
	rsa, err := LoadGPGSigner(g.Secret, pass(g.Passphrase))
	if err != nil {
		t.Fatal(err)
	}
	if w := rsa.Warning(); w != "" {
		t.Errorf("RSA key warned: %s", w)
	}
	ed, err := LoadGPGSigner(g.PlainSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := ed.Warning(); !strings.Contains(w, "netpgpverify") {
		t.Errorf("Ed25519 key: warning %q", w)
	}
}

// TestOpenSSLMadeSignature builds a container around a signature made by
// OpenSSL itself the way pkg_admin x509-sign-package makes it
// (PKCS7_sign with PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY, PEM) and
// wants the verifier, form checks included, to accept it.
func TestOpenSSLMadeSignature(t *testing.T) {
	x := testX509(t)
	dir := t.TempDir()
	orig := makePackage(t, filepath.Join(dir, "ossl-1.0.tgz"), "ossl-1.0", 70001, 6)
	hf, err := ComputeHashFile("ossl-1.0", bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	hash := hf.Marshal()
	os.WriteFile(filepath.Join(dir, "hash"), hash, 0o644)
	run(t, dir, nil, "openssl", "smime", "-sign", "-binary", "-noattr", "-in", "hash", "-signer", x.Leaf,
		"-inkey", x.LeafKey, "-outform", "PEM", "-out", "sig.pem")
	sig, err := os.ReadFile(filepath.Join(dir, "sig.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw := ar.NewWriter(&buf)
	for _, m := range []struct {
		n string
		d []byte
	}{{HashMember, hash}, {X509Member, sig}, {"ossl-1.0.tmp.tgz", orig}} {
		if err := aw.WriteHeader(&ar.Header{Name: m.n, ModTime: time.Unix(1700000000, 0), Mode: 0o100644, Size: int64(len(m.d))}); err != nil {
			t.Fatal(err)
		}
		aw.Write(m.d)
	}
	aw.Close()
	v, err := NewX509Verifier(x.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyPackage("openssl-made", &buf, v)
	if err != nil || !res.OK() || res.PkgAdd != "accept" {
		t.Fatalf("container with OpenSSL's own signature: %v %+v", err, res)
	}
}
