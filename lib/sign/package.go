package sign

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/ar"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
)

// Signer makes the signature member of a signed package.
type Signer interface {
	// MemberName is +PKG_SIGNATURE or +PKG_GPG_SIGNATURE.
	MemberName() string
	// Identity names the key or certificate in messages and reports.
	Identity() string
	// Sign returns the signature member's content for a +PKG_HASH.
	Sign(hash []byte) ([]byte, error)
	// Verifier accepts exactly the signatures this signer makes.
	Verifier() Verifier
}

// Verifier checks a signature member over +PKG_HASH.
type Verifier interface {
	// Verify returns who signed, or an error saying why the signature
	// is not acceptable.
	Verify(member string, hash, sig []byte) (signer string, err error)
}

// Stat holds the header fields pkg_admin copies from stat(2) of its input
// into all three ar members.
type Stat struct {
	ModTime  time.Time
	UID, GID int
	Mode     int64 // full st_mode, e.g. 0100644
}

// StatOf returns the Stat of a local file.
func StatOf(fi os.FileInfo) Stat {
	st := Stat{ModTime: fi.ModTime(), Mode: int64(fi.Mode().Perm()) | 0o100000}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.UID, st.GID, st.Mode = int(s.Uid), int(s.Gid), int64(s.Mode)
	}
	return st
}

// fit replaces IDs that do not fit the 6-digit ar fields by 0, where
// libarchive would fail to write the header at all.
func (st Stat) fit() Stat {
	if st.UID > 999999 || st.UID < 0 {
		st.UID = 0
	}
	if st.GID > 999999 || st.GID < 0 {
		st.GID = 0
	}
	if st.ModTime.Unix() < 0 {
		st.ModTime = time.Unix(0, 0)
	}
	return st
}

// pkgSuffixes are the package suffixes pkgsrc uses (PKG_SUFX) and the
// compressed-tar names readers accept, longest first.
var pkgSuffixes = []string{".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tbz", ".txz", ".tzst", ".tar"}

// Suffix returns the package suffix of a file name (".tgz" for
// "All/foo-1.0.tgz"), or "" if it has none of the known ones.
func Suffix(name string) string {
	for _, s := range pkgSuffixes {
		if strings.HasSuffix(name, s) {
			return s
		}
	}
	return ""
}

// InnerName is the name pkgsrc gives the third member: pkg_admin stores the
// basename of its input, which package.mk names <PKGNAME>.tmp<PKG_SUFX>.
func InnerName(pkgname, fileName string) string {
	return pkgname + ".tmp" + Suffix(path.Base(fileName))
}

// SignPackage writes to w the signed container of the unsigned package of
// size bytes in r: +PKG_HASH, the signature, and the package unchanged
// under InnerName(pkgname, fileName), all three with the header fields of
// st. It refuses signed input, packages whose first member is not
// +CONTENTS or that lack @name, and sizes pkg_install cannot handle
// (ErrBlockMultiple). It returns the hash file.
func SignPackage(w io.Writer, r io.ReaderAt, size int64, fileName string, st Stat, s Signer) (*HashFile, error) {
	meta, err := pkgfile.ReadMeta(fileName, io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	if meta.Signed {
		return nil, fmt.Errorf("%s: already a signed package (extract its inner package first)", fileName)
	}
	pkgname := meta.PkgName()
	if pkgname == "" {
		return nil, fmt.Errorf("%s: %w: +CONTENTS has no @name", fileName, pkgfile.ErrFormat)
	}
	hf, err := ComputeHashFile(pkgname, io.NewSectionReader(r, 0, size), size)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", fileName, pkgname, err)
	}
	hash := hf.Marshal()
	sig, err := s.Sign(hash)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileName, err)
	}
	st = st.fit()
	aw := ar.NewWriter(w)
	hdr := func(name string, n int64) *ar.Header {
		return &ar.Header{Name: name, ModTime: st.ModTime, UID: st.UID, GID: st.GID, Mode: st.Mode, Size: n}
	}
	for _, m := range []struct {
		name string
		data []byte
	}{{HashMember, hash}, {s.MemberName(), sig}} {
		if err := aw.WriteHeader(hdr(m.name, int64(len(m.data)))); err != nil {
			return nil, err
		}
		if _, err := aw.Write(m.data); err != nil {
			return nil, err
		}
	}
	if err := aw.WriteHeader(hdr(InnerName(pkgname, fileName), size)); err != nil {
		return nil, err
	}
	if n, err := io.Copy(aw, io.NewSectionReader(r, 0, size)); err != nil {
		return nil, err
	} else if n != size {
		return nil, fmt.Errorf("%s: package shrank while signing: %d of %d bytes", fileName, n, size)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return hf, nil
}

