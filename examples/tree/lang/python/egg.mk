# egg.mk: build a py-* package with its setup.py (the example tree's
# "python" runs setup scripts written in sh; the interface is setup.py's).
#
# Packages set DISTNAME and PKGNAME=${PYPKGPREFIX}-..., and list their
# Python dependencies with ${PYPKGPREFIX} in the pattern.  setup.py build
# fails when a module it imports is not installed below ${PREFIX}.

.include "pyversion.mk"

.if !defined(PYSETUPTOOLS_NOT_NEEDED)
TOOL_DEPENDS+=	${PYPKGPREFIX}-setuptools>=60:../../devel/py-setuptools
.endif

do-build:
	@cd ${WRKSRC} && ${_RUN} ${PYTHONBIN} setup.py build

do-install:
	@cd ${WRKSRC} && ${_RUN} ${PYTHONBIN} setup.py install --root=${DESTDIR}
