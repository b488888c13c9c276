// Package summary builds and reads pkg_summary(5) files.
//
// Entry reproduces, byte for byte, what pkg_install's `pkg_info -X` prints
// for one binary package (info/show.c show_summary, spec §1.2):
//
//  1. +CONTENTS in file order: PKGNAME= for @name, DEPENDS= for each
//     @pkgdep, CONFLICTS= for each @pkgcfl;
//  2. COMMENT= lines from +COMMENT, then SIZE_PKG= lines when +SIZE_PKG
//     exists (split at "\n"; a final newline makes no empty line; an empty
//     file prints nothing);
//  3. the lines of +BUILD_INFO that start with PKGPATH=, CATEGORIES=,
//     PROVIDES=, REQUIRES=, PKG_OPTIONS=, OPSYS=, OS_VERSION=, MACHINE_ARCH=,
//     LICENSE=, HOMEPAGE=, PKGTOOLS_VERSION=, BUILD_DATE=, PREV_PKGPATH= or
//     SUPERSEDES=, verbatim, in +BUILD_INFO's own order;
//  4. FILE_NAME= and FILE_SIZE= when built from a package file (and, as an
//     extension pkg_info lacks, FILE_CKSUM= when asked for);
//  5. DESCRIPTION= lines from +DESC, then one empty line.
//
// Metadata files are cut at their first NUL byte, as pkg_info reads them as
// C strings. Parse and Reader read pkg_summary files tolerantly: unknown
// variables are kept, empty values are fine, order is preserved.
package summary

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
)

// buildInfoVars are the +BUILD_INFO variables pkg_info -X copies.
var buildInfoVars = []string{
	"PKGPATH", "CATEGORIES", "PROVIDES", "REQUIRES", "PKG_OPTIONS", "OPSYS",
	"OS_VERSION", "MACHINE_ARCH", "LICENSE", "HOMEPAGE", "PKGTOOLS_VERSION",
	"BUILD_DATE", "PREV_PKGPATH", "SUPERSEDES",
}

// File describes the package file an entry is generated from.
type File struct {
	Name  string // FILE_NAME (the base name); "" omits FILE_NAME and FILE_SIZE
	Size  int64  // FILE_SIZE
	Cksum string // FILE_CKSUM value such as "sha256 <hex>", after FILE_SIZE; "" omits it
}

// Entry returns the pkg_summary entry exactly as `pkg_info -X` prints it
// for a package file with the given metadata; fileName/fileSize are
// FILE_NAME/FILE_SIZE (omitted when fileName == ""), ending with the blank
// line.
func Entry(m *pkgfile.Meta, fileName string, fileSize int64) []byte {
	return AppendEntry(nil, m, File{Name: fileName, Size: fileSize})
}

// AppendEntry appends the entry of m and f to dst.
func AppendEntry(dst []byte, m *pkgfile.Meta, f File) []byte {
	files := map[string][]byte{}
	if m != nil && m.Files != nil {
		files = m.Files
	}
	b := bytes.NewBuffer(dst)
	b.Grow(4096)
	pkgfile.EachLine(files[pkgfile.ContentsName], func(cmd string, arg []byte) bool {
		var v string
		switch cmd {
		case "name":
			v = "PKGNAME="
		case "pkgdep":
			v = "DEPENDS="
		case "pkgcfl":
			v = "CONFLICTS="
		default:
			return true
		}
		b.WriteString(v)
		if len(arg) == 0 {
			// pkg_install stores an empty argument as NULL and printf
			// renders that as "(null)" in both NetBSD libc and glibc.
			b.WriteString("(null)")
		} else {
			b.Write(arg)
		}
		b.WriteByte('\n')
		return true
	})
	writeAsVar(b, "COMMENT", files[pkgfile.CommentName])
	if sp, ok := files[pkgfile.SizePkgName]; ok {
		writeAsVar(b, "SIZE_PKG", sp)
	}
	if bi, ok := files[pkgfile.BuildInfoName]; ok {
		copyBuildInfo(b, pkgfile.CString(bi))
	}
	if f.Name != "" {
		b.WriteString("FILE_NAME=")
		b.WriteString(f.Name)
		b.WriteString("\nFILE_SIZE=")
		b.WriteString(strconv.FormatInt(f.Size, 10))
		b.WriteByte('\n')
	}
	if f.Cksum != "" {
		b.WriteString("FILE_CKSUM=")
		b.WriteString(f.Cksum)
		b.WriteByte('\n')
	}
	writeAsVar(b, "DESCRIPTION", files[pkgfile.DescName])
	b.WriteByte('\n')
	return b.Bytes()
}

