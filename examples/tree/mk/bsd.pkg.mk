# bsd.pkg.mk: the package infrastructure of the example tree.  Every package
# Makefile ends with `.include "../../mk/bsd.pkg.mk"`.
#
# A package sets DISTNAME (and optionally PKGNAME, PKGREVISION), CATEGORIES,
# MAINTAINER, HOMEPAGE, COMMENT, LICENSE, and its dependencies as pkgsrc
# patterns with the directory that provides them:
#
#   DEPENDS+=		foo>=1.0:../../cat/foo		run-time (and build-time)
#   BUILD_DEPENDS+=	bar-[0-9]*:../../cat/bar	build-time only
#   TOOL_DEPENDS+=	{a,b}>=1:../../cat/a		tools run during the build
#
# Optional: DISTFILES (default ${DISTNAME}.tar.gz in ${DISTDIR}; empty for a
# package without distfiles), DIST_SUBDIR (the distfiles are in
# ${DISTDIR}/${DIST_SUBDIR} and distinfo names them with it), MASTER_SITES
# (URLs ending in /, file:// or http(s)://), WRKSRC, BROKEN (-> PKG_FAIL_REASON),
# ONLY_FOR_PLATFORM / NOT_FOR_PLATFORM (-> PKG_SKIP_REASON), PKG_SKIP_REASON,
# PKG_FAIL_REASON, RESTRICTED, NO_BIN_ON_FTP, BOOTSTRAP_PKG, USERGROUP_PHASE,
# PBULK_WEIGHT, USE_LANGUAGES=c (C packages: needs the bootstrap mk files),
# HAS_CONFIGURE, CONFIGURE_ARGS, MAKE_FLAGS, and its own do-configure,
# do-build, do-install or pre-/post- targets.
#
# Targets (each runs the phases before it that have not run yet; a phase's
# completion is a cookie file in ${WRKDIR}):
#   fetch                   copy each missing distfile from ${DIST_PATH}, else
#                           fetch it from MASTER_SITES (curl or wget)
#   checksum                fetch, then verify the distfiles against distinfo (SHA256)
#   depends                 check that every dependency is installed (never builds one)
#   extract configure all   unpack (and apply patches/patch-*), configure, build
#   stage-install           install into ${DESTDIR} = ${WRKDIR}/.destdir
#   stage-package-create    create ${STAGE_PKGFILE}
#   package                 the above, then copy it to ${PACKAGES}/All/
#   create-usergroup        no-op (this tree creates no users)
#   clean                   remove ${WRKDIR}
#   distinfo (makesum)      regenerate distinfo from the distfiles
#   show-var VARNAME=X      print the value of X
#   show-vars VARNAMES="X Y" print the value of each, one per line
#   pbulk-index pbulk-index-item pbulk-save-wrkdir    (mk/pbulk/pbulk-index.mk)

.include "bsd.prefs.mk"

.MAIN: all
.NOTPARALLEL:

