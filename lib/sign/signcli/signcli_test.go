package signcli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/sign"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code = cli.Run(context.Background(), "pkgsign", Description, &Command{}, args, g)
	return code, out.String(), errb.String()
}

func sh(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

type keys struct {
	dir                          string
	ca, leaf, leafKey, caKey     string
	gpgSecret, gpgPublic, gpgPwd string
}

func makeKeys(t *testing.T) keys {
	t.Helper()
	testenv.Program(t, "openssl")
	gpg := testenv.Program(t, "gpg")
	d := t.TempDir()
	k := keys{dir: d, ca: filepath.Join(d, "ca.pem"), caKey: filepath.Join(d, "ca.key"),
		leaf: filepath.Join(d, "leaf.pem"), leafKey: filepath.Join(d, "leaf.key")}
	sh(t, d, nil, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=cli CA",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
	sh(t, d, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=cli signer")
	os.WriteFile(filepath.Join(d, "ext"), []byte("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=codeSigning\n"), 0o600)
	sh(t, d, nil, "openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-out", "leaf.pem", "-days", "30", "-extfile", "ext")
	home := filepath.Join(d, "gnupg")
	os.Mkdir(home, 0o700)
	env := []string{"GNUPGHOME=" + home}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), env...)
		_ = cmd.Run()
	})
	sh(t, d, env, gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "sesame", "--quick-gen-key", "CLI <cli@example.org>", "ed25519", "sign", "never")
	sh(t, d, env, gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "sesame", "--armor", "--output", "sec.asc", "--export-secret-keys", "cli@example.org")
	sh(t, d, env, gpg, "--batch", "--armor", "--output", "pub.asc", "--export", "cli@example.org")
	k.gpgSecret, k.gpgPublic = filepath.Join(d, "sec.asc"), filepath.Join(d, "pub.asc")
	k.gpgPwd = filepath.Join(d, "pw")
	os.WriteFile(k.gpgPwd, []byte("sesame\n"), 0o600)
	return k
}

func writePackage(t *testing.T, path, pkgname string, payload int, seed uint64) []byte {
	t.Helper()
	b, err := pkgtest.Package(map[string][]byte{
		"+CONTENTS": []byte("@name " + pkgname + "\n@cwd /usr/pkg\nbin/" + pkgname + "\n"),
		"+COMMENT":  []byte("cli test\n"),
		"+DESC":     []byte("cli test package\n"),
	}, pkgfile.Gzip, payload, seed)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%sign.BlockSize == 0 {
		t.Fatalf("test package happens to be a multiple of 64 KiB; change the seed")
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeExactPackage writes an uncompressed package of exactly 131072 bytes
// (tar sizes are multiples of 512), which pkg_install cannot sign.
func writeExactPackage(t *testing.T, path string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range []struct {
		name string
		data []byte
	}{
		{"+CONTENTS", []byte("@name exact-1.0\nbin/x\n")},
		{"+COMMENT", []byte("exact\n")},
		{"+DESC", []byte("exact\n")},
		{"bin/x", make([]byte, (256-4-3-2)*512)},
	} {
		tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg})
		tw.Write(m.data)
	}
	tw.Close()
	if buf.Len() != 131072 {
		t.Fatalf("exact package is %d bytes", buf.Len())
	}
	os.WriteFile(path, buf.Bytes(), 0o644)
	return buf.Bytes()
}

