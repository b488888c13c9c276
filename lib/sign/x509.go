package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// ErrKey is wrapped by errors about unusable keys, certificates and
// passphrases (the operator's set-up, not a package).
var ErrKey = errors.New("unusable signing key")

// X509Signer signs +PKG_HASH as pkg_admin x509-sign-package does: PKCS#7
// SignedData, detached, no signed attributes, binary, PEM, signer
// certificate included, SHA-256 digest (OpenSSL's default for RSA and EC
// keys).
type X509Signer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadX509Signer reads a PEM private key and a PEM certificate file and
// applies pkg_install's checks (easy_pkcs7_sign): exactly one certificate,
// not a CA, extended key usage exactly codeSigning, the key matches the
// certificate. passphrase is asked for only when the key is encrypted.
func LoadX509Signer(keyFile, certFile string, passphrase func() ([]byte, error)) (*X509Signer, error) {
	certs, err := ReadCertificates(certFile)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: %s holds %d certificates; pkg_install wants exactly one (put intermediates in CERTIFICATE_CHAIN on clients)",
			ErrKey, certFile, len(certs))
	}
	cert := certs[0]
	// pkg_admin does not check this, but every client's PKCS7_verify does.
	// A certificate issued a moment ago on a host whose clock is a little
	// ahead is fine: clients will be past NotBefore soon.
	if now := time.Now(); now.Add(time.Hour).Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%w: %s is valid from %s to %s only; clients would reject its signatures",
			ErrKey, certFile, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	if err := CheckSignerCert(cert); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKey, certFile, err)
	}
	key, err := readPrivateKey(keyFile, passphrase)
	if err != nil {
		return nil, err
	}
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, fmt.Errorf("%w: %s: %T keys are not supported for PKCS#7 signatures (use RSA or ECDSA)", ErrKey, keyFile, key)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: the private key %s doesn't match the certificate %s", ErrKey, keyFile, certFile)
	}
	return &X509Signer{Cert: cert, Key: key}, nil
}

// MemberName is +PKG_SIGNATURE.
func (s *X509Signer) MemberName() string { return X509Member }

// Identity names the certificate: subject and SHA-256 fingerprint.
func (s *X509Signer) Identity() string { return certIdentity(s.Cert) }

func certIdentity(c *x509.Certificate) string {
	fp := sha256.Sum256(c.Raw)
	return fmt.Sprintf("X.509 %s (sha256 %s)", c.Subject, hex.EncodeToString(fp[:]))
}

