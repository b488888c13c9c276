# bsd.prefs.mk: settings shared by every package of the example tree.
#
# Included by bsd.pkg.mk (and by a package Makefile that needs a setting
# before it declares its own variables).  It only reads and defaults
# variables; it defines no targets.
#
# Variables a caller (pkgrun) passes on the make command line; every one has
# a default so that `bmake pbulk-index` works with no arguments at all:
#
#   PREFIX     installation prefix (= LOCALBASE).  Dependencies must already be
#              installed below it before a build starts.   default /usr/pkg
#   PKG_DBDIR  database of installed packages: one directory per installed
#              package, ${PKG_DBDIR}/<PKGNAME>/ holding its +CONTENTS etc.
#                                                    default ${PREFIX}/pkgdb
#   WRKOBJDIR  work directories live below it, never inside the tree.
#                                   default ${TMPDIR}/pkgbulk-examples-work
#   PACKAGES   `package` copies the package file to ${PACKAGES}/All/.
#                               default ${TMPDIR}/pkgbulk-examples-packages
#   DISTDIR    distfiles are looked for (and fetched) here.
#                              default ${TMPDIR}/pkgbulk-examples-distfiles
#   DIST_PATH  directories searched for a distfile missing from DISTDIR
#              before MASTER_SITES; a file found is copied.
#                                            default ${PKGSRCDIR}/distfiles
#   MASTER_SITE_EXAMPLE  the "internet" of the tree: where the packages
#              with MASTER_SITES fetch from.  default file://${PKGSRCDIR}/sites/example/
#   WRKLOG     commands run by the build phases are appended to this file.
#   MAKECONF   optional mk.conf, read first when it exists.

.if !defined(_EX_PREFS_MK)
_EX_PREFS_MK=	# defined

.if defined(MAKECONF) && exists(${MAKECONF})
.  include "${MAKECONF}"
.endif

# One uname(1) per make run.  Assigned, not defaulted: the host's sys.mk
# has its own ideas (Debian says amd64 where pkgsrc says x86_64).
_EX_UNAME!=	uname -srm
OPSYS=		${_EX_UNAME:[1]}
OS_VERSION=	${_EX_UNAME:[2]:C/-.*//}
MACHINE_ARCH=	${_EX_UNAME:[3]}

PREFIX?=	/usr/pkg
LOCALBASE?=	${PREFIX}
PKG_DBDIR?=	${PREFIX}/pkgdb
TMPDIR?=	/tmp
WRKOBJDIR?=	${TMPDIR}/pkgbulk-examples-work
PACKAGES?=	${TMPDIR}/pkgbulk-examples-packages

# The tree root and the package's place in it.  Package directories are
# always exactly two levels below the root (category/dir).
# From the package directory, not from this file: cycle-tree/mk is a
# symbolic link to this directory.
PKGSRCDIR:=	${.CURDIR:tA:H:H}
PKGPATH?=	${.CURDIR:H:T}/${.CURDIR:T}
DISTDIR?=	${TMPDIR}/pkgbulk-examples-distfiles
DIST_PATH?=	${PKGSRCDIR}/distfiles
MASTER_SITE_EXAMPLE?=	file://${PKGSRCDIR}/sites/example/
FILESDIR?=	${.CURDIR}/files

CC?=		cc
TAR?=		tar
SH?=		/bin/sh

PKGTOOLS_VERSION=	20091115
.endif	# _EX_PREFS_MK