// ErrNotSigned is returned by ExtractInner for a plain package.
var ErrNotSigned = errors.New("not a signed package")

// ExtractInner copies the third member of a signed container (the
// package) to w and returns its header. The signature is not checked.
func ExtractInner(r io.Reader, w io.Writer) (*ar.Header, error) {
	a, err := ar.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSigned, err)
	}
	for i := 0; i < 3; i++ {
		h, err := a.Next()
		if err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("signed container has %d members, want 3", i)
			}
			return nil, err
		}
		if i == 2 {
			n, err := io.Copy(w, a)
			if err != nil {
				return nil, err
			}
			if n != h.Size {
				return nil, fmt.Errorf("inner package %s: %d of %d bytes", h.Name, n, h.Size)
			}
			return h, nil
		}
	}
	return nil, errors.New("unreachable")
}

// Result is the verdict on one package, as `pkgsign verify` reports it.
type Result struct {
	File      string `json:"file"`
	PkgName   string `json:"pkgname,omitempty"`
	Signed    bool   `json:"signed"`
	Signature string `json:"signature_member,omitempty"`
	Signer    string `json:"signer,omitempty"`
	// SignatureChecked is false when no key or anchor was given: then only
	// the structure and the block hashes are checked.
	SignatureChecked bool    `json:"signature_checked"`
	InnerName        string  `json:"inner_name,omitempty"`
	InnerSize        int64   `json:"inner_size,omitempty"`
	Blocks           int64   `json:"blocks,omitempty"`
	BadBlocks        []int64 `json:"bad_blocks,omitempty"`
	// PkgAdd predicts pkg_add's verdict under VERIFIED_INSTALLATION=always:
	// "accept", "reject", or "unknown" (signature not checked).
	PkgAdd string `json:"pkg_add"`
	// Problems are what makes pkg_add reject the package.
	Problems []string `json:"problems,omitempty"`
	// Notes are defects pkg_add does not look at (bytes outside the
	// signed data that differ from what pkg_admin writes); they make
	// pkgsign verify fail too.
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether the package passed every check that was asked for.
func (r *Result) OK() bool {
	return r.Signed && len(r.Problems) == 0 && len(r.Notes) == 0
}

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// tailReader counts bytes and remembers the last one and the first
// prefixCap bytes, so that the verifier can compare the container with
// its canonical encoding and check the final pad byte.
type tailReader struct {
	r         io.Reader
	n         int64
	last      byte
	prefix    []byte
	prefixCap int
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.n += int64(n)
		t.last = p[n-1]
		if room := t.prefixCap - len(t.prefix); room > 0 {
			t.prefix = append(t.prefix, p[:min(n, room)]...)
		}
	}
	return n, err
}

// memberLimit bounds what is read of +PKG_HASH (a 4 GB package has an
// 8.4 MB hash file) and of the signature, as lib/pkgfile bounds them.
func memberLimit(i int) int64 {
	if i == 0 {
		return pkgfile.MaxHashSize
	}
	return pkgfile.MaxSignatureSize
}

