# A stand-in for pkgsrc's mk/bsd.pkg.mk: what `make pbulk-index` needs,
# with the record layout of mk/pbulk/pbulk-index.mk.
.include "bsd.prefs.mk"

PKGNAME?=		${DISTNAME}
CATEGORIES?=		misc
MAINTAINER?=		pkgsrc-users@NetBSD.org
PKG_SKIP_REASON?=
PKG_FAIL_REASON?=
NO_BIN_ON_FTP?=
RESTRICTED?=
_USE_DESTDIR=		user-destdir
BOOTSTRAP_PKG?=
USERGROUP_PHASE?=

_ALL_DEPENDS=
.for d in ${TOOL_DEPENDS} ${BUILD_DEPENDS} ${DEPENDS}
_ALL_DEPENDS+=		${d}
.endfor
.if defined(NOT_FOR_PLATFORM) && !empty(NOT_FOR_PLATFORM:M${OPSYS}*)
PKG_SKIP_REASON+=	"${PKGNAME} is not available for ${OPSYS}"
.endif

.PHONY: pbulk-index pbulk-index-item
.if defined(MULTI_PYTHON)
pbulk-index:
	@set -e; for v in ${MULTI_PYTHON}; do \
		PYTHON_VERSION_REQD=$$v; export PYTHON_VERSION_REQD; \
		${MAKE} pbulk-index-item; \
	done
.else
pbulk-index: pbulk-index-item
.endif

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
.if defined(MULTI_PYTHON)
	@printf "MULTI_VERSION= PYTHON_VERSION_REQD=%s\n" ${PYTHON_VERSION_REQD:Q}
.endif
