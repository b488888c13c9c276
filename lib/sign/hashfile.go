package sign

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// BlockSize is the block size pkg_admin always writes (spec §3.2).
const BlockSize = 65536

// Member names of a signed package (spec §3.1).
const (
	HashMember = "+PKG_HASH"
	X509Member = "+PKG_SIGNATURE"
	GPGMember  = "+PKG_GPG_SIGNATURE"
)

// ErrBlockMultiple is wrapped by the refusal to sign a package whose size is
// an exact multiple of the block size: pkg_install's signer loops forever on
// such a file and its verifier expects an empty last block (spec §3.2).
var ErrBlockMultiple = errors.New("package size is an exact multiple of 65536 bytes, which pkg_install cannot sign or verify")

// ErrHashFile is wrapped by every error about the text of a +PKG_HASH.
var ErrHashFile = errors.New("invalid +PKG_HASH")

// HashFile is the content of +PKG_HASH.
type HashFile struct {
	PkgName   string
	BlockSize int64
	FileSize  int64
	Hashes    []string // lowercase hex SHA-512 of each block
}

const (
	hashHead1   = "pkgsrc signature\n\nversion: 1\npkgname: "
	hashHead2   = "algorithm: SHA512\nblock size: "
	hashHead3   = "file size: "
	hashTrailer = "end pkgsrc signature\n"
)

// Marshal returns the exact text pkg_admin writes.
func (h *HashFile) Marshal() []byte {
	var b bytes.Buffer
	b.Grow(200 + len(h.Hashes)*129)
	b.WriteString(hashHead1)
	b.WriteString(h.PkgName)
	b.WriteString("\n" + hashHead2)
	b.WriteString(strconv.FormatInt(h.BlockSize, 10))
	b.WriteString("\n" + hashHead3)
	b.WriteString(strconv.FormatInt(h.FileSize, 10))
	b.WriteString("\n\n")
	for _, x := range h.Hashes {
		b.WriteString(x)
		b.WriteByte('\n')
	}
	b.WriteString(hashTrailer)
	return b.Bytes()
}

// Blocks is the number of blocks pkg_install expects: ceil(FileSize/BlockSize).
func (h *HashFile) Blocks() int64 {
	return blocks(h.FileSize, h.BlockSize)
}

func blocks(size, bs int64) int64 {
	return size/bs + min(size%bs, 1)
}

// BlockLen returns the length pkg_install's verifier reads for block i
// (0-based): the block size, except for the last block, which is
// FileSize mod BlockSize: zero when the file size is a multiple of the
// block size, which is pkg_install's bug (spec §3.2).
func (h *HashFile) BlockLen(i int64) int64 {
	if i == h.Blocks()-1 {
		return h.FileSize % h.BlockSize
	}
	return h.BlockSize
}

// ComputeHashFile reads exactly size bytes of a package from r and returns
// its hash file. It refuses sizes pkg_install cannot handle: 0 and exact
// multiples of BlockSize (ErrBlockMultiple).
func ComputeHashFile(pkgname string, r io.Reader, size int64) (*HashFile, error) {
	if size < 1 {
		return nil, fmt.Errorf("package is empty")
	}
	if size%BlockSize == 0 {
		return nil, fmt.Errorf("%w (%d bytes = %d blocks); pkg_admin would hang on it and pkg_add would reject it: recreate the package",
			ErrBlockMultiple, size, size/BlockSize)
	}
	if err := checkPkgName(pkgname); err != nil {
		return nil, err
	}
	h := &HashFile{PkgName: pkgname, BlockSize: BlockSize, FileSize: size}
	d := sha512.New()
	var sum [sha512.Size]byte
	for off := int64(0); off < size; off += BlockSize {
		n := min(BlockSize, size-off)
		d.Reset()
		got, err := io.CopyN(d, r, n)
		if err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("package shrank while hashing: %d of %d bytes", off+got, size)
			}
			return nil, err
		}
		h.Hashes = append(h.Hashes, hex.EncodeToString(d.Sum(sum[:0])))
	}
	return h, nil
}

func checkPkgName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty pkgname", ErrHashFile)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("%w: pkgname %q has a non-printable or space character at byte %d", ErrHashFile, s, i)
		}
	}
	return nil
}

