// Package pkgfile reads the metadata of pkgsrc binary packages without
// unpacking them.
//
// A binary package (pkg_create, spec §2) is a tar archive, compressed with
// gzip (the default, .tgz), bzip2, xz or zstd, or not at all, whose first
// members are the "+" metadata files (+CONTENTS first, then +COMMENT, +DESC
// and the optional ones) followed by the payload. A signed package (spec
// §3.1) is an ar archive of +PKG_HASH, +PKG_SIGNATURE or +PKG_GPG_SIGNATURE,
// and the unchanged tarball as third member.
//
// ReadMeta detects all of these from their magic bytes (never from the file
// name, as pkg_add does), reads the compressed stream once and stops at the
// first payload member, so reading the metadata of a 500 MB package costs
// only the first few kilobytes. Nothing is written to disk.
//
// Which members are metadata follows pkg_install's read_meta_data (info/
// perform.c): +CONTENTS, +COMMENT, +DESC, +INSTALL, +DEINSTALL, +DISPLAY,
// +MTREE_DIRS, +BUILD_VERSION, +BUILD_INFO, +SIZE_PKG, +SIZE_ALL, +PRESERVE,
// +REQUIRED_BY, +INSTALLED_INFO; the first member with any other name ends
// the metadata. Like pkg_info, ReadMeta rejects a package that lacks one of
// +CONTENTS, +COMMENT, +DESC or that repeats a metadata member. It is
// stricter than pkg_info in one way: +CONTENTS must be the first member
// (pkg_info only warns about misordered packages, but pkg_admin refuses to
// sign them and pkg_create never writes them).
//
// Errors name the package and what is wrong. Every error wraps ErrFormat
// (and ErrTruncated for a stream that ends early) unless it is an error of
// the reader ReadMeta was given, which is wrapped as is: a caller tells a
// bad package from a failing disk or network with errors.Is(err,
// ErrFormat).
//
// What one package may cost is bounded, whatever its bytes say (see
// Limits): each metadata file, all of them together, the decompressed
// bytes read before the payload, the +PKG_HASH and signature of a signed
// package, and the memory an xz or zstd stream asks its decoder for. A
// package beyond a limit is a bad package (ErrFormat, naming the member),
// never an out-of-memory. Because the
// payload is not read, a package cut short inside its payload (or with a
// corrupt payload) is not noticed here: that takes reading it whole, as
// pkg_add, pkgsign's verifier or a checksum does. Signatures are not
// verified here either (lib/sign does that).
package pkgfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/ar"
)

// ErrFormat is wrapped by errors about malformed package contents.
var ErrFormat = errors.New("invalid binary package")

// ErrTruncated is wrapped (besides ErrFormat) when the stream ends early.
var ErrTruncated = errors.New("truncated stream")

// Limits on what reading one package may cost. A package that exceeds one
// is refused as malformed (ErrFormat), with a message naming the member.
//
// pkg_install's metadata files are small. +CONTENTS, by far the largest,
// holds about 100 bytes per file of the package (its path and the
// "@comment MD5:" line pkg_create adds): a few megabytes for the largest
// packages in pkgsrc, which have tens of thousands of files. +DESC,
// +BUILD_INFO, +BUILD_VERSION and the +INSTALL/+DEINSTALL scripts are
// kilobytes.
const (
	// MaxMetaFileSize bounds one metadata file (+CONTENTS, +DESC, ...):
	// 16 MiB is +CONTENTS for some 160,000 files, four times the largest
	// packages.
	MaxMetaFileSize = 16 << 20
	// MaxMetaTotal bounds all metadata files of a package together: the
	// largest +CONTENTS allowed and 8 MiB for all the others.
	MaxMetaTotal = 24 << 20
	// MaxMetaStream bounds the decompressed tar data read before the first
	// payload member: the metadata files plus 1 MiB for their headers,
	// padding and pax records (a few kilobytes in real packages). A
	// stream that goes on longer without reaching the payload is a
	// decompression bomb.
	MaxMetaStream = MaxMetaTotal + 1<<20
	// maxGlobalHeaders bounds the pax global headers before the payload
	// (pkg_create writes none, GNU tar and bsdtar one at most; each may
	// hold 1 MiB of records, which archive/tar parses into memory).
	maxGlobalHeaders = 4
	// MaxHashSize bounds +PKG_HASH of a signed package: 129 bytes per
	// 64 KiB block, so 32 MiB is a 16 GiB package.
	MaxHashSize = 32 << 20
	// MaxSignatureSize bounds +PKG_SIGNATURE and +PKG_GPG_SIGNATURE: an
	// armoured OpenPGP signature, or a PEM PKCS#7 signature with its
	// certificate, is a few kilobytes.
	MaxSignatureSize = 1 << 20
	// MaxXZDict bounds the dictionary an xz block may ask for (the xz
	// decoder allocates it whole, up to 4 GiB, from one header byte):
	// 64 MiB is xz -9's, the largest preset; libarchive, which pkg_create
	// uses, writes xz -6's 8 MiB.
	MaxXZDict = 64 << 20
	// MaxZstdWindow bounds the window a zstd frame may ask for: 128 MiB
	// is what the zstd tool decompresses without --memory (window log
	// 27, zstd --long and --ultra -22); pkg_create's libarchive writes
	// level 3, a few MiB.
	MaxZstdWindow = 128 << 20
)