// writeAsVar is pkg_info's print_string_as_var.
func writeAsVar(b *bytes.Buffer, name string, val []byte) {
	val = pkgfile.CString(val)
	for len(val) > 0 {
		line := val
		if i := bytes.IndexByte(val, '\n'); i >= 0 {
			line, val = val[:i], val[i+1:]
		} else {
			val = nil
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.Write(line)
		b.WriteByte('\n')
	}
}

// copyBuildInfo is pkg_install's var_copy_list over buildInfoVars.
func copyBuildInfo(b *bytes.Buffer, bi []byte) {
	for len(bi) > 0 {
		line := bi
		if i := bytes.IndexByte(bi, '\n'); i >= 0 {
			line, bi = bi[:i], bi[i+1:]
		} else {
			bi = nil
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 {
			continue
		}
		name := line[:eq]
		for _, v := range buildInfoVars {
			if string(name) == v {
				b.Write(line)
				b.WriteByte('\n')
				break
			}
		}
	}
}

// PkgName returns the PKGNAME of a package: the argument of the @name
// line of its +CONTENTS. A package without one, with an empty one or with
// several is refused (an error wrapping pkgfile.ErrFormat): pkg_info -X
// would print an entry without PKGNAME, with PKGNAME=(null), or with
// two, and no client can use such an entry.
func PkgName(m *pkgfile.Meta) (string, error) {
	var names []string
	if m != nil {
		pkgfile.EachLine(m.Files[pkgfile.ContentsName], func(cmd string, arg []byte) bool {
			if cmd == "name" {
				names = append(names, string(arg))
			}
			return true
		})
	}
	switch {
	case len(names) == 0:
		return "", fmt.Errorf("%w: %s has no @name line", pkgfile.ErrFormat, pkgfile.ContentsName)
	case len(names) > 1:
		return "", fmt.Errorf("%w: %s has %d @name lines (%s, %s, ...)", pkgfile.ErrFormat, pkgfile.ContentsName, len(names), names[0], names[1])
	case names[0] == "":
		return "", fmt.Errorf("%w: %s has an empty @name", pkgfile.ErrFormat, pkgfile.ContentsName)
	}
	return names[0], nil
}

// EntryOptions select what EntryFromFile adds beyond pkg_info -X.
type EntryOptions struct {
	Cksum bool // add FILE_CKSUM=sha256 <hex> (reads the whole file)
}

// EntryFromFile reads the package at path and returns its entry, as
// `pkg_info -X path` prints it. A package without a PKGNAME (see PkgName)
// is an error.
func EntryFromFile(path string) ([]byte, error) {
	return EntryFromFileOpts(path, EntryOptions{})
}

// EntryFromFileOpts is EntryFromFile with options. The file is opened once
// and read once: with Cksum the whole file is hashed while the metadata is
// parsed from the same bytes.
func EntryFromFileOpts(path string, o EntryOptions) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var r io.Reader = f
	h := NewCksum()
	if o.Cksum {
		r = io.TeeReader(f, h)
	}
	m, err := pkgfile.ReadMeta(path, r)
	if err != nil {
		return nil, err
	}
	if _, err := PkgName(m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	file := File{Name: filepath.Base(path), Size: st.Size()}
	if o.Cksum {
		if _, err := io.Copy(h, f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		file.Cksum = h.String()
	}
	return AppendEntry(nil, m, file), nil
}

// Hash accumulates a FILE_CKSUM value.
type Hash interface {
	io.Writer
	String() string // "<algorithm> <hex>"
}

// NewCksum returns the FILE_CKSUM hash pkgindex writes: SHA-256, as
// pkgsrc-rs and bob do ("sha256 <64 hex digits>").
func NewCksum() Hash { return &sha256Cksum{h: sha256.New()} }

type sha256Cksum struct{ h hash.Hash }

func (c *sha256Cksum) Write(p []byte) (int, error) { return c.h.Write(p) }
func (c *sha256Cksum) String() string              { return "sha256 " + hex.EncodeToString(c.h.Sum(nil)) }
