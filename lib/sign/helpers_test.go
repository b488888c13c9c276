package sign

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// keysDir holds the keys every test shares; TestMain creates and removes it.
var keysDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "pkgsign-keys-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	keysDir = d
	code := m.Run()
	if _, err := os.Stat(filepath.Join(d, "gnupg")); err == nil {
		kill := exec.Command("gpgconf", "--kill", "gpg-agent")
		kill.Env = append(os.Environ(), "GNUPGHOME="+filepath.Join(d, "gnupg"))
		_ = kill.Run()
	}
	os.RemoveAll(d)
	os.Exit(code)
}

func run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// gpgKeys are made once with the real gpg: a passphrase-protected ed25519
// signing key and an unprotected one, exported armoured.
type gpgKeys struct {
	Secret, Public        string // protected key ("secret" is its passphrase)
	PlainSecret, PlainPub string // unprotected key
	Passphrase            string
	err                   string
}

var (
	gpgOnce sync.Once
	gpgK    gpgKeys
)

func testGPG(t testing.TB) gpgKeys {
	t.Helper()
	gpg := testenv.Program(t, "gpg")
	gpgOnce.Do(func() {
		gpgK = makeGPGKeys(t, gpg)
	})
	if gpgK.err != "" {
		t.Fatal(gpgK.err)
	}
	return gpgK
}

func makeGPGKeys(t testing.TB, gpg string) gpgKeys {
	k := gpgKeys{Passphrase: "secret"}
	home := filepath.Join(keysDir, "gnupg")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return gpgKeys{err: err.Error()}
	}
	env := []string{"GNUPGHOME=" + home}
	g := func(args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--batch", "--pinentry-mode", "loopback"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			k.err = fmt.Sprintf("gpg %v: %v", args, err)
		}
		return out
	}
	// RSA for the protected key (what pkg_install's netpgpverify knows),
	// Ed25519 for the plain one: both kinds are signed and checked by gpg.
	g("--passphrase", "secret", "--quick-gen-key", "Pkgsign Test <protected@example.org>", "rsa2048", "sign", "never")
	g("--passphrase", "", "--quick-gen-key", "Pkgsign Plain <plain@example.org>", "ed25519", "sign", "never")
	write := func(name string, b []byte) string {
		p := filepath.Join(keysDir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			k.err = err.Error()
		}
		return p
	}
	k.Secret = write("gpg-secret.asc", g("--passphrase", "secret", "--armor", "--export-secret-keys", "protected@example.org"))
	k.Public = write("gpg-public.asc", g("--armor", "--export", "protected@example.org"))
	k.PlainSecret = write("gpg-plain-secret.asc", g("--passphrase", "", "--armor", "--export-secret-keys", "plain@example.org"))
	k.PlainPub = write("gpg-plain-public.asc", g("--armor", "--export", "plain@example.org"))
	stopAgent := exec.Command("gpgconf", "--kill", "gpg-agent")
	stopAgent.Env = append(os.Environ(), env...)
	_ = stopAgent.Run()
	return k
}

// x509Keys are made once with the real openssl: a CA, a good codeSigning
// leaf (plain and passphrase-protected key, PKCS#8 PBES2 and legacy PEM
// encryption), an EC leaf, and certificates pkg_install rejects.
type x509Keys struct {
	CA, CAKey                    string
	Leaf, LeafKey                string
	LeafEncKey, LeafLegacyEncKey string // passphrase "secret"
	ECLeaf, ECKey                string
	NoEKU, NoEKUKey              string // serverAuth only
	ExtraEKU, ExtraEKUKey        string // codeSigning + emailProtection
	Other, OtherKey              string // second good leaf, another key
	Chain2                       string // leaf + CA in one file
	err                          string
}

var (
	x509Once sync.Once
	x509K    x509Keys
)

func testX509(t testing.TB) x509Keys {
	t.Helper()
	openssl := testenv.Program(t, "openssl")
	x509Once.Do(func() { x509K = makeX509Keys(t, openssl) })
	if x509K.err != "" {
		t.Fatal(x509K.err)
	}
	return x509K
}

