#!/bin/sh
# patch.sh DISTINFO PATCHDIR WRKSRC [WRKLOG]: apply the package's
# patches/patch-* in name order with `patch -p0`, after checking each
# against its SHA1 line in distinfo (computed, as pkgsrc does, without the
# lines holding a $NetBSD$ keyword).
set -eu
distinfo=$1 patchdir=$2 wrksrc=$3 log=${4:-}
for p in "$patchdir"/patch-*; do
	[ -f "$p" ] || continue
	name=${p##*/}
	want=$(sed -n "s/^SHA1 ($name) = //p" "$distinfo" 2>/dev/null || true)
	got=$(grep -v '[$]NetBSD' "$p" | sha1sum | cut -d' ' -f1)
	if [ -z "$want" ]; then
		echo "patch: $distinfo has no SHA1 entry for $name" >&2
		exit 1
	fi
	if [ "$want" != "$got" ]; then
		echo "patch: SHA1 MISMATCH for $p: distinfo says $want, the patch has $got" >&2
		exit 1
	fi
	echo "=> Applying $name"
	[ -z "$log" ] || echo "[$wrksrc] patch -Nsp0 < $p" >> "$log"
	patch -d "$wrksrc" -Nsp0 < "$p"
done