func TestCLI(t *testing.T) {
	k := makeKeys(t)
	store := t.TempDir()
	all := filepath.Join(store, "All")
	os.Mkdir(all, 0o755)
	orig := map[string][]byte{}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("clipkg%d-1.%d.tgz", i, i)
		orig[name] = writePackage(t, filepath.Join(all, name), strings.TrimSuffix(name, ".tgz"), 20000+i*60000, uint64(i+1))
	}
	unchanged := func() {
		t.Helper()
		for name, b := range orig {
			got, _ := os.ReadFile(filepath.Join(all, name))
			if !bytes.Equal(got, b) {
				t.Fatalf("%s changed", name)
			}
		}
	}

	// Bad usage and bad keys: exit 2, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sign", "--store", store}, "give --gpg-key"},
		{[]string{"sign", "--gpg-key", k.gpgSecret}, "either --store"},
		{[]string{"sign", "--gpg-key", k.gpgSecret, "--store", store}, "passphrase-protected"},
		{[]string{"sign", "--gpg-key", k.gpgSecret, "--passphrase-file", k.leaf, "--store", store}, "wrong passphrase"},
		{[]string{"sign", "--gpg-key", k.gpgPublic, "--store", store}, "public key"},
		{[]string{"sign", "--gpg-key", k.leafKey, "--store", store}, "PEM"},
		{[]string{"sign", "--x509-key", k.caKey, "--x509-cert", k.ca, "--store", store}, "CA keys are not valid"},
		{[]string{"sign", "--x509-key", k.leafKey, "--store", store}, "needs --x509-cert"},
		{[]string{"sign", "--x509-key", k.leafKey, "--x509-cert", k.leaf, "--store", "s3://bucket/p?endpoint=http://127.0.0.1:1"}, "127.0.0.1:1"},
		{[]string{"verify", "--x509-anchor", "/nonexistent.pem", "--store", store}, "nonexistent"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Fatalf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
	unchanged()

	// Verify before signing: unsigned packages fail (exit 1).
	code, stdout, _ := runCLI(t, "verify", "--gpg-pubkey", k.gpgPublic, "--store", store)
	if code != 1 || strings.Count(stdout, "FAIL") != 3 || !strings.Contains(stdout, "not signed") {
		t.Fatalf("verify unsigned: exit %d\n%s", code, stdout)
	}

	// Sign the store with the protected gpg key, passphrase from the environment.
	t.Setenv("PKGSIGN_PASSPHRASE", "sesame")
	code, stdout, stderr := runCLI(t, "sign", "--gpg-key", k.gpgSecret, "--store", store, "--json")
	if code != 0 {
		t.Fatalf("sign: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep sign.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Signed != 3 || rep.Packages != 3 {
		t.Fatalf("sign report: %v %s", err, stdout)
	}
	code, stdout, _ = runCLI(t, "sign", "--gpg-key", k.gpgSecret, "--store", store)
	if code != 0 || !strings.Contains(stdout, "3 packages: 0 signed, 0 re-signed, 3 already signed, 0 failed") {
		t.Fatalf("second sign: exit %d %s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "verify", "--gpg-pubkey", k.gpgPublic, "--store", store, "--json")
	var res []sign.Result
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || len(res) != 3 || res[0].PkgAdd != "accept" {
		t.Fatalf("verify: exit %d %v\n%s", code, err, stdout)
	}
	// The X.509 anchor does not verify a gpg-signed package.
	code, stdout, _ = runCLI(t, "verify", "--x509-anchor", k.ca, "--store", store)
	if code != 1 || !strings.Contains(stdout, "X.509 trust anchor") {
		t.Fatalf("verify with the wrong kind of key: exit %d\n%s", code, stdout)
	}

	// Files: re-sign with X.509 (another key), then tamper with one block.
	files, _ := filepath.Glob(filepath.Join(all, "*.tgz"))
	code, stdout, stderr = runCLI(t, append([]string{"sign", "--x509-key", k.leafKey, "--x509-cert", k.leaf}, files...)...)
	if code != 0 || !strings.Contains(stdout, "3 re-signed") {
		t.Fatalf("re-sign with x509: exit %d %s %s", code, stdout, stderr)
	}
	b, _ := os.ReadFile(files[2])
	b[len(b)-100] ^= 0x10 // inside the inner package, the last member
	os.WriteFile(files[2], b, 0o644)
	code, stdout, _ = runCLI(t, append([]string{"verify", "--x509-anchor", k.ca}, files...)...)
	if code != 1 || strings.Count(stdout, "OK ") != 2 || !strings.Contains(stdout, "Invalid signature of block") {
		t.Fatalf("verify tampered: exit %d\n%s", code, stdout)
	}
	code, _, stderr = runCLI(t, append([]string{"sign", "--x509-key", k.leafKey, "--x509-cert", k.leaf}, files...)...)
	if code != 1 || !strings.Contains(stderr, "damaged") {
		t.Fatalf("sign over a damaged package: exit %d %s", code, stderr)
	}

	// A package of exactly 131072 bytes is refused with exit 1.
	exact := filepath.Join(t.TempDir(), "exact-1.0.tgz")
	eb := writeExactPackage(t, exact)
	code, _, stderr = runCLI(t, "sign", "--x509-key", k.leafKey, "--x509-cert", k.leaf, exact)
	if code != 1 || !strings.Contains(stderr, "exact multiple of 65536") {
		t.Fatalf("131072-byte package: exit %d %s", code, stderr)
	}
	if got, _ := os.ReadFile(exact); !bytes.Equal(got, eb) {
		t.Fatal("refused package changed")
	}
}

// TestBinary runs the built pkgsign to check main's wiring and exit codes.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pkgsign")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/pkgbulk/pkgbulk/cmd/pkgsign")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Exit status: 0 success; 1 some package") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	err = exec.Command(bin, "verify", "--bogus").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad flag: %v, want exit 2", err)
	}
}

// TestKill9 kills the real pkgsign with SIGKILL in the middle of signing a
// directory and wants every package either untouched or validly signed;
// a re-run finishes the job.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	k := makeKeys(t)
	bin := filepath.Join(t.TempDir(), "pkgsign")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pkgbulk/pkgbulk/cmd/pkgsign").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	orig := map[string][]byte{}
	var files []string
	for i := 0; i < 12; i++ {
		p := filepath.Join(dir, fmt.Sprintf("kill%02d-1.0.tgz", i))
		orig[p] = writePackage(t, p, fmt.Sprintf("kill%02d-1.0", i), 3_000_000, uint64(i+10))
		files = append(files, p)
	}
	cmd := exec.Command(bin, append([]string{"sign", "-v", "--x509-key", k.leafKey, "--x509-cert", k.leaf}, files...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen string
	for !strings.Contains(seen, ": signed") {
		n, err := stderr.Read(buf)
		seen += string(buf[:n])
		if err != nil {
			t.Fatalf("pkgsign ended before signing anything: %v\n%s", err, seen)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	signed := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(b, orig[p]) {
			continue
		}
		res, err := sign.VerifyPackage(p, bytes.NewReader(b), nil)
		if err != nil || !res.OK() {
			t.Fatalf("%s after kill -9: neither original nor valid: %v %+v", p, err, res)
		}
		signed++
	}
	if signed == 0 || signed == len(files) {
		t.Logf("kill landed at an edge: %d of %d signed", signed, len(files))
	}
	code, stdout, stderrText := runCLI(t, append([]string{"sign", "--x509-key", k.leafKey, "--x509-cert", k.leaf}, files...)...)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%d already signed", signed)) {
		t.Fatalf("re-run after kill: exit %d %s %s", code, stdout, stderrText)
	}
	code, _, _ = runCLI(t, append([]string{"verify", "--x509-anchor", k.ca}, files...)...)
	if code != 0 {
		t.Fatal("not all packages verify after the re-run")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".pkgbulk-tmp-*"))
	t.Logf("%d of %d signed when killed; %d temporary files left by the killed run", signed, len(files), len(left))
}