// ParseHashFile parses +PKG_HASH with pkg_install's rules (parse_hash_file
// in lib/pkg_signature.c): the template literally, a printable pkgname,
// a decimal block size of at least 1024, a file size of at least 1, exactly
// ceil(size/block) lines of 128 lowercase hex digits and the trailer, with
// nothing after it. Errors say which line is wrong.
//
// One deliberate difference: pkg_install compares C strings, so it ignores
// anything after a NUL byte following the trailer; this parser rejects
// such trailing bytes (they are signed, but mean the file was not written
// by pkg_admin).
func ParseHashFile(b []byte) (*HashFile, error) {
	h := &HashFile{}
	rest := b
	if !bytes.HasPrefix(rest, []byte(hashHead1)) {
		return nil, fmt.Errorf("%w: line 1-4: does not start with %q", ErrHashFile, hashHead1)
	}
	rest = rest[len(hashHead1):]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return nil, fmt.Errorf("%w: line 4: pkgname line does not end", ErrHashFile)
	}
	h.PkgName = string(rest[:i])
	if err := checkPkgName(h.PkgName); err != nil {
		return nil, fmt.Errorf("line 4: %w", err)
	}
	rest = rest[i+1:]
	if !bytes.HasPrefix(rest, []byte(hashHead2)) {
		return nil, fmt.Errorf("%w: line 5-6: want %q", ErrHashFile, hashHead2)
	}
	rest = rest[len(hashHead2):]
	var err error
	if h.BlockSize, rest, err = parseNumber(rest, "block size", 6); err != nil {
		return nil, err
	}
	if h.BlockSize < 1024 {
		return nil, fmt.Errorf("%w: line 6: block size %d is below pkg_install's minimum 1024", ErrHashFile, h.BlockSize)
	}
	if !bytes.HasPrefix(rest, []byte(hashHead3)) {
		return nil, fmt.Errorf("%w: line 7: want %q", ErrHashFile, hashHead3)
	}
	rest = rest[len(hashHead3):]
	if h.FileSize, rest, err = parseNumber(rest, "file size", 7); err != nil {
		return nil, err
	}
	if h.FileSize < 1 {
		return nil, fmt.Errorf("%w: line 7: file size must be at least 1", ErrHashFile)
	}
	if len(rest) == 0 || rest[0] != '\n' {
		return nil, fmt.Errorf("%w: line 8: want an empty line", ErrHashFile)
	}
	rest = rest[1:]
	n := h.Blocks()
	// Check the length before allocating: a forged file size must not make
	// us allocate for billions of lines.
	if n > int64(len(rest)) || int64(len(rest)) < n*129+int64(len(hashTrailer)) {
		return nil, fmt.Errorf("%w: file size %d needs %d hash lines, the file is too short for them", ErrHashFile, h.FileSize, n)
	}
	h.Hashes = make([]string, 0, n)
	for k := int64(0); k < n; k++ {
		line := 9 + k
		l := 0
		for l < len(rest) && (rest[l] >= '0' && rest[l] <= '9' || rest[l] >= 'a' && rest[l] <= 'f') {
			l++
		}
		if l != 128 || len(rest) <= l || rest[l] != '\n' {
			return nil, fmt.Errorf("%w: line %d: hash of block %d is not 128 lowercase hex digits and a newline", ErrHashFile, line, k)
		}
		h.Hashes = append(h.Hashes, string(rest[:128]))
		rest = rest[129:]
	}
	if string(rest) != hashTrailer {
		if bytes.HasPrefix(rest, []byte(hashTrailer)) {
			return nil, fmt.Errorf("%w: line %d: %d bytes after the trailer", ErrHashFile, 9+n, len(rest)-len(hashTrailer))
		}
		return nil, fmt.Errorf("%w: line %d: want %q after %d hash lines (block count from file size %d)",
			ErrHashFile, 9+n, hashTrailer, n, h.FileSize)
	}
	return h, nil
}

// parseNumber reads a run of decimal digits terminated by "\n", as
// pkg_install's isdigit + strto(u)l + '\n' checks do.
func parseNumber(b []byte, what string, line int) (int64, []byte, error) {
	l := 0
	for l < len(b) && b[l] >= '0' && b[l] <= '9' {
		l++
	}
	if l == 0 || l >= len(b) || b[l] != '\n' {
		return 0, nil, fmt.Errorf("%w: line %d: %s is not a decimal number ending the line", ErrHashFile, line, what)
	}
	v, err := strconv.ParseInt(string(b[:l]), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: line %d: %s %s out of range", ErrHashFile, line, what, b[:l])
	}
	return v, b[l+1:], nil
}