// Sign returns the PEM PKCS#7 detached signature of hash.
func (s *X509Signer) Sign(hash []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(hash)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.SignWithoutAttr(s.Cert, s.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("PKCS#7 signature: %w", err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("PKCS#7 signature: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: der}), nil
}

// Verifier returns a verifier that accepts only signatures by this
// certificate (used to decide whether a package is already signed).
func (s *X509Signer) Verifier() Verifier {
	return &X509Verifier{Only: s.Cert}
}

// X509Verifier checks +PKG_SIGNATURE as pkg_install's easy_pkcs7_verify
// does: PKCS7_verify against the trust anchors (CERTIFICATE_ANCHOR_PKGS)
// with untrusted intermediates (CERTIFICATE_CHAIN), then the signer checks.
type X509Verifier struct {
	Anchors *x509.CertPool      // nil: the chain is not checked (Only must be set)
	Chain   []*x509.Certificate // untrusted intermediates
	Only    *x509.Certificate   // if set, the signer must be this certificate
}

// NewX509Verifier reads the trust anchors (and optional chain) from PEM files.
func NewX509Verifier(anchorFile, chainFile string) (*X509Verifier, error) {
	anchors, err := ReadCertificates(anchorFile)
	if err != nil {
		return nil, err
	}
	v := &X509Verifier{Anchors: x509.NewCertPool()}
	for _, c := range anchors {
		v.Anchors.AddCert(c)
	}
	if chainFile != "" {
		if v.Chain, err = ReadCertificates(chainFile); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Verify checks a +PKG_SIGNATURE over hash and returns the signer.
func (v *X509Verifier) Verify(member string, hash, sig []byte) (string, error) {
	if member != X509Member {
		return "", fmt.Errorf("package has %s, but an X.509 trust anchor was given (want %s)", member, X509Member)
	}
	block, rest := pem.Decode(sig)
	if block == nil || block.Type != "PKCS7" {
		return "", fmt.Errorf("%s: Failed to parse the signature: not a PEM PKCS7 block", member)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return "", fmt.Errorf("%s: %d bytes after the PEM block", member, len(rest))
	}
	p7, err := pkcs7.Parse(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: Failed to parse the signature: %w", member, err)
	}
	if len(p7.Content) != 0 {
		return "", fmt.Errorf("%s: not a detached signature (it carries %d content bytes)", member, len(p7.Content))
	}
	p7.Content = hash
	p7.Certificates = append(p7.Certificates, v.Chain...)
	if len(p7.Signers) == 0 {
		return "", fmt.Errorf("%s: No signers found", member)
	}
	if err := p7.VerifyWithChain(v.Anchors); err != nil {
		return "", fmt.Errorf("%s: Failed to verify signature: %w", member, err)
	}
	var ids []string
	for i := range p7.Signers {
		c := signerCert(p7, i)
		if c == nil {
			return "", fmt.Errorf("%s: signer %d: no certificate", member, i+1)
		}
		if err := CheckSignerCert(c); err != nil {
			return "", fmt.Errorf("%s: signer %s: %w", member, c.Subject, err)
		}
		if v.Only != nil && !c.Equal(v.Only) {
			return "", fmt.Errorf("%s: signed by %s, not by %s", member, certIdentity(c), certIdentity(v.Only))
		}
		ids = append(ids, certIdentity(c))
	}
	return strings.Join(ids, "; "), nil
}

func signerCert(p7 *pkcs7.PKCS7, i int) *x509.Certificate {
	if len(p7.Signers) == 1 {
		return p7.GetOnlySigner()
	}
	s := p7.Signers[i]
	for _, c := range p7.Certificates {
		if c.SerialNumber.Cmp(s.IssuerAndSerialNumber.SerialNumber) == 0 &&
			bytes.Equal(c.RawIssuer, s.IssuerAndSerialNumber.IssuerName.FullBytes) {
			return c
		}
	}
	return nil
}

// OpenSSL's extended key usage bits (x509v3.h XKU_*): pkg_install compares
// the whole set with XKU_CODE_SIGN, and OpenSSL sets no bit for purposes it
// does not know.
const (
	xkuSSLServer = 1 << iota
	xkuSSLClient
	xkuSMIME
	xkuCodeSign
	xkuSGC
	xkuOCSPSign
	xkuTimestamp
	xkuDVCS
	xkuAnyEKU
)

var (
	oidDVCS         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 10}
	oidNSCertType   = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}
	oidKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstr  = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage  = asn1.ObjectIdentifier{2, 5, 29, 37}
	errNotCodeSign  = errors.New("Certificate must have CODE SIGNING property: its extended key usage must be exactly codeSigning")
	errCAForSigning = errors.New("CA keys are not valid for signatures")
)

// CheckSignerCert applies pkg_install's signer rules (check_ca and the
// extended key usage test in lib/pkcs7.c) to a certificate.
func CheckSignerCert(c *x509.Certificate) error {
	if isCA(c) {
		return errCAForSigning
	}
	hasEKU := false
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			hasEKU = true
		}
	}
	if !hasEKU {
		return fmt.Errorf("%w (the certificate has no extended key usage)", errNotCodeSign)
	}
	bits := 0
	var names []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			bits |= xkuSSLServer
			names = append(names, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			bits |= xkuSSLClient
			names = append(names, "clientAuth")
		case x509.ExtKeyUsageEmailProtection:
			bits |= xkuSMIME
			names = append(names, "emailProtection")
		case x509.ExtKeyUsageCodeSigning:
			bits |= xkuCodeSign
			names = append(names, "codeSigning")
		case x509.ExtKeyUsageNetscapeServerGatedCrypto, x509.ExtKeyUsageMicrosoftServerGatedCrypto:
			bits |= xkuSGC
			names = append(names, "serverGatedCrypto")
		case x509.ExtKeyUsageOCSPSigning:
			bits |= xkuOCSPSign
			names = append(names, "OCSPSigning")
		case x509.ExtKeyUsageTimeStamping:
			bits |= xkuTimestamp
			names = append(names, "timeStamping")
		case x509.ExtKeyUsageAny:
			bits |= xkuAnyEKU
			names = append(names, "anyExtendedKeyUsage")
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		if o.Equal(oidDVCS) {
			bits |= xkuDVCS
			names = append(names, "DVCS")
		}
	}
	if bits != xkuCodeSign {
		return fmt.Errorf("%w (it has: %s)", errNotCodeSign, strings.Join(names, ", "))
	}
	return nil
}

// isCA is pkg_install's check_ca on OpenSSL's cached extension flags.
func isCA(c *x509.Certificate) bool {
	var hasKU, hasBC, hasNS bool
	var nsType byte
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(oidKeyUsage):
			hasKU = true
		case e.Id.Equal(oidBasicConstr):
			hasBC = true
		case e.Id.Equal(oidNSCertType):
			var bs asn1.BitString
			if _, err := asn1.Unmarshal(e.Value, &bs); err == nil && len(bs.Bytes) > 0 {
				hasNS, nsType = true, bs.Bytes[0]
			}
		}
	}
	if hasKU && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return false
	}
	if hasBC {
		return c.IsCA
	}
	if c.Version == 1 && bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
		return true
	}
	if hasKU {
		return true
	}
	const nsAnyCA = 0x04 | 0x02 | 0x01 // NS_SSL_CA | NS_SMIME_CA | NS_OBJSIGN_CA
	return hasNS && nsType&nsAnyCA != 0
}

