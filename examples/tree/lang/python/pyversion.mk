# pyversion.mk: choose the Python version a py-* package is built for.
#
# A package may set PYTHON_VERSIONS_ACCEPTED (default: all of them, newest
# first) or PYTHON_VERSIONS_INCOMPATIBLE.  The user (or pbulk, through
# MULTI_VERSION) forces one with PYTHON_VERSION_REQD=311.
#
# Provides: _PYTHON_VERSIONS_ACCEPTED (which makes pbulk-index produce one
# record per version, default first), PYTHON_VERSION_DEFAULT, PYPKGPREFIX
# (py312), PYVERSSUFFIX (3.12), PYTHONBIN, PYSITELIB, and the run-time
# dependency on the interpreter.

.if !defined(_EX_PYVERSION_MK)
_EX_PYVERSION_MK=	# defined

.include "../../mk/bsd.prefs.mk"

PYTHON_VERSION_DEFAULT?=	312
_PYTHON_VERSIONS_ALL=		312 311
PYTHON_VERSIONS_ACCEPTED?=	${_PYTHON_VERSIONS_ALL}
PYTHON_VERSIONS_INCOMPATIBLE?=	# none

_PYTHON_VERSIONS_ACCEPTED=	# empty
.for _v in ${PYTHON_VERSIONS_ACCEPTED}
.  if empty(PYTHON_VERSIONS_INCOMPATIBLE:M${_v}) && !empty(_PYTHON_VERSIONS_ALL:M${_v})
_PYTHON_VERSIONS_ACCEPTED+=	${_v}
.  endif
.endfor
# :M* rejoins the words: no leading blank from the empty start.
_PYTHON_VERSIONS_ACCEPTED:=	${_PYTHON_VERSIONS_ACCEPTED:M*}

.if defined(PYTHON_VERSION_REQD)
.  if !empty(_PYTHON_VERSIONS_ACCEPTED:M${PYTHON_VERSION_REQD})
_PYTHON_VERSION=	${PYTHON_VERSION_REQD}
.  else
_PYTHON_VERSION=	${_PYTHON_VERSIONS_ACCEPTED:[1]}
PKG_FAIL_REASON+=	"This package does not support PYTHON_VERSION_REQD=${PYTHON_VERSION_REQD}"
.  endif
.elif !empty(_PYTHON_VERSIONS_ACCEPTED:M${PYTHON_VERSION_DEFAULT})
_PYTHON_VERSION=	${PYTHON_VERSION_DEFAULT}
.elif !empty(_PYTHON_VERSIONS_ACCEPTED)
_PYTHON_VERSION=	${_PYTHON_VERSIONS_ACCEPTED:[1]}
.else
_PYTHON_VERSION=	${PYTHON_VERSION_DEFAULT}
PKG_FAIL_REASON+=	"No acceptable Python version"
.endif

PYPKGPREFIX=	py${_PYTHON_VERSION}
PYVERSSUFFIX=	${_PYTHON_VERSION:C/^3/3./}
PYTHONBIN=	${PREFIX}/bin/python${PYVERSSUFFIX}
PYSITELIB=	lib/python${PYVERSSUFFIX}/site-packages

DEPENDS+=	python${_PYTHON_VERSION}>=${PYVERSSUFFIX}:../../lang/python${_PYTHON_VERSION}
.endif	# _EX_PYVERSION_MK
