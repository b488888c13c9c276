#!/bin/sh
# create-package.sh: write ${STAGE_PKGFILE}, a binary package in
# pkg_install's layout, from the staged files below ${DESTDIR}${PREFIX}.
#
# Member order: +CONTENTS, +COMMENT, +DESC, +BUILD_VERSION, +BUILD_INFO,
# +SIZE_PKG, +SIZE_ALL, then the payload in packing-list order.  GNU tar is
# given the exact member list so that this order is the archive order.
#
# Environment (set by bsd.pkg.mk): PKGNAME PREFIX DESTDIR PKG_DBDIR WRKDIR
# STAGE_PKGFILE COMMENT DESCR_SRC PKGSRCDIR PKGPATH CATEGORIES HOMEPAGE
# LICENSE MAINTAINER MACHINE_ARCH OPSYS OS_VERSION PKGTOOLS_VERSION EX_MK
# BUILD_VERSION_FILES (paths relative to PKGSRCDIR) TAR
set -eu
. "$EX_MK/scripts/pkg-match.sh"
export LC_ALL=C

meta=$WRKDIR/.pkgmeta
rm -rf "$meta"
mkdir -p "$meta" "$(dirname "$STAGE_PKGFILE")"
root=$DESTDIR$PREFIX
mkdir -p "$root"

# Packing list: every staged file and symlink, sorted (pkgsrc's PLIST order).
(cd "$root" && find . \( -type f -o -type l \) -print | sed 's|^\./||' | sort) > "$meta/plist"

# +SIZE_PKG: payload bytes.  +SIZE_ALL: plus every installed run-time
# dependency, followed transitively through the installed packages'
# @pkgdep lines (each package counted once).
size_pkg=0
while IFS= read -r f; do
	[ -L "$root/$f" ] && continue
	s=$(wc -c < "$root/$f" | tr -d ' ')
	size_pkg=$((size_pkg + s))
done < "$meta/plist"
size_all=$size_pkg
: > "$meta/seen"
queue=$(cut -d' ' -f1 "$WRKDIR/.rundeps")
while [ -n "$queue" ]; do
	next=
	for pat in $queue; do
		name=$(ex_best_installed "$PKG_DBDIR" "$pat") || continue
		grep -qxF "$name" "$meta/seen" && continue
		echo "$name" >> "$meta/seen"
		if [ -f "$PKG_DBDIR/$name/+SIZE_PKG" ]; then
			size_all=$((size_all + $(cat "$PKG_DBDIR/$name/+SIZE_PKG")))
		fi
		next="$next $(sed -n 's/^@pkgdep //p' "$PKG_DBDIR/$name/+CONTENTS")"
	done
	queue=$next
done

printf '%s\n' "$COMMENT" > "$meta/+COMMENT"
{
	cat "$DESCR_SRC"
	if [ -n "$HOMEPAGE" ]; then printf '\nHomepage:\n%s\n' "$HOMEPAGE"; fi
} > "$meta/+DESC"
for f in $BUILD_VERSION_FILES; do
	printf '%s: %s\n' "$f" "$(sha256sum < "$PKGSRCDIR/$f" | cut -d' ' -f1)"
done | sort > "$meta/+BUILD_VERSION"
{
	printf 'BUILD_DATE=%s\n' "$(date -u '+%Y-%m-%d %H:%M:%S +0000')"
	printf 'BUILD_HOST=%s\n' "$(uname -a)"
	printf 'CATEGORIES=%s\n' "$CATEGORIES"
	printf 'HOMEPAGE=%s\n' "$HOMEPAGE"
	printf 'LICENSE=%s\n' "$LICENSE"
	printf 'MACHINE_ARCH=%s\n' "$MACHINE_ARCH"
	printf 'MAINTAINER=%s\n' "$MAINTAINER"
	printf 'OPSYS=%s\n' "$OPSYS"
	printf 'OS_VERSION=%s\n' "$OS_VERSION"
	printf 'PKGPATH=%s\n' "$PKGPATH"
	printf 'PKGTOOLS_VERSION=%s\n' "$PKGTOOLS_VERSION"
} | sort > "$meta/+BUILD_INFO"
echo "$size_pkg" > "$meta/+SIZE_PKG"
echo "$size_all" > "$meta/+SIZE_ALL"

metafiles="+COMMENT +DESC +BUILD_VERSION +BUILD_INFO +SIZE_PKG +SIZE_ALL"
{
	# pkgsrc's order: each run-time dependency as the package it was
	# built against and its pattern, then the build-only ones.
	echo "@name $PKGNAME"
	: > "$meta/blddeps"
	while read -r pat name; do
		if ! grep -qxF "$name" "$meta/blddeps"; then
			echo "$name" >> "$meta/blddeps"
			echo "@blddep $name"
		fi
		echo "@pkgdep $pat"
	done < "$WRKDIR/.rundeps"
	while IFS= read -r name; do
		grep -qxF "$name" "$meta/blddeps" && continue
		echo "$name" >> "$meta/blddeps"
		echo "@blddep $name"
	done < "$WRKDIR/.blddeps"
	echo "@cwd $PREFIX"
	while IFS= read -r f; do
		echo "$f"
		if [ -L "$root/$f" ]; then
			echo "@comment Symlink:$(readlink "$root/$f")"
		else
			echo "@comment MD5:$(md5sum < "$root/$f" | cut -d' ' -f1)"
		fi
	done < "$meta/plist"
	echo "@cwd ."
	for m in $metafiles; do
		echo "@ignore"
		echo "$m"
	done
} > "$meta/+CONTENTS"
chmod 0644 "$meta/+CONTENTS"
for m in $metafiles; do chmod 0444 "$meta/$m"; done

tmp=$STAGE_PKGFILE.tmp
# shellcheck disable=SC2086
$TAR --format=ustar --no-recursion --owner=root:0 --group=root:0 -cf "$meta/pkg.tar" \
    -C "$meta" +CONTENTS $metafiles -C "$root" -T "$meta/plist"
gzip -n -9 -c "$meta/pkg.tar" > "$tmp"
rm -f "$meta/pkg.tar"
mv "$tmp" "$STAGE_PKGFILE"
echo "=> Created $STAGE_PKGFILE ($(wc -l < "$meta/plist" | tr -d ' ') files, $size_pkg bytes)"
