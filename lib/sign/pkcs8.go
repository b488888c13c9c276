package sign

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// decryptPKCS8 decrypts an "ENCRYPTED PRIVATE KEY" (PKCS#8
// EncryptedPrivateKeyInfo) protected with PBES2/PBKDF2, which is what
// `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write; Go's standard
// library cannot read these.
func decryptPKCS8(der, pw []byte) ([]byte, error) {
	var info struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	if !info.Algo.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}) {
		return nil, fmt.Errorf("encrypted PKCS#8 key uses %v; only PBES2 is supported (re-encrypt with `openssl pkcs8 -topk8 -v2 aes256`)", info.Algo.Algorithm)
	}
	var params struct {
		KDF pkix.AlgorithmIdentifier
		Enc pkix.AlgorithmIdentifier
	}
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("PBES2 parameters: %w", err)
	}
	if !params.KDF.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}) {
		return nil, fmt.Errorf("PBES2 key derivation %v is not PBKDF2", params.KDF.Algorithm)
	}
	var kdf struct {
		Salt      []byte
		Iter      int
		KeyLength int                      `asn1:"optional"`
		PRF       pkix.AlgorithmIdentifier `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("PBKDF2 parameters: %w", err)
	}
	var h func() hash.Hash
	switch prf := kdf.PRF.Algorithm; {
	case len(prf) == 0 || prf.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}):
		h = sha1.New
	case prf.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}):
		h = sha256.New
	case prf.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}):
		h = sha512.New384
	case prf.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}):
		h = sha512.New
	default:
		return nil, fmt.Errorf("PBKDF2 PRF %v is not supported", prf)
	}
	var keyLen int
	var newCipher func([]byte) (cipher.Block, error)
	switch enc := params.Enc.Algorithm; {
	case enc.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}):
		keyLen, newCipher = 16, aes.NewCipher
	case enc.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}):
		keyLen, newCipher = 24, aes.NewCipher
	case enc.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}):
		keyLen, newCipher = 32, aes.NewCipher
	case enc.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}):
		keyLen, newCipher = 24, des.NewTripleDESCipher
	default:
		return nil, fmt.Errorf("PBES2 cipher %v is not supported (use aes256)", enc)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Enc.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("cipher IV: %w", err)
	}
	if kdf.Iter < 1 || kdf.Iter > 10_000_000 {
		return nil, fmt.Errorf("PBKDF2 iteration count %d out of range", kdf.Iter)
	}
	key, err := pbkdf2.Key(h, string(pw), kdf.Salt, kdf.Iter, keyLen)
	if err != nil {
		return nil, err
	}
	block, err := newCipher(key)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(info.Data) == 0 || len(info.Data)%bs != 0 {
		return nil, errors.New("encrypted PKCS#8 key: bad IV or data length")
	}
	out := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, info.Data)
	pad := int(out[len(out)-1])
	if pad < 1 || pad > bs {
		return nil, errors.New("wrong passphrase (decrypted key has bad padding)")
	}
	for _, c := range out[len(out)-pad:] {
		if int(c) != pad {
			return nil, errors.New("wrong passphrase (decrypted key has bad padding)")
		}
	}
	return out[:len(out)-pad], nil
}