// VerifyPackage reads a package stream and checks it as pkg_add would
// (pkg_verify_signature and the verifying read of the inner package):
// ar structure, +PKG_HASH template, signature (when v is not nil), inner
// size, every block's hash with pkg_install's block lengths. It adds
// strict checks pkg_add does not make (canonical container bytes, equal
// header fields, inner member name, the inner +CONTENTS @name) as Notes.
// The error is only for I/O errors; everything about the content is in
// the Result.
func VerifyPackage(name string, r io.Reader, v Verifier) (*Result, error) {
	res := &Result{File: name, PkgAdd: "reject"}
	tr := &tailReader{r: r, prefixCap: 16 << 20}
	br := bufio.NewReaderSize(tr, 64<<10)
	head, err := br.Peek(len(ar.Magic))
	if err != nil && err != io.EOF {
		return nil, err
	}
	if string(head) != ar.Magic {
		res.problem("not signed: the file is not an ar container (pkg_add treats it as an unsigned package)")
		return res, nil
	}
	a, err := ar.NewReader(br)
	if err != nil {
		return nil, err
	}
	res.Signed = true
	var hdrs []*ar.Header
	var hash, sig []byte
	for i, want := range []string{HashMember, ""} {
		h, err := a.Next()
		if err != nil {
			if err == io.EOF {
				res.problem("ar member %d missing", i+1)
				return res, nil
			}
			if errors.Is(err, ar.ErrFormat) {
				res.problem("%v", err)
				return res, nil
			}
			return nil, err
		}
		if want != "" && h.Name != want {
			res.problem("first ar member is %q, want %s (pkg_add: unsigned or invalid)", h.Name, want)
			return res, nil
		}
		if i == 1 && h.Name != X509Member && h.Name != GPGMember {
			res.problem("second ar member is %q, want %s or %s", h.Name, X509Member, GPGMember)
			return res, nil
		}
		if limit := memberLimit(i); h.Size > limit {
			res.problem("%s is %d bytes, more than the %s allowed", h.Name, h.Size, pkgfile.FormatSize(limit))
			return res, nil
		}
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(a, b); err != nil {
			if errors.Is(err, ar.ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) {
				res.problem("%s: %v", h.Name, err)
				return res, nil
			}
			return nil, err
		}
		hdrs = append(hdrs, h)
		if i == 0 {
			hash = b
		} else {
			sig = b
			res.Signature = h.Name
		}
	}
	// Keep only what the canonical-encoding check needs: the container up
	// to the inner member's name (names beyond 4 KiB are not compared).
	need := len(ar.Magic) + 3*ar.HeaderSize + 4096
	for _, h := range hdrs {
		need += longNameLen(h.Name) + int(h.Size) + int(h.Size+int64(longNameLen(h.Name)))%2
	}
	tr.prefixCap = need
	if len(tr.prefix) > need {
		tr.prefix = tr.prefix[:need]
	}
	hf, err := ParseHashFile(hash)
	if err != nil {
		res.problem("Unknown format of hash file: %v", err)
		return res, nil
	}
	res.PkgName = hf.PkgName
	res.Blocks = hf.Blocks()
	if res.Signature == GPGMember {
		notes, problems := checkArmor(sig)
		res.Notes = append(res.Notes, notes...)
		res.Problems = append(res.Problems, problems...)
	} else {
		res.Notes = append(res.Notes, checkPKCS7Form(sig)...)
	}
	if v != nil {
		signer, err := v.Verify(res.Signature, hash, sig)
		res.SignatureChecked = true
		if err != nil {
			res.problem("signature: %v", err)
		} else {
			res.Signer = signer
		}
	}
	h, err := a.Next()
	if err != nil {
		if err == io.EOF {
			res.problem("Cannot read inner package: no third ar member")
			return res, nil
		}
		if errors.Is(err, ar.ErrFormat) {
			res.problem("Cannot read inner package: %v", err)
			return res, nil
		}
		return nil, err
	}
	hdrs = append(hdrs, h)
	res.InnerName, res.InnerSize = h.Name, h.Size
	if h.Size != hf.FileSize {
		res.problem("Package size doesn't match signature: inner package %s is %d bytes, +PKG_HASH says %d", h.Name, h.Size, hf.FileSize)
		return res, nil
	}
	if hf.FileSize%hf.BlockSize == 0 {
		res.problem("file size %d is an exact multiple of the block size %d: pkg_install reads the last block as 0 bytes and cannot verify such a package (spec §3.2)", hf.FileSize, hf.BlockSize)
	}

	// The inner package also feeds pkgfile.ReadMeta, to compare its @name
	// with the hash file's pkgname.
	pr, pw := io.Pipe()
	metaDone := make(chan struct{})
	var meta *pkgfile.Meta
	var metaErr error
	go func() {
		defer close(metaDone)
		meta, metaErr = pkgfile.ReadMeta(h.Name, pr)
		// Metadata read: the rest of the package need not pass the pipe.
		pr.CloseWithError(io.ErrClosedPipe)
	}()
	ioErr := checkBlocks(res, hf, a, pw)
	pw.Close()
	<-metaDone
	if ioErr != nil {
		return nil, ioErr
	}
	switch {
	case metaErr != nil:
		res.note("inner package: %v", metaErr)
	case meta.PkgName() != hf.PkgName:
		res.note("inner package's +CONTENTS says @name %s, +PKG_HASH says %s", meta.PkgName(), hf.PkgName)
	}

	// After the inner package: its pad byte, then nothing.
	if _, err := a.Next(); err != io.EOF {
		if err == nil {
			res.note("extra ar members after the inner package")
		} else if errors.Is(err, ar.ErrFormat) {
			res.note("after the inner package: %v", err)
		} else {
			return nil, err
		}
	} else {
		want := int64(len(ar.Magic))
		for _, h := range hdrs {
			stored := h.Size + int64(longNameLen(h.Name))
			want += ar.HeaderSize + stored + stored%2
		}
		switch {
		case tr.n != want:
			res.note("the file is %d bytes, its ar headers account for %d (missing or extra padding)", tr.n, want)
		case (h.Size+int64(longNameLen(h.Name)))%2 == 1 && tr.last != '\n':
			res.note("the pad byte after the inner package is %q, not \"\\n\"", tr.last)
		}
	}
	checkCanonical(res, hdrs, hash, sig, tr.prefix)
	if v == nil {
		res.PkgAdd = "unknown"
	} else if len(res.Problems) == 0 {
		res.PkgAdd = "accept"
	}
	return res, nil
}

