#!/bin/sh
# depends-check.sh: the `depends` phase.  This tree never builds or installs
# a dependency itself (pbulk passes DEPENDS_TARGET=/nonexistent): each
# dependency must already be registered in ${PKG_DBDIR}/<PKGNAME>/+CONTENTS
# by whoever prepared the build (pkgrun), its files unpacked below ${PREFIX}.
#
# Environment: PKGNAME PKG_DBDIR PREFIX EX_MK WRKDIR
#   EX_BUILD_DEPENDS  tool and build dependencies, `pattern:../../cat/dir` words
#   EX_RUN_DEPENDS    run-time dependencies, same form
# Writes ${WRKDIR}/.blddeps (one installed PKGNAME a line, each dependency
# once: they become @blddep lines) and ${WRKDIR}/.pkgdeps (run-time patterns:
# @pkgdep lines).
set -eu
. "$EX_MK/scripts/pkg-match.sh"

: > "$WRKDIR/.blddeps.tmp"
: > "$WRKDIR/.pkgdeps.tmp"
missing=0
for kind in build run; do
	if [ $kind = build ]; then list=$EX_BUILD_DEPENDS; else list=$EX_RUN_DEPENDS; fi
	for dep in $list; do
		pat=${dep%%:*}
		dir=${dep#*:}
		if [ "$pat" = "$dep" ]; then
			echo "===> $PKGNAME: malformed dependency '$dep' (want pattern:../../cat/dir)" >&2
			exit 1
		fi
		if name=$(ex_best_installed "$PKG_DBDIR" "$pat"); then
			echo "=> $PKGNAME: dependency $pat ($dir): found $name"
			grep -qxF "$name" "$WRKDIR/.blddeps.tmp" || echo "$name" >> "$WRKDIR/.blddeps.tmp"
		else
			echo "===> $PKGNAME: dependency $pat (from $dir) is not installed:" \
			    "no package matching it in PKG_DBDIR=$PKG_DBDIR." >&2
			missing=1
		fi
		if [ $kind = run ]; then
			grep -qxF "$pat" "$WRKDIR/.pkgdeps.tmp" || echo "$pat" >> "$WRKDIR/.pkgdeps.tmp"
		fi
	done
done
if [ $missing = 1 ]; then
	echo "===> $PKGNAME: this tree never builds missing dependencies (DEPENDS_TARGET=${DEPENDS_TARGET:-unset});" \
	    "install them below PREFIX=$PREFIX and register them in PKG_DBDIR first." >&2
	exit 1
fi
mv "$WRKDIR/.blddeps.tmp" "$WRKDIR/.blddeps"
mv "$WRKDIR/.pkgdeps.tmp" "$WRKDIR/.pkgdeps"
