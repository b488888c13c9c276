#!/bin/sh
# depends-check.sh: the `depends` phase.  This tree never builds or installs
# a dependency itself (pbulk passes DEPENDS_TARGET=/nonexistent): each
# dependency must already be registered in ${PKG_DBDIR}/<PKGNAME>/+CONTENTS
# by whoever prepared the build (pkgrun), its files unpacked below ${PREFIX}.
#
# Environment: PKGNAME PKG_DBDIR PREFIX EX_MK WRKDIR DEPENDS_TARGET
#   EX_TOOL_DEPENDS EX_BUILD_DEPENDS EX_RUN_DEPENDS: `pattern:../../cat/dir`
#   words of TOOL_DEPENDS, BUILD_DEPENDS and DEPENDS.
# Writes, for the packing list (as pkgsrc records them):
#   ${WRKDIR}/.rundeps  "pattern PKGNAME" per run-time dependency
#                       (-> @blddep PKGNAME and @pkgdep pattern)
#   ${WRKDIR}/.blddeps  PKGNAME per build-time dependency (-> @blddep)
# Tool dependencies are checked but not recorded, as in pkgsrc.
set -eu
. "$EX_MK/scripts/pkg-match.sh"

: > "$WRKDIR/.rundeps.tmp"
: > "$WRKDIR/.blddeps.tmp"
missing=0
for kind in tool build run; do
	case $kind in
	tool) list=$EX_TOOL_DEPENDS ;;
	build) list=$EX_BUILD_DEPENDS ;;
	run) list=$EX_RUN_DEPENDS ;;
	esac
	for dep in $list; do
		pat=${dep%%:*}
		dir=${dep#*:}
		if [ "$pat" = "$dep" ]; then
			echo "===> $PKGNAME: malformed dependency '$dep' (want pattern:../../cat/dir)" >&2
			exit 1
		fi
		if ! name=$(ex_best_installed "$PKG_DBDIR" "$pat"); then
			echo "===> $PKGNAME: dependency $pat (from $dir) is not installed:" \
			    "no package matching it in PKG_DBDIR=$PKG_DBDIR." >&2
			missing=1
			continue
		fi
		echo "=> $PKGNAME: $kind dependency $pat ($dir): found $name"
		case $kind in
		build)
			grep -qxF "$name" "$WRKDIR/.blddeps.tmp" || echo "$name" >> "$WRKDIR/.blddeps.tmp" ;;
		run)
			grep -q "^$pat " "$WRKDIR/.rundeps.tmp" || echo "$pat $name" >> "$WRKDIR/.rundeps.tmp" ;;
		esac
	done
done
if [ $missing = 1 ]; then
	echo "===> $PKGNAME: this tree never builds missing dependencies (DEPENDS_TARGET=${DEPENDS_TARGET:-unset});" \
	    "install them below PREFIX=$PREFIX and register them in PKG_DBDIR first." >&2
	exit 1
fi
mv "$WRKDIR/.rundeps.tmp" "$WRKDIR/.rundeps"
mv "$WRKDIR/.blddeps.tmp" "$WRKDIR/.blddeps"