// ReadCertificates reads every CERTIFICATE block of a PEM file.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: %s: PEM block %d is a %s, not a CERTIFICATE", ErrKey, file, n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: certificate %d: %w", ErrKey, file, n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: No certificate found in file %s", ErrKey, file)
	}
	return certs, nil
}

func readPrivateKey(file string, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		if bytes.Contains(b, []byte("-----BEGIN PGP")) {
			return nil, fmt.Errorf("%w: %s is an OpenPGP key; use --gpg-key for it", ErrKey, file)
		}
		return nil, fmt.Errorf("%w: %s holds no PEM block", ErrKey, file)
	}
	der := block.Bytes
	var key any
	switch block.Type {
	case "ENCRYPTED PRIVATE KEY":
		pw, err := getPassphrase(passphrase, file)
		if err != nil {
			return nil, err
		}
		if der, err = decryptPKCS8(der, pw); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKey, file, err)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKey, file, err)
		}
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	case "RSA PRIVATE KEY", "EC PRIVATE KEY":
		//lint:ignore SA1019 OpenSSL's legacy "Proc-Type: 4,ENCRYPTED" keys are still common.
		if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
			pw, perr := getPassphrase(passphrase, file)
			if perr != nil {
				return nil, perr
			}
			der, err = x509.DecryptPEMBlock(block, pw) //nolint:staticcheck
			if err != nil {
				return nil, fmt.Errorf("%w: %s: wrong passphrase or damaged key: %w", ErrKey, file, err)
			}
		}
		if block.Type == "RSA PRIVATE KEY" {
			key, err = x509.ParsePKCS1PrivateKey(der)
		} else {
			key, err = x509.ParseECPrivateKey(der)
		}
	default:
		return nil, fmt.Errorf("%w: %s holds a %s, not a private key", ErrKey, file, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKey, file, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %T cannot sign", ErrKey, file, key)
	}
	return s, nil
}

func getPassphrase(passphrase func() ([]byte, error), file string) ([]byte, error) {
	if passphrase == nil {
		return nil, fmt.Errorf("%w: %s is passphrase-protected and no passphrase source was given", ErrKey, file)
	}
	pw, err := passphrase()
	if err != nil {
		return nil, fmt.Errorf("%w: passphrase for %s: %w", ErrKey, file, err)
	}
	return pw, nil
}