# ---- names ------------------------------------------------------------------
PKGNAME?=	${DISTNAME}
.if defined(PKGREVISION) && !empty(PKGREVISION) && ${PKGREVISION} != "0"
PKGNAME_NOREV:=	${PKGNAME}
PKGNAME:=	${PKGNAME_NOREV}nb${PKGREVISION}
.else
PKGNAME_NOREV=	${PKGNAME}
.endif
PKGBASE=	${PKGNAME:C/-[^-]*$//}
PKGVERSION=	${PKGNAME:C/^.*-//}
EXTRACT_SUFX?=	.tar.gz
DISTFILES?=	${DISTNAME}${EXTRACT_SUFX}
MASTER_SITES?=	# none
# As pkgsrc: the files relative to ${DISTDIR}, with ${DIST_SUBDIR}.
.if defined(DIST_SUBDIR) && !empty(DIST_SUBDIR)
_DISTFILES=	${DISTFILES:@.f.@${DIST_SUBDIR}/${.f.}@}
.else
_DISTFILES=	${DISTFILES}
.endif
_ALLFILES=	${_DISTFILES:O:u}
_CKSUMFILES=	${_ALLFILES}
MAINTAINER?=	pkgsrc-users@NetBSD.org
HOMEPAGE?=	# none
LICENSE?=	# none
COMMENT?=	(no comment)
DESCR_SRC?=	${.CURDIR}/DESCR
DISTINFO_FILE?=	${.CURDIR}/distinfo
PATCHDIR?=	${.CURDIR}/patches
MACHINE_PLATFORM=	${OPSYS}-${OS_VERSION}-${MACHINE_ARCH}

# ---- reasons not to build ---------------------------------------------------
# Not predefined: `+=` on an empty variable would leave a leading blank.
.if defined(BROKEN)
PKG_FAIL_REASON+=	"${PKGNAME} is marked as broken: ${BROKEN}"
.endif
.if defined(ONLY_FOR_PLATFORM) && !empty(ONLY_FOR_PLATFORM)
_EX_OK=		no
.  for _p in ${ONLY_FOR_PLATFORM}
.    if !empty(MACHINE_PLATFORM:M${_p})
_EX_OK=		yes
.    endif
.  endfor
.  if ${_EX_OK} == "no"
PKG_SKIP_REASON+=	"${PKGNAME} is not available for ${MACHINE_PLATFORM}"
.  endif
.endif
.if defined(NOT_FOR_PLATFORM) && !empty(NOT_FOR_PLATFORM)
.  for _p in ${NOT_FOR_PLATFORM}
.    if !empty(MACHINE_PLATFORM:M${_p})
PKG_SKIP_REASON+=	"${PKGNAME} is not available for ${MACHINE_PLATFORM}"
.    endif
.  endfor
.endif
NO_BIN_ON_FTP?=		# empty
RESTRICTED?=		# empty
BOOTSTRAP_PKG?=		# empty
USERGROUP_PHASE?=	# empty
_USE_DESTDIR=		user-destdir

# ---- dependencies -------------------------------------------------------------
# C packages build with the example tree's own mk files (a bootstrap package).
.if defined(USE_LANGUAGES) && !empty(USE_LANGUAGES:Mc)
TOOL_DEPENDS+=	bootstrap-mk-files>=20240101:../../pkgtools/bootstrap-mk-files
.endif
TOOL_DEPENDS?=	# none
BUILD_DEPENDS?=	# none
DEPENDS?=	# none
# pkgsrc's internal order: tools, build-time, run-time.  Runs of blanks are
# kept on purpose: real scan output has them too.
_ALL_DEPENDS=	${TOOL_DEPENDS} ${BUILD_DEPENDS} ${DEPENDS}

# ---- work areas -------------------------------------------------------------
# One work directory per PKGNAME, so two multi-version builds of one
# directory never share it even under a common WRKOBJDIR.
WRKDIR?=	${WRKOBJDIR}/${PKGPATH}/work.${PKGNAME}
WRKSRC?=	${WRKDIR}/${DISTNAME}
DESTDIR=	${WRKDIR}/.destdir
PKG_SUFX?=	.tgz
STAGE_PKGFILE=	${WRKDIR}/.packages/${PKGNAME}${PKG_SUFX}
PKGFILE=	${PACKAGES}/All/${PKGNAME}${PKG_SUFX}
EX_MK:=		${.PARSEDIR:tA}
_COOKIE.depends=	${WRKDIR}/.depends_done
_COOKIE.extract=	${WRKDIR}/.extract_done
_COOKIE.configure=	${WRKDIR}/.configure_done
_COOKIE.build=		${WRKDIR}/.build_done
_COOKIE.install=	${WRKDIR}/.install_done

# Upstream builds get a clean make environment: the command-line variables
# of this make (PREFIX=, WRKOBJDIR=, ...) must not leak in through MAKEFLAGS.
MAKE_PROGRAM?=	${MAKE}
MAKE_ENV+=	MAKEFLAGS= MAKELEVEL= PATH=${PREFIX}/bin:${PATH:Q} CC=${CC:Q} PREFIX=${PREFIX:Q}
MAKE_FLAGS+=	PREFIX=${PREFIX:Q} CC=${CC:Q}
_RUN=		${SH} ${EX_MK}/scripts/logrun.sh ${WRKLOG:U:Q}

# The files whose contents define this build: +BUILD_VERSION lists them with
# their SHA256, and pbulk's up-to-date check compares them with the tree.
# Like pkgsrc: every file of the package directory, files/ and patches/.
# Evaluated lazily: the scan never needs it.
_BUILD_VERSION_FILES=	${:!cd ${PKGSRCDIR} && { find ${PKGPATH} -maxdepth 1 -type f; find ${PKGPATH}/files ${PKGPATH}/patches -type f 2>/dev/null || true; } | LC_ALL=C sort!}

# ---- phases -----------------------------------------------------------------
.PHONY: fetch checksum depends extract configure build all stage-install \
	stage-package-create package-create package create-usergroup clean \
	distinfo makesum show-var show-vars pre-configure do-configure post-configure \
	pre-build do-build post-build pre-install do-install post-install \
	_ex-reasons _ex-extract _ex-fetch

_ex-reasons:
.if !empty(PKG_SKIP_REASON) || !empty(PKG_FAIL_REASON)
	@echo "===> ${PKGNAME} cannot be built:" ${PKG_SKIP_REASON:U} ${PKG_FAIL_REASON:U} >&2
	@false
.endif

fetch: _ex-reasons _ex-fetch
_ex-fetch:
.if !empty(_ALLFILES)
	@${SH} ${EX_MK}/scripts/fetch.sh ${DISTDIR:Q} "${DIST_PATH}" "${MASTER_SITES}" ${_ALLFILES}
.endif

checksum: fetch
	@${SH} ${EX_MK}/scripts/checksum.sh ${DISTINFO_FILE:Q} ${DISTDIR:Q} ${_CKSUMFILES}

.if exists(${_COOKIE.depends})
depends:
.else
depends: _ex-reasons
	@mkdir -p ${WRKDIR:Q}
	@env PKGNAME=${PKGNAME:Q} PKG_DBDIR=${PKG_DBDIR:Q} PREFIX=${PREFIX:Q} \
	    WRKDIR=${WRKDIR:Q} EX_MK=${EX_MK:Q} DEPENDS_TARGET=${DEPENDS_TARGET:U:Q} \
	    EX_TOOL_DEPENDS=${TOOL_DEPENDS:Q} EX_BUILD_DEPENDS=${BUILD_DEPENDS:Q} \
	    EX_RUN_DEPENDS=${DEPENDS:Q} \
	    ${SH} ${EX_MK}/scripts/depends-check.sh
	@touch ${_COOKIE.depends:Q}
.endif

.if exists(${_COOKIE.extract})
extract:
.else
extract: depends checksum _ex-extract
_ex-extract:
	@echo "===> Extracting for ${PKGNAME}"
	@rm -rf ${WRKSRC:Q}
.  if empty(DISTFILES)
	@mkdir -p ${WRKSRC:Q}
	@if [ -d ${FILESDIR:Q} ]; then cp -R ${FILESDIR:Q}/. ${WRKSRC:Q}/; fi
.  else
.    for f in ${_DISTFILES}
	@cd ${WRKDIR:Q} && ${_RUN} ${TAR} -xzf ${DISTDIR:Q}/${f:Q}
.    endfor
.  endif
	@${SH} ${EX_MK}/scripts/patch.sh ${DISTINFO_FILE:Q} ${PATCHDIR:Q} ${WRKSRC:Q} ${WRKLOG:U:Q}
	@touch ${_COOKIE.extract:Q}
.endif

.if exists(${_COOKIE.configure})
configure:
.else
configure: extract pre-configure do-configure post-configure
	@echo "===> Configured ${PKGNAME}"
	@touch ${_COOKIE.configure:Q}
.endif

.if exists(${_COOKIE.build})
build:
.else
build: configure pre-build do-build post-build
	@touch ${_COOKIE.build:Q}
.endif
all: build

.if exists(${_COOKIE.install})
stage-install:
.else
stage-install: build pre-install do-install post-install
	@touch ${_COOKIE.install:Q}
.endif

.if exists(${STAGE_PKGFILE})
stage-package-create:
.else
stage-package-create: stage-install
	@echo "===> Building binary package for ${PKGNAME}"
	@env PKGNAME=${PKGNAME:Q} PREFIX=${PREFIX:Q} DESTDIR=${DESTDIR:Q} \
	    PKG_DBDIR=${PKG_DBDIR:Q} WRKDIR=${WRKDIR:Q} STAGE_PKGFILE=${STAGE_PKGFILE:Q} \
	    COMMENT=${COMMENT:Q} DESCR_SRC=${DESCR_SRC:Q} PKGSRCDIR=${PKGSRCDIR:Q} \
	    PKGPATH=${PKGPATH:Q} CATEGORIES=${CATEGORIES:Q} HOMEPAGE=${HOMEPAGE:Q} \
	    LICENSE=${LICENSE:Q} MAINTAINER=${MAINTAINER:Q} MACHINE_ARCH=${MACHINE_ARCH:Q} OPSYS=${OPSYS:Q} \
	    OS_VERSION=${OS_VERSION:Q} PKGTOOLS_VERSION=${PKGTOOLS_VERSION:Q} \
	    BUILD_VERSION_FILES=${_BUILD_VERSION_FILES:Q} EX_MK=${EX_MK:Q} TAR=${TAR:Q} \
	    ${SH} ${EX_MK}/scripts/create-package.sh
.endif
package-create: stage-package-create

package: stage-package-create
	@mkdir -p ${PACKAGES:Q}/All
	@cp ${STAGE_PKGFILE:Q} ${PKGFILE:Q}.tmp && mv ${PKGFILE:Q}.tmp ${PKGFILE:Q}
	@echo "=> ${PKGFILE}"

create-usergroup:
	@:

clean:
	@rm -rf ${WRKDIR:Q}
	@rmdir ${WRKDIR:H:Q} ${WRKDIR:H:H:Q} 2>/dev/null || true

# Default phase bodies; a package overrides any of them by defining the
# target itself before including this file.
.for _t in pre-configure post-configure pre-build post-build pre-install post-install
.  if !target(${_t})
${_t}:
.  endif
.endfor

.if !target(do-configure)
do-configure:
.  if defined(HAS_CONFIGURE)
	@cd ${WRKSRC:Q} && ${_RUN} env ${MAKE_ENV} ./configure --prefix=${PREFIX:Q} ${CONFIGURE_ARGS}
.  endif
.endif

# MAKE_JOBS (from mk.conf or the environment) runs the build stage with
# -j, as pkgsrc does, unless the package sets MAKE_JOBS_SAFE=no.
.if defined(MAKE_JOBS) && !empty(MAKE_JOBS) && ${MAKE_JOBS_SAFE:Uyes:tl} != "no"
_MAKE_JOBS_FLAG=	-j${MAKE_JOBS}
.endif

.if !target(do-build)
do-build:
	@cd ${WRKSRC:Q} && ${_RUN} env ${MAKE_ENV} ${MAKE_PROGRAM} ${_MAKE_JOBS_FLAG} ${MAKE_FLAGS} ${BUILD_TARGET:Uall}
.endif

.if !target(do-install)
do-install:
	@cd ${WRKSRC:Q} && ${_RUN} env ${MAKE_ENV} ${MAKE_PROGRAM} ${MAKE_FLAGS} DESTDIR=${DESTDIR:Q} ${INSTALL_TARGET:Uinstall}
.endif

# ---- maintenance --------------------------------------------------------------
distinfo makesum: _ex-fetch
	@{ echo '$$NetBSD$$'; echo; \
	  for f in ${_CKSUMFILES}; do \
	    echo "SHA256 ($$f) = $$(sha256sum < ${DISTDIR:Q}/$$f | cut -d' ' -f1)"; \
	    echo "Size ($$f) = $$(wc -c < ${DISTDIR:Q}/$$f | tr -d ' ') bytes"; \
	  done; \
	  for p in ${PATCHDIR:Q}/patch-*; do \
	    [ -f "$$p" ] || continue; \
	    echo "SHA1 ($${p##*/}) = $$(grep -v '[$$]NetBSD' "$$p" | sha1sum | cut -d' ' -f1)"; \
	  done; } > ${DISTINFO_FILE:Q}.tmp && mv ${DISTINFO_FILE:Q}.tmp ${DISTINFO_FILE:Q}

show-var:
	@echo ${${VARNAME}:Q}

show-vars:
.for _v_ in ${VARNAMES}
	@echo ${${_v_}:Q}
.endfor

.include "pbulk/pbulk-index.mk"