func makeX509Keys(t testing.TB, openssl string) x509Keys {
	d := filepath.Join(keysDir, "x509")
	var k x509Keys
	if err := os.MkdirAll(d, 0o700); err != nil {
		return x509Keys{err: err.Error()}
	}
	o := func(args ...string) {
		if k.err != "" {
			return
		}
		cmd := exec.Command(openssl, args...)
		cmd.Dir = d
		if out, err := cmd.CombinedOutput(); err != nil {
			k.err = fmt.Sprintf("openssl %v: %v\n%s", args, err, out)
		}
	}
	p := func(n string) string { return filepath.Join(d, n) }
	o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
		"-subj", "/CN=pkgsign test CA", "-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign")
	leaf := func(name, keyArgs, eku string) {
		o(append([]string{"req", "-new", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=pkgsign " + name},
			strings.Fields(keyArgs)...)...)
		ext := "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
		if eku != "" {
			ext += "extendedKeyUsage=" + eku + "\n"
		}
		if err := os.WriteFile(p(name+".ext"), []byte(ext), 0o600); err != nil {
			k.err = err.Error()
		}
		o("x509", "-req", "-in", name+".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
			"-out", name+".pem", "-days", "30", "-extfile", name+".ext")
	}
	leaf("leaf", "-newkey rsa:2048", "codeSigning")
	leaf("other", "-newkey rsa:2048", "codeSigning")
	leaf("ec", "-newkey ec -pkeyopt ec_paramgen_curve:P-256", "codeSigning")
	leaf("noeku", "-newkey rsa:2048", "serverAuth")
	leaf("extraeku", "-newkey rsa:2048", "codeSigning,emailProtection")
	o("pkey", "-in", "leaf.key", "-aes256", "-passout", "pass:secret", "-out", "leaf-enc.key")
	o("rsa", "-in", "leaf.key", "-aes256", "-traditional", "-passout", "pass:secret", "-out", "leaf-legacy-enc.key")
	if k.err != "" {
		return k
	}
	ca, _ := os.ReadFile(p("ca.pem"))
	lf, _ := os.ReadFile(p("leaf.pem"))
	if err := os.WriteFile(p("chain2.pem"), append(lf, ca...), 0o600); err != nil {
		k.err = err.Error()
	}
	k.CA, k.CAKey = p("ca.pem"), p("ca.key")
	k.Leaf, k.LeafKey = p("leaf.pem"), p("leaf.key")
	k.LeafEncKey, k.LeafLegacyEncKey = p("leaf-enc.key"), p("leaf-legacy-enc.key")
	k.ECLeaf, k.ECKey = p("ec.pem"), p("ec.key")
	k.NoEKU, k.NoEKUKey = p("noeku.pem"), p("noeku.key")
	k.ExtraEKU, k.ExtraEKUKey = p("extraeku.pem"), p("extraeku.key")
	k.Other, k.OtherKey = p("other.pem"), p("other.key")
	k.Chain2 = p("chain2.pem")
	return k
}

func pass(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

// makePackage writes a real gzip-compressed package (tar with +CONTENTS
// first, as pkg_create orders it) of exactly size bytes: the payload is
// random, and the gzip header's extra field takes up the difference.
func makePackage(t testing.TB, path, pkgname string, size int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	payloadLen := max(size-3000, 16)
	for try := 0; try < 20; try++ {
		b := buildPackage(t, pkgname, payloadLen, rng, nil)
		extra := size - len(b) - 2 // the extra field costs 2 length bytes
		if extra >= 0 && extra <= 65535 {
			b = buildPackage(t, pkgname, payloadLen, rand.New(rand.NewPCG(seed, 42)), make([]byte, extra))
			if len(b) != size {
				t.Fatalf("package is %d bytes, wanted %d", len(b), size)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return b
		}
		if extra < 0 {
			payloadLen += extra - 64
		} else {
			payloadLen += extra - 1000
		}
		rng = rand.New(rand.NewPCG(seed, 42))
		if payloadLen < 1 {
			t.Fatalf("cannot make a package of %d bytes", size)
		}
	}
	t.Fatalf("cannot make a package of %d bytes", size)
	return nil
}

func buildPackage(t testing.TB, pkgname string, payloadLen int, rng *rand.Rand, extra []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zw.Header.Extra = extra
	zw.Header.ModTime = time.Unix(1700000000, 0)
	tw := tar.NewWriter(zw)
	payload := make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	members := []struct {
		name string
		data []byte
		mode int64
	}{
		{"+CONTENTS", []byte("@name " + pkgname + "\n@comment test\nbin/payload\n@cwd .\n@ignore\n+COMMENT\n@ignore\n+DESC\n"), 0o644},
		{"+COMMENT", []byte("a test package\n"), 0o444},
		{"+DESC", []byte("A test package for pkgsign.\n"), 0o444},
		{"bin/payload", payload, 0o755},
	}
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: m.mode, Size: int64(len(m.data)),
			ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg, Uname: "root", Gname: "wheel"}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustPool(t testing.TB, certFile string) *x509.CertPool {
	t.Helper()
	certs, err := ReadCertificates(certFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