// checkBlocks reads the inner package with pkg_install's block lengths and
// compares every block's hash; the bytes also go to meta.
func checkBlocks(res *Result, hf *HashFile, inner io.Reader, meta io.Writer) error {
	d := sha512.New()
	var sum [sha512.Size]byte
	n := hf.Blocks()
	metaOK := true
	for i := int64(0); i < n; i++ {
		want := hf.BlockLen(i)
		d.Reset()
		var w io.Writer = d
		if metaOK {
			w = io.MultiWriter(d, &errIgnorer{w: meta, ok: &metaOK})
		}
		got, err := io.CopyN(w, inner, want)
		if err != nil {
			if err == io.EOF || errors.Is(err, ar.ErrFormat) {
				res.problem("Short read from package: block %d has %d of %d bytes", i, got, want)
				return nil
			}
			return err
		}
		if hex.EncodeToString(d.Sum(sum[:0])) != hf.Hashes[i] {
			res.BadBlocks = append(res.BadBlocks, i)
			if len(res.BadBlocks) <= 10 {
				off := i * hf.BlockSize
				res.problem("Invalid signature of block %d (bytes %d-%d of the inner package)", i, off, off+want-1)
			}
		}
	}
	if len(res.BadBlocks) > 10 {
		res.problem("... %d invalid blocks in all", len(res.BadBlocks))
	}
	return nil
}

// errIgnorer forwards writes until the first error (the meta reader may
// stop reading early on a bad package) and then drops them.
type errIgnorer struct {
	w  io.Writer
	ok *bool
}

func (e *errIgnorer) Write(p []byte) (int, error) {
	if *e.ok {
		if _, err := e.w.Write(p); err != nil {
			*e.ok = false
		}
	}
	return len(p), nil
}

func longNameLen(name string) int {
	if len(name) > 16 || strings.IndexByte(name, ' ') >= 0 {
		return len(name)
	}
	return 0
}

// checkCanonical compares the container bytes before the inner package's
// data with what pkg_admin (libarchive's ar_bsd writer) writes for the
// parsed headers, and checks that the three headers carry the same stat
// fields and that the inner name is <pkgname>.tmp<suffix>.
func checkCanonical(res *Result, hdrs []*ar.Header, hash, sig, prefix []byte) {
	if len(hdrs) != 3 {
		return
	}
	for _, h := range hdrs[1:] {
		if !h.ModTime.Equal(hdrs[0].ModTime) || h.UID != hdrs[0].UID || h.GID != hdrs[0].GID || h.Mode != hdrs[0].Mode {
			res.note("ar header of %s has mtime/uid/gid/mode %d/%d/%d/%o, %s has %d/%d/%d/%o (pkg_admin copies one stat into all three)",
				h.Name, h.ModTime.Unix(), h.UID, h.GID, h.Mode, hdrs[0].Name, hdrs[0].ModTime.Unix(), hdrs[0].UID, hdrs[0].GID, hdrs[0].Mode)
		}
	}
	var buf bytes.Buffer
	aw := ar.NewWriter(&buf)
	for i, data := range [][]byte{hash, sig, nil} {
		h := *hdrs[i]
		if err := aw.WriteHeader(&h); err != nil {
			res.note("ar header of %s cannot be written by pkg_admin: %v", h.Name, err)
			return
		}
		if data != nil {
			_, _ = aw.Write(data)
		}
	}
	want := buf.Bytes()
	if len(prefix) < len(want) {
		return // members too large to keep; nothing to compare
	}
	if !bytes.Equal(prefix[:len(want)], want) {
		i := 0
		for prefix[i] == want[i] {
			i++
		}
		res.note("container byte %d is %q, pkg_admin would write %q there (ar headers and padding are not covered by the signature)", i, prefix[i], want[i])
	}
	if name := hdrs[2].Name; res.PkgName != "" {
		rest, ok := strings.CutPrefix(name, res.PkgName+".tmp")
		if !ok || (rest != "" && Suffix(rest) != rest) {
			res.note("inner member is named %q, pkg_admin (via pkgsrc) names it %s.tmp<suffix>", name, res.PkgName)
		}
	}
}
