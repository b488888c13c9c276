# pbulk-index.mk: the scan targets of the example tree (included by bsd.pkg.mk).
#
#   pbulk-index       one record per multi-version combination (or one record)
#   pbulk-index-item  the record of the current settings
#   pbulk-save-wrkdir INTO=file.tar.gz   tar.gz of ${WRKDIR}, for failed builds
#
# A record is the KEY=VALUE lines below, in this order (the order pbulk's
# tools expect; PKG_LOCATION is inserted by the scanner, not here).
# PBULK_WEIGHT is printed only when the package sets it; MULTI_VERSION only
# for multi-version packages.
#
# Multi-version classes: a class takes part when its list of accepted values
# has more than one word, or one word other than the class default.  The
# accepted values are reordered default first, so the first record of a
# directory is the all-defaults one.  Classes that take part are collected
# by prepending, so the loops nest in reverse class order (python outside
# mysql), as pbulk does.

_PBULK_CLASSES?=	apache lua mysql php postgresql python ruby

_PBULK_LIST.apache=	PKG_APACHE_ACCEPTED
_PBULK_VAR.apache=	PKG_APACHE
_PBULK_DEF.apache=	PKG_APACHE_DEFAULT
_PBULK_LIST.lua=	_LUA_VERSIONS_ACCEPTED
_PBULK_VAR.lua=		LUA_VERSION_REQD
_PBULK_DEF.lua=		LUA_VERSION_DEFAULT
_PBULK_LIST.mysql=	MYSQL_VERSIONS_ACCEPTED
_PBULK_VAR.mysql=	MYSQL_VERSION_REQD
_PBULK_DEF.mysql=	MYSQL_VERSION_DEFAULT
_PBULK_LIST.php=	_PHP_VERSIONS_ACCEPTED
_PBULK_VAR.php=		PHP_VERSION_REQD
_PBULK_DEF.php=		PHP_VERSION_DEFAULT
_PBULK_LIST.postgresql=	PGSQL_VERSIONS_ACCEPTED
_PBULK_VAR.postgresql=	PGSQL_VERSION_REQD
_PBULK_DEF.postgresql=	PGSQL_VERSION_DEFAULT
_PBULK_LIST.python=	_PYTHON_VERSIONS_ACCEPTED
_PBULK_VAR.python=	PYTHON_VERSION_REQD
_PBULK_DEF.python=	PYTHON_VERSION_DEFAULT
_PBULK_LIST.ruby=	_RUBY_VERSIONS_ACCEPTED
_PBULK_VAR.ruby=	RUBY_VERSION_REQD
_PBULK_DEF.ruby=	RUBY_VERSION_DEFAULT

_PBULK_NEEDED=	# none
.if !defined(NO_MULTI_PKG)
.  for _c in ${_PBULK_CLASSES}
_l:=	${${_PBULK_LIST.${_c}}:U}
_d:=	${${_PBULK_DEF.${_c}}:U}
.    if !empty(_l)
.      if ${_l:[#]} != 1 || !empty(_l:N${_d})
_PBULK_NEEDED:=		${_c} ${_PBULK_NEEDED}
_PBULK_ORDER.${_c}:=	${_l:M${_d}} ${_l:N${_d}}
.      endif
.    endif
.  endfor
.undef _l _d
.endif

.PHONY: pbulk-index pbulk-index-item pbulk-save-wrkdir

.if empty(_PBULK_NEEDED)
pbulk-index: pbulk-index-item
.else
# One shell: nested loops over the product of the classes' values, each
# level exporting the forcing variable, innermost running the item target.
pbulk-index:
	@set -e; ${_PBULK_NEEDED:@c@for v_${c} in ${_PBULK_ORDER.${c}}; do ${_PBULK_VAR.${c}}=$$v_${c}; _PBULK_VALUE_${c}=$$v_${c}; export ${_PBULK_VAR.${c}} _PBULK_VALUE_${c}; @} \
	${MAKE} pbulk-index-item ${_PBULK_NEEDED:@c@; done@}
.endif

pbulk-index-item:
	@echo "PKGNAME="${PKGNAME:Q}
	@echo "ALL_DEPENDS="${_ALL_DEPENDS:Q}
	@echo "PKG_SKIP_REASON="${PKG_SKIP_REASON:U:Q}
	@echo "PKG_FAIL_REASON="${PKG_FAIL_REASON:U:Q}
	@echo "NO_BIN_ON_FTP="${NO_BIN_ON_FTP:Q}
	@echo "RESTRICTED="${RESTRICTED:Q}
	@echo "CATEGORIES="${CATEGORIES:Q}
	@echo "MAINTAINER="${MAINTAINER:Q}
	@echo "USE_DESTDIR="${_USE_DESTDIR:Q}
	@echo "BOOTSTRAP_PKG="${BOOTSTRAP_PKG}
	@echo "USERGROUP_PHASE="${USERGROUP_PHASE:Q}
	@echo "SCAN_DEPENDS="${.MAKE.MAKEFILES:O:u:Q}
.if defined(PBULK_WEIGHT)
	@echo "PBULK_WEIGHT="${PBULK_WEIGHT:Q}
.endif
.if !empty(_PBULK_NEEDED)
	@printf 'MULTI_VERSION='
.  for _c in ${_PBULK_NEEDED}
	@printf ' %s=%s' ${_PBULK_VAR.${_c}:Q} ${_PBULK_VALUE_${_c}:Q}
.  endfor
	@printf '\n'
.endif

pbulk-save-wrkdir:
	@[ -n ${INTO:Q} ] || { echo 'pbulk-save-wrkdir: usage: ${MAKE} pbulk-save-wrkdir INTO=file.tar.gz' >&2; exit 1; }
	@if [ -d ${WRKDIR:Q} ]; then cd ${WRKDIR:Q} && ${TAR} -czf ${INTO:Q} .; fi
