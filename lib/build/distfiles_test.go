package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// addPackage writes a package directory fixture/<name> into the test tree.
func (e *env) addPackage(name, makefile, distinfo string) {
	e.t.Helper()
	dir := filepath.Join(e.tree, "fixture", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	for f, body := range map[string]string{"Makefile": makefile, "DESCR": name + "\n", "distinfo": distinfo} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDistfilesFromStore: a distfile in the store (DIST_SUBDIR included)
// is used with no site at all; one that is not in distinfo's shape is
// deleted and the build fails at checksum without it.
func TestDistfilesFromStore(t *testing.T) {
	e := newEnv(t)
	data, err := os.ReadFile(filepath.Join(e.tree, "sites", "example", "exdist", "exdist-1.0.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	e.addPackage("fromstore", `DISTNAME=	exdist-1.0
PKGNAME=	fromstore-1.0
CATEGORIES=	fixture
COMMENT=	Distfile only in the store
DIST_SUBDIR=	sub
MASTER_SITES=	# none

.include "../../mk/bsd.pkg.mk"
`, fmt.Sprintf("$NetBSD$\n\nSHA256 (sub/exdist-1.0.tar.gz) = %s\nSize (sub/exdist-1.0.tar.gz) = %d bytes\n", sha256Hex(data), len(data)))
	record := "PKGNAME=fromstore-1.0\nPKG_LOCATION=fixture/fromstore\nDEPENDS=\n"

	// Corrupt in the store: deleted, not used; nothing to fetch from.
	bad := []byte(strings.Repeat("x", len(data)))
	os.MkdirAll(filepath.Join(e.storeDir, "distfiles", "sub"), 0o755)
	os.WriteFile(filepath.Join(e.storeDir, "distfiles", "sub", "exdist-1.0.tar.gz"), bad, 0o644)
	res := e.run(e.builder(func(s *job.Settings) { s.KeepWorkdir = false }), record)
	if res.Status != job.StatusFailed || res.FailedPhase != "checksum" {
		t.Fatalf("with a corrupt store copy: %s %s (%s), want failed at checksum", res.Status, res.FailedPhase, res.Message)
	}
	if e.exists("distfiles/sub/exdist-1.0.tar.gz") {
		t.Error("the corrupt distfile is still in the store")
	}
	if log := e.read("bulklog/fromstore-1.0/checksum.log"); !strings.Contains(log, "corrupt") {
		t.Errorf("checksum.log does not say the store's copy was corrupt:\n%s", log)
	}

	// A good copy: used, and the network is not even needed.
	os.WriteFile(filepath.Join(e.storeDir, "distfiles", "sub", "exdist-1.0.tar.gz"), data, 0o644)
	res = e.run(e.builder(func(s *job.Settings) { s.Network = "none" }), record)
	if res.Status != job.StatusDone {
		t.Fatalf("with the store's copy: %s (%s)", res.Status, res.Message)
	}
}

// TestDistfilesNoSymlinks: a package whose fetch leaves a symbolic link to
// a host file in DISTDIR (matching distinfo) never gets that file into
// the store: pkgrun reads fetched files without following links.
func TestDistfilesNoSymlinks(t *testing.T) {
	e := newEnv(t)
	target := "/etc/passwd"
	data, err := os.ReadFile(target)
	if err != nil {
		t.Skip(err)
	}
	e.addPackage("linkdist", `DISTNAME=	linkdist-1.0
CATEGORIES=	fixture
COMMENT=	Fetch makes a link out
MASTER_SITES=	# none

fetch: _link-out
_link-out:
	@mkdir -p ${DISTDIR}
	@ln -sf `+target+` ${DISTDIR}/linkdist-1.0.tar.gz

.include "../../mk/bsd.pkg.mk"
`, fmt.Sprintf("$NetBSD$\n\nSHA256 (linkdist-1.0.tar.gz) = %s\nSize (linkdist-1.0.tar.gz) = %d bytes\n", sha256Hex(data), len(data)))
	res := e.run(e.builder(nil), "PKGNAME=linkdist-1.0\nPKG_LOCATION=fixture/linkdist\nDEPENDS=\n")
	if res.FailedPhase == "checksum" {
		t.Fatalf("the link was not made or not followed by make: %s", res.Message)
	}
	if e.count("distfiles/") != 0 {
		t.Errorf("a file reached through a link in DISTDIR was stored")
	}
	if log := e.read("bulklog/linkdist-1.0/checksum.log"); !strings.Contains(log, "linkdist-1.0.tar.gz: not stored") {
		t.Errorf("checksum.log does not say the linked file was not stored:\n%s", log)
	}
}

// TestDistfilesDistdirLink: a package whose pre-clean makes DISTDIR a link
// to a host directory does not make pkgrun write the store's distfile
// there; the file is left to make.
func TestDistfilesDistdirLink(t *testing.T) {
	e := newEnv(t)
	canary := t.TempDir()
	data := []byte("a distfile\n")
	e.addPackage("linkdir", `DISTNAME=	linkdir-1.0
CATEGORIES=	fixture
COMMENT=	DISTDIR is a link out
MASTER_SITES=	# none

clean: _link-distdir
_link-distdir:
	@rm -rf ${DISTDIR}
	@ln -s `+canary+` ${DISTDIR}

.include "../../mk/bsd.pkg.mk"
`, fmt.Sprintf("$NetBSD$\n\nSHA256 (linkdir-1.0.tar.gz) = %s\nSize (linkdir-1.0.tar.gz) = %d bytes\n", sha256Hex(data), len(data)))
	os.MkdirAll(filepath.Join(e.storeDir, "distfiles"), 0o755)
	os.WriteFile(filepath.Join(e.storeDir, "distfiles", "linkdir-1.0.tar.gz"), data, 0o644)
	res := e.run(e.builder(nil), "PKGNAME=linkdir-1.0\nPKG_LOCATION=fixture/linkdir\nDEPENDS=\n")
	if ents, _ := os.ReadDir(canary); len(ents) != 0 {
		t.Fatalf("pkgrun wrote through the build's link into %s: %v", canary, ents)
	}
	if res.FailedPhase != "checksum" {
		t.Errorf("failed phase %q (%s), want checksum (make finds no distfile)", res.FailedPhase, res.Message)
	}
	if log := e.read("bulklog/linkdir-1.0/checksum.log"); !strings.Contains(log, "cannot write it into DISTDIR") {
		t.Errorf("checksum.log:\n%s", log)
	}
}
