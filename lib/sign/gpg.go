package sign

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// GPGSigner makes the ASCII-armoured detached OpenPGP signature that
// `gpg --detach-sign --armor` (pkg_admin gpg-sign-package) writes: a
// binary-document signature (type 0x00) over +PKG_HASH, digest SHA-512.
type GPGSigner struct {
	Entity *openpgp.Entity
	now    func() time.Time
}

// LoadGPGSigner reads an armoured OpenPGP secret key (as `gpg --export-
// secret-keys --armor` writes) holding one key with a usable signing
// (sub)key, and decrypts it with the passphrase when it is protected.
func LoadGPGSigner(file string, passphrase func() ([]byte, error)) (*GPGSigner, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if bytes.Contains(b, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		return nil, fmt.Errorf("%w: %s is an OpenPGP public key; --gpg-key needs the secret key (gpg --export-secret-keys --armor KEYID)", ErrKey, file)
	}
	if !bytes.Contains(b, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
		if bytes.Contains(b, []byte("-----BEGIN ")) && bytes.Contains(b, []byte("PRIVATE KEY-----")) {
			return nil, fmt.Errorf("%w: %s is a PEM (X.509/OpenSSL) private key, not an OpenPGP secret key; use --x509-key and --x509-cert for it", ErrKey, file)
		}
		return nil, fmt.Errorf("%w: %s is not an armoured OpenPGP secret key (gpg --export-secret-keys --armor KEYID)", ErrKey, file)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKey, file, err)
	}
	var secret []*openpgp.Entity
	for _, e := range el {
		if e.PrivateKey != nil {
			secret = append(secret, e)
		}
	}
	if len(secret) != 1 {
		return nil, fmt.Errorf("%w: %s holds %d secret keys; export exactly one", ErrKey, file, len(secret))
	}
	e := secret[0]
	k, ok := e.SigningKey(time.Now())
	if !ok || k.PrivateKey == nil || k.PrivateKey.Dummy() {
		return nil, fmt.Errorf("%w: %s: key %s has no usable secret signing key (expired, revoked, or a stub)", ErrKey, file, fingerprint(e))
	}
	if k.PrivateKey.Encrypted {
		pw, err := getPassphrase(passphrase, file)
		if err != nil {
			return nil, err
		}
		if err := e.DecryptPrivateKeys(pw); err != nil {
			return nil, fmt.Errorf("%w: %s: wrong passphrase for key %s: %w", ErrKey, file, fingerprint(e), err)
		}
	}
	return &GPGSigner{Entity: e, now: time.Now}, nil
}

// Warning returns a caution about the key, or "": pkg_install's built-in
// verifier since 2016 (netpgpverify, security/netpgpverify/files/
// libverify.c) knows RSA and DSA (and defines ECDSA) public keys, not
// EdDSA, so clients may fail to verify signatures made with an Ed25519
// key even though GnuPG verifies them.
func (s *GPGSigner) Warning() string {
	k, ok := s.Entity.SigningKey(time.Now())
	if !ok {
		return ""
	}
	switch k.PublicKey.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoDSA:
		return ""
	}
	return fmt.Sprintf("signing key %s uses public-key algorithm %d: pkg_install's built-in verifier (netpgpverify) handles RSA and DSA keys; prefer an RSA key (see docs/signing.md)",
		fingerprint(s.Entity), k.PublicKey.PubKeyAlgo)
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// MemberName is +PKG_GPG_SIGNATURE.
func (s *GPGSigner) MemberName() string { return GPGMember }

// Identity names the key by fingerprint and first user ID.
func (s *GPGSigner) Identity() string { return entityIdentity(s.Entity) }

func entityIdentity(e *openpgp.Entity) string {
	id := ""
	for name := range e.Identities {
		if id == "" || name < id {
			id = name
		}
	}
	return fmt.Sprintf("OpenPGP %s %s", fingerprint(e), id)
}

