// Command gentree writes a pkgsrc-like tree for pkgscan's benchmark: N
// package directories in categories, each package Makefile including a
// few other packages' buildlink3.mk files and a dozen shared .mk files
// full of loops and conditionals, so that every `bmake pbulk-index` does a
// realistic amount of make work (pkgsrc's real one reads ~100 files). It
// also writes locations.txt: the package directories in scan order.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
)

const nMk = 12 // shared mk files in mk/gen

func main() {
	n := flag.Int("n", 2000, "number of package directories")
	cats := flag.Int("categories", 20, "number of categories")
	out := flag.String("o", "tree", "directory to create")
	flag.Parse()
	if err := gen(*out, *n, *cats); err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(2)
	}
}

func write(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func gen(root string, n, ncat int) error {
	rnd := rand.New(rand.NewSource(1))
	var b strings.Builder
	files := map[string]string{}

	// Top and category Makefiles.
	b.WriteString("# Generated benchmark tree.\n")
	for c := 0; c < ncat; c++ {
		fmt.Fprintf(&b, "SUBDIR+=\tcat%02d\n", c)
	}
	b.WriteString("\n.include \"mk/misc/category.mk\"\n")
	files["Makefile"] = b.String()
	files["mk/misc/category.mk"] = ".include \"${.PARSEDIR}/../bsd.prefs.mk\"\n\nshow-subdir-var:\n\t@echo ${${VARNAME}:Q}\n"

	// Shared mk files: each loops over a list of option words, tests
	// them against the package's options, rewrites and sorts lists.
	files["mk/defaults/mk.conf"] = "LOCALBASE?=\t/usr/pkg\nPKG_DEFAULT_OPTIONS?=\tw1 w5 w9\nMACHINE_ARCH?=\tx86_64\n"
	files["mk/platform/Linux.mk"] = "ECHO?=\techo\nSH?=\t/bin/sh\n.for t in awk sed grep tar gzip bzip2 xz patch\nTOOLS_PATH.${t}?=\t/usr/bin/${t}\n.endfor\n"
	files["mk/bsd.prefs.mk"] = `.if !defined(BSD_PREFS_MK)
BSD_PREFS_MK=	yes
OPSYS=		Linux
.include "defaults/mk.conf"
.include "platform/${OPSYS}.mk"
.endif
`
	var gens strings.Builder
	for m := 0; m < nMk; m++ {
		var s strings.Builder
		fmt.Fprintf(&s, "# Shared mk file %d: option processing as pkgsrc does it.\n", m)
		var words []string
		for w := 0; w < 100; w++ {
			words = append(words, fmt.Sprintf("w%d", (w*7+m)%150))
		}
		fmt.Fprintf(&s, "_G%d_WORDS=\t%s\n", m, strings.Join(words, " "))
		fmt.Fprintf(&s, ".for w in ${_G%d_WORDS}\n", m)
		fmt.Fprintf(&s, "_G%d_N.${w}:=\t${_G%d_WORDS:M${w}*:[#]}\n", m, m)
		fmt.Fprintf(&s, ".  if !empty(PKG_OPTIONS:M${w}) || !empty(PKG_DEFAULT_OPTIONS:M${w})\n")
		fmt.Fprintf(&s, "_G%d_ON+=\t${w:S/^w/opt-/}\n", m)
		fmt.Fprintf(&s, ".  else\n_G%d_OFF+=\t${w:S/^w/no-/:tu}\n.  endif\n.endfor\n", m)
		fmt.Fprintf(&s, "_G%d_ALL:=\t${_G%d_ON:O:u} ${_G%d_OFF:O:u}\n", m, m, m)
		fmt.Fprintf(&s, ".if ${_G%d_ALL:[#]} > 30\n_G%d_BIG=\tyes\n.endif\n", m, m)
		fmt.Fprintf(&s, "_SUMMARY+=\t${_G%d_ALL:[1..3]:ts,}\n", m)
		files[fmt.Sprintf("mk/gen/g%02d.mk", m)] = s.String()
		fmt.Fprintf(&gens, ".include \"gen/g%02d.mk\"\n", m)
	}
	files["mk/extra.mk"] = "# Read by every tenth package.\nEXTRA_FLAVOUR?=\tplain\n.if ${EXTRA_FLAVOUR} == plain\nTOOL_DEPENDS+=\tpkgtools-0-[0-9]*:../../cat00/pkg0000\n.endif\n"
	files["mk/bsd.pkg.mk"] = `.include "bsd.prefs.mk"
` + gens.String() + `
PKGNAME?=		${DISTNAME}
MAINTAINER?=		pkgsrc-users@NetBSD.org
_USE_DESTDIR=		user-destdir
.for b in ${BUILDLINK_TREE:N-*}
_ALL_DEPENDS+=		${BUILDLINK_API_DEPENDS.${b}}:${BUILDLINK_PKGSRCDIR.${b}}
.endfor
.for d in ${TOOL_DEPENDS} ${DEPENDS}
_ALL_DEPENDS+=		${d}
.endfor

pbulk-index: pbulk-index-item
pbulk-index-item:
	@echo "PKGNAME="${PKGNAME:Q}
	@echo "ALL_DEPENDS="${_ALL_DEPENDS:Q}
	@echo "PKG_SKIP_REASON="${PKG_SKIP_REASON:Q}
	@echo "PKG_FAIL_REASON="${PKG_FAIL_REASON:Q}
	@echo "NO_BIN_ON_FTP="${NO_BIN_ON_FTP:Q}
	@echo "RESTRICTED="${RESTRICTED:Q}
	@echo "CATEGORIES="${CATEGORIES:Q}
	@echo "MAINTAINER="${MAINTAINER:Q}
	@echo "USE_DESTDIR="${_USE_DESTDIR:Q}
	@echo "BOOTSTRAP_PKG="${BOOTSTRAP_PKG}
	@echo "USERGROUP_PHASE="${USERGROUP_PHASE:Q}
	@echo "SCAN_DEPENDS="${.MAKE.MAKEFILES:O:u:Q}
`

	perCat := make([][]string, ncat)
	var locs []string
	for i := 0; i < n; i++ {
		c := i % ncat
		name := fmt.Sprintf("pkg%04d", i)
		loc := fmt.Sprintf("cat%02d/%s", c, name)
		perCat[c] = append(perCat[c], name)
		locs = append(locs, loc)
		files[loc+"/buildlink3.mk"] = fmt.Sprintf(`BUILDLINK_TREE+=	%[1]s
.if !defined(%[2]s_BUILDLINK3_MK)
%[2]s_BUILDLINK3_MK:=
BUILDLINK_API_DEPENDS.%[1]s+=	%[1]s>=1.0
BUILDLINK_PKGSRCDIR.%[1]s?=	../../%[3]s
.endif
BUILDLINK_TREE+=	-%[1]s
`, name, strings.ToUpper(name), loc)
		var m strings.Builder
		fmt.Fprintf(&m, "DISTNAME=\t%s-1.%d\nCATEGORIES=\tcat%02d\nPKG_OPTIONS=\tw%d w%d\n\n", name, i%7, c, rnd.Intn(60), rnd.Intn(60))
		if i%10 == 3 {
			m.WriteString(".include \"../../mk/extra.mk\"\n")
		}
		for k := 0; k < 3+rnd.Intn(6) && i > 0; k++ {
			d := rnd.Intn(i)
			fmt.Fprintf(&m, ".include \"../../cat%02d/pkg%04d/buildlink3.mk\"\n", d%ncat, d)
		}
		m.WriteString(".include \"../../mk/bsd.pkg.mk\"\n")
		files[loc+"/Makefile"] = m.String()
		files[loc+"/DESCR"] = "A generated package.\n"
	}
	for c := 0; c < ncat; c++ {
		var s strings.Builder
		fmt.Fprintf(&s, "COMMENT=\tCategory %d\n\n", c)
		for _, p := range perCat[c] {
			fmt.Fprintf(&s, "SUBDIR+=\t%s\n", p)
		}
		s.WriteString("\n.include \"../mk/misc/category.mk\"\n")
		files[fmt.Sprintf("cat%02d/Makefile", c)] = s.String()
	}
	// locations.txt in scan order: categories, then SUBDIR order.
	var order []string
	for c := 0; c < ncat; c++ {
		for _, p := range perCat[c] {
			order = append(order, fmt.Sprintf("cat%02d/%s", c, p))
		}
	}
	files["locations.txt"] = strings.Join(order, "\n") + "\n"
	for p, content := range files {
		if err := write(filepath.Join(root, p), content); err != nil {
			return err
		}
	}
	return nil
}