// Signed-package member names (spec §3.1).
const (
	HashName       = "+PKG_HASH"
	X509SigName    = "+PKG_SIGNATURE"
	GPGSigName     = "+PKG_GPG_SIGNATURE"
	ContentsName   = "+CONTENTS"
	CommentName    = "+COMMENT"
	DescName       = "+DESC"
	BuildInfoName  = "+BUILD_INFO"
	SizePkgName    = "+SIZE_PKG"
	BuildVersionNm = "+BUILD_VERSION"
)

// metaNames are the metadata members pkg_install knows, in its order.
var metaNames = []string{
	"+CONTENTS", "+COMMENT", "+DESC", "+INSTALL", "+DEINSTALL", "+DISPLAY",
	"+MTREE_DIRS", "+BUILD_VERSION", "+BUILD_INFO", "+SIZE_PKG", "+SIZE_ALL",
	"+PRESERVE", "+REQUIRED_BY", "+INSTALLED_INFO",
}

// IsMetaName reports whether a tar member of this name is package metadata.
func IsMetaName(name string) bool {
	for _, n := range metaNames {
		if n == name {
			return true
		}
	}
	return false
}

// Meta is the +-metadata of a package: the members that precede the payload.
type Meta struct {
	Files  map[string][]byte // member name -> contents, e.g. "+CONTENTS"
	Order  []string          // member names in archive order
	Signed bool              // the package was a signed ar container

	// For signed packages: the hash file, the name of the signature member
	// (+PKG_SIGNATURE or +PKG_GPG_SIGNATURE), the signature, and the name
	// and size of the inner tarball member. The signature is not verified
	// here (lib/sign does that).
	HashFile      []byte
	SignatureName string
	Signature     []byte
	InnerName     string
	InnerSize     int64
}

// PkgName returns the argument of the first @name in +CONTENTS, or "".
func (m *Meta) PkgName() string {
	if m == nil {
		return ""
	}
	name := ""
	EachLine(m.Files[ContentsName], func(cmd string, arg []byte) bool {
		if cmd == "name" {
			name = string(arg)
			return false
		}
		return true
	})
	return name
}

// ReadMetaFile opens path and calls ReadMeta.
func ReadMetaFile(path string) (*Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadMeta(path, f)
}