// Sign returns the armoured detached signature of hash.
func (s *GPGSigner) Sign(hash []byte) ([]byte, error) {
	var buf bytes.Buffer
	// GnuPG adds no salt notation; go-crypto would by default (a
	// non-critical "salt@notations.openpgpjs.org"). Leave it out so the
	// packet is what gpg --detach-sign writes and old verifiers (netpgpverify
	// in pkg_install) meet nothing new.
	noSalt := false
	cfg := &packet.Config{DefaultHash: crypto.SHA512, Time: s.now, NonDeterministicSignaturesViaNotation: &noSalt}
	if err := openpgp.ArmoredDetachSign(&buf, s.Entity, bytes.NewReader(hash), cfg); err != nil {
		return nil, fmt.Errorf("OpenPGP signature: %w", err)
	}
	// gpg ends its armour with a newline; go-crypto does not.
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// Verifier returns a verifier that accepts only this key's signatures.
func (s *GPGSigner) Verifier() Verifier {
	return &GPGVerifier{Keyring: openpgp.EntityList{s.Entity}}
}

// GPGVerifier checks +PKG_GPG_SIGNATURE against a public keyring, as
// pkg_install does with GPG_KEYRING_VERIFY.
type GPGVerifier struct {
	Keyring openpgp.EntityList
}

// NewGPGVerifier reads a public keyring: armoured (gpg --export --armor) or
// binary (a .gpg/.kbx-less keyring file as gpg --export writes).
func NewGPGVerifier(file string) (*GPGVerifier, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	var el openpgp.EntityList
	if bytes.Contains(b, []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not an OpenPGP keyring: %w", ErrKey, file, err)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("%w: %s holds no OpenPGP keys", ErrKey, file)
	}
	return &GPGVerifier{Keyring: el}, nil
}

// Verify checks an armoured detached signature over hash.
func (v *GPGVerifier) Verify(member string, hash, sig []byte) (string, error) {
	if member != GPGMember {
		return "", fmt.Errorf("package has %s, but an OpenPGP key was given (want %s)", member, GPGMember)
	}
	blk, err := armor.Decode(bytes.NewReader(sig))
	if err != nil || blk.Type != "PGP SIGNATURE" {
		return "", fmt.Errorf("%s: not an ASCII-armoured OpenPGP signature", member)
	}
	e, err := openpgp.CheckArmoredDetachedSignature(v.Keyring, bytes.NewReader(hash), bytes.NewReader(sig), nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", member, err)
	}
	return entityIdentity(e), nil
}

// checkArmor checks an armoured signature line by line the way GnuPG
// writes one: the BEGIN line, optional "Key: value" headers, an empty
// line, base64 lines, an optional "=" CRC-24 line that must match, the END
// line and a final newline. go-crypto's decoder is lenient about the
// armour lines; these bytes are not covered by the signature, so a
// difference is reported (as a note; a CRC mismatch as a problem, since
// gpg refuses it).
func checkArmor(sig []byte) (notes, problems []string) {
	s := string(sig)
	if !strings.HasSuffix(s, "\n") {
		return []string{"armoured signature does not end with a newline"}, nil
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 3 || lines[0] != "-----BEGIN PGP SIGNATURE-----" {
		return []string{"armoured signature does not start with -----BEGIN PGP SIGNATURE-----"}, nil
	}
	if lines[len(lines)-1] != "-----END PGP SIGNATURE-----" {
		return []string{"armoured signature does not end with -----END PGP SIGNATURE-----"}, nil
	}
	body := lines[1 : len(lines)-1]
	i := 0
	for i < len(body) && body[i] != "" {
		k, _, ok := strings.Cut(body[i], ": ")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return []string{fmt.Sprintf("armour line %d is neither a header nor empty: %q", i+2, body[i])}, nil
		}
		i++
	}
	if i == len(body) {
		return []string{"armour has no empty line before the data"}, nil
	}
	var data strings.Builder
	crc := ""
	for j, l := range body[i+1:] {
		if strings.HasPrefix(l, "=") && j == len(body[i+1:])-1 {
			crc = l[1:]
			break
		}
		for _, c := range l {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
				return []string{fmt.Sprintf("armour line %d has a character outside base64: %q", i+j+3, l)}, nil
			}
		}
		data.WriteString(l)
	}
	// Strict: the unused bits before "=" padding must be zero, as every
	// encoder writes them; go-crypto's decoder ignores them.
	raw, err := base64.StdEncoding.Strict().DecodeString(data.String())
	if err != nil {
		return []string{fmt.Sprintf("armour data is not valid base64: %v", err)}, nil
	}
	if crc != "" {
		want, err := base64.StdEncoding.DecodeString(crc)
		if err != nil || len(want) != 3 {
			return nil, []string{fmt.Sprintf("armour CRC line %q is malformed", "="+crc)}
		}
		got := crc24(raw)
		if byte(got>>16) != want[0] || byte(got>>8) != want[1] || byte(got) != want[2] {
			return nil, []string{"armour CRC does not match the signature data (gpg: CRC error)"}
		}
	}
	return nil, nil
}

// crc24 is the OpenPGP armour checksum (RFC 4880 §6.1).
func crc24(b []byte) uint32 {
	crc := uint32(0xb704ce)
	for _, c := range b {
		crc ^= uint32(c) << 16
		for i := 0; i < 8; i++ {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864cfb
			}
		}
	}
	return crc & 0xffffff
}
