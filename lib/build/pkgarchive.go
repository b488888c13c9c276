package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/ar"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
)

// openTar returns a tar reader over a binary package in any of the
// compressions pkg_create writes, detected by magic bytes (lib/pkgfile).
// A signed package (an ar container: +PKG_HASH, the signature, then the
// package) is read through to its inner package; its signature is not
// checked here (pkg_add would, lib/sign does). The closer releases the
// decompressor.
func openTar(r io.Reader) (*tar.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(8); bytes.HasPrefix(head, []byte("!<arch>\n")) {
		a, err := ar.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		for i := 0; i < 3; i++ {
			h, err := a.Next()
			if err != nil {
				return nil, nil, fmt.Errorf("signed package: member %d: %w", i+1, err)
			}
			if i < 2 && !strings.HasPrefix(h.Name, "+PKG_") {
				return nil, nil, fmt.Errorf("signed package: member %d is %q, want +PKG_HASH and a signature first", i+1, h.Name)
			}
		}
		br = bufio.NewReaderSize(a, 64<<10)
	}
	dr, _, closer, err := pkgfile.Decompress(br)
	if err != nil {
		return nil, nil, err
	}
	return tar.NewReader(dr), closer, nil
}

// readMeta reads the metadata files (the leading "+NAME" entries) of a
// package and stops at the first payload entry, so checking a package in a
// remote store reads only its head.
func readMeta(name string, r io.Reader) (map[string][]byte, error) {
	m, err := pkgfile.ReadMeta(name, r)
	if err != nil {
		return nil, err
	}
	return m.Files, nil
}

// parsePlist parses +CONTENTS as pkg_install does (lib/pkgfile).
func parsePlist(b []byte) []pkgfile.PlistEntry {
	pl, _ := pkgfile.ParseContents(b)
	return pl
}

// plistValues returns the arguments of every @cmd line.
func plistValues(pl []pkgfile.PlistEntry, cmd string) []string {
	var out []string
	for _, l := range pl {
		if l.Cmd == cmd {
			out = append(out, l.Arg)
		}
	}
	return out
}

func formatPlist(pl []pkgfile.PlistEntry) []byte {
	var b bytes.Buffer
	for _, l := range pl {
		if l.Cmd == "" {
			b.WriteString(l.Arg)
		} else {
			b.WriteString("@" + l.Cmd)
			if l.Arg != "" {
				b.WriteString(" " + l.Arg)
			}
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// parseBuildVersion reads +BUILD_VERSION: "path: id" lines, path relative
// to the pkgsrc root. Like pkg-up-to-date it splits at the first ':'.
func parseBuildVersion(b []byte) (map[string]string, []string, error) {
	ids := map[string]string{}
	var order []string
	for i, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		file, id, ok := strings.Cut(l, ":")
		file, id = strings.TrimSpace(file), strings.TrimSpace(id)
		if !ok || file == "" || id == "" {
			return nil, nil, fmt.Errorf("+BUILD_VERSION:%d: not a \"file: id\" line: %q", i+1, clip(l))
		}
		if _, seen := ids[file]; !seen {
			order = append(order, file)
		}
		ids[file] = id
	}
	return ids, order, nil
}
