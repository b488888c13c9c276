# shlib.mk: for packages written in "shlib", the example tree's shell
# library language (lang/shlib).  Their upstream build sources
# ${SHLIB_SH} and the libraries of their other dependencies from
# ${PREFIX}/share/exlib, so everything below must be installed first.
#
# This file is the tree's "language" mk used by about a tenth of the
# packages: touching it must invalidate exactly their scan records.

.include "../../mk/bsd.prefs.mk"

SHLIB_VERSION_REQD?=	1.2
SHLIB_SH=		${PREFIX}/share/exlib/shlib.sh

DEPENDS+=	shlib>=${SHLIB_VERSION_REQD}:../../lang/shlib
MAKE_FLAGS+=	SHLIB_SH=${SHLIB_SH:Q}