// ReadMeta reads a package stream (tar compressed with gzip, bzip2, xz or
// zstd, or uncompressed, detected by magic bytes; or a signed ar container
// whose third member is such a tarball) and returns its metadata, stopping
// at the first payload member. name is used in errors.
func ReadMeta(name string, r io.Reader) (*Meta, error) {
	src := &sourceReader{r: r}
	m, err := readMeta(src)
	switch {
	case err == nil:
		return m, nil
	case src.err != nil:
		// The reader failed (disk, network, cancellation), whatever a
		// decoder made of it: not the package's fault.
		return nil, fmt.Errorf("%s: %w", name, src.err)
	case errors.Is(err, ErrFormat):
		return nil, fmt.Errorf("%s: %w", name, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%s: %w: %w (%v)", name, ErrFormat, ErrTruncated, err)
	}
	// Whatever else a decoder or parser says is about the bytes.
	return nil, fmt.Errorf("%s: %w: %w", name, ErrFormat, err)
}

// sourceReader remembers the first error other than io.EOF of the reader
// ReadMeta reads, to tell the reader's failures from the package's.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func readMeta(r io.Reader) (*Meta, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(ar.Magic))
	if err != nil && len(head) == 0 {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: empty file", ErrFormat)
		}
		return nil, err
	}
	if string(head) == ar.Magic {
		return readSigned(br)
	}
	m := &Meta{}
	if err := readTarball(br, m); err != nil {
		return nil, err
	}
	return m, nil
}

func readSigned(br *bufio.Reader) (*Meta, error) {
	a, err := ar.NewReader(br)
	if err != nil {
		return nil, wrapAr(err)
	}
	m := &Meta{Signed: true}
	h, err := a.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: signed container without members (want %s first)", ErrFormat, HashName)
	}
	if err != nil {
		return nil, fmt.Errorf("signed package: first member: %w", wrapAr(err))
	}
	if h.Name != HashName {
		return nil, fmt.Errorf("%w: signed container with a wrong member order: first ar member is %q, want %s",
			ErrFormat, h.Name, HashName)
	}
	if m.HashFile, err = readMember(a, h, MaxHashSize); err != nil {
		return nil, fmt.Errorf("signed package: %s: %w", HashName, err)
	}
	h, err = a.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: signed container with a wrong member order: no second member (the signature)", ErrFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("signed package: second member: %w", wrapAr(err))
	}
	if h.Name != X509SigName && h.Name != GPGSigName {
		return nil, fmt.Errorf("%w: signed container with a wrong member order: second ar member is %q, want %s or %s",
			ErrFormat, h.Name, X509SigName, GPGSigName)
	}
	m.SignatureName = h.Name
	if m.Signature, err = readMember(a, h, MaxSignatureSize); err != nil {
		return nil, fmt.Errorf("signed package: %s: %w", h.Name, err)
	}
	h, err = a.Next()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: signed container with a wrong member order: no third member (the package)", ErrFormat)
		}
		return nil, fmt.Errorf("signed package: third member: %w", wrapAr(err))
	}
	m.InnerName, m.InnerSize = h.Name, h.Size
	if err := readTarball(bufio.NewReaderSize(a, 64<<10), m); err != nil {
		return nil, fmt.Errorf("inner package %s: %w", h.Name, err)
	}
	return m, nil
}

func readMember(a *ar.Reader, h *ar.Header, limit int64) ([]byte, error) {
	if h.Size > limit {
		return nil, fmt.Errorf("%w: member is %d bytes, more than the %s allowed", ErrFormat, h.Size, FormatSize(limit))
	}
	b := make([]byte, h.Size)
	if _, err := io.ReadFull(a, b); err != nil {
		return nil, wrapAr(err)
	}
	return b, nil
}

func wrapAr(err error) error {
	if errors.Is(err, ar.ErrFormat) {
		if strings.Contains(err.Error(), "truncated") {
			return fmt.Errorf("%w: %w: %w", ErrFormat, ErrTruncated, err)
		}
		return fmt.Errorf("%w: bad ar header: %w", ErrFormat, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrFormat, ErrTruncated)
	}
	return err
}

// FormatSize writes a limit for messages: "16 MiB", or bytes.
func FormatSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Compression names a package's compression as detected from its magic.
type Compression string

const (
	None  Compression = "none"
	Gzip  Compression = "gzip"
	Bzip2 Compression = "bzip2"
	XZ    Compression = "xz"
	Zstd  Compression = "zstd"
)

// DetectCompression returns the compression whose magic starts head.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(head, []byte("BZh")):
		return Bzip2
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return XZ
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	}
	return None
}