// checkPKCS7Form reports differences between a +PKG_SIGNATURE and the form
// OpenSSL's PEM_write_bio_PKCS7 (pkg_admin) writes, in the parts no
// signature covers: PEM line layout, DER encoding, the version, the outer
// digest algorithm set, the empty detached content and absent CRLs.
func checkPKCS7Form(sig []byte) []string {
	block, _ := pem.Decode(sig)
	if block == nil {
		return nil // reported by the verifier
	}
	var notes []string
	if canon := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes}); !bytes.Equal(canon, sig) {
		notes = append(notes, "+PKG_SIGNATURE: the PEM text is not laid out as OpenSSL writes it (headers, line lengths or bytes around the block)")
	}
	der := block.Bytes
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"optional,tag:0"`
	}
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil || len(rest) != 0 {
		return append(notes, fmt.Sprintf("+PKG_SIGNATURE: not DER-encoded as OpenSSL writes it (%v, %d trailing bytes)", err, len(rest)))
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      asn1.RawValue
		Certificates     asn1.RawValue `asn1:"optional,tag:0"`
		CRLs             asn1.RawValue `asn1:"optional,tag:1"`
		SignerInfos      asn1.RawValue
	}
	if rest, err = asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(rest) != 0 {
		return append(notes, fmt.Sprintf("+PKG_SIGNATURE: SignedData is not DER (%v)", err))
	}
	var inner struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"optional,explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(sd.ContentInfo.FullBytes, &inner); err != nil ||
		!inner.ContentType.Equal(pkcs7.OIDData) || len(inner.Content.FullBytes) != 0 {
		notes = append(notes, "+PKG_SIGNATURE: the content info is not an empty detached pkcs7-data")
	}
	if sd.Version != 1 || len(sd.CRLs.FullBytes) != 0 || !ci.ContentType.Equal(pkcs7.OIDSignedData) {
		notes = append(notes, fmt.Sprintf("+PKG_SIGNATURE: version %d, %d bytes of CRLs: not what pkg_admin writes", sd.Version, len(sd.CRLs.FullBytes)))
	}
	// The outer digest algorithm set must list exactly the signers'.
	var algs [][]byte
	for si := sd.SignerInfos.Bytes; len(si) > 0; {
		var one asn1.RawValue
		var err error
		if si, err = asn1.Unmarshal(si, &one); err != nil {
			return append(notes, "+PKG_SIGNATURE: unreadable signer info")
		}
		var fields []asn1.RawValue
		for f := one.Bytes; len(f) > 0; {
			var v asn1.RawValue
			if f, err = asn1.Unmarshal(f, &v); err != nil {
				return append(notes, "+PKG_SIGNATURE: unreadable signer info")
			}
			fields = append(fields, v)
		}
		if len(fields) < 3 {
			return append(notes, "+PKG_SIGNATURE: short signer info")
		}
		if !slices.ContainsFunc(algs, func(a []byte) bool { return bytes.Equal(a, fields[2].FullBytes) }) {
			algs = append(algs, fields[2].FullBytes)
		}
	}
	var set []byte
	for f := sd.DigestAlgorithms.Bytes; len(f) > 0; {
		var v asn1.RawValue
		var err error
		if f, err = asn1.Unmarshal(f, &v); err != nil {
			return append(notes, "+PKG_SIGNATURE: unreadable digest algorithm set")
		}
		if !slices.ContainsFunc(algs, func(a []byte) bool { return bytes.Equal(a, v.FullBytes) }) {
			notes = append(notes, "+PKG_SIGNATURE: the digest algorithm set names an algorithm no signer uses")
		}
		set = append(set, v.FullBytes...)
	}
	if len(set) != len(bytes.Join(algs, nil)) {
		notes = append(notes, "+PKG_SIGNATURE: the digest algorithm set does not list the signers' algorithms")
	}
	// encoding/asn1 accepts DER only (minimal lengths, no indefinite
	// lengths), so parsing without trailing bytes is the encoding check.
	return notes
}
