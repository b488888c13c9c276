#!/bin/sh
# checksum.sh DISTINFO DISTDIR FILE...: verify each distfile's SHA256 and
# size against distinfo (FILE relative to DISTDIR, DIST_SUBDIR included).
# Any missing file, missing entry or mismatch is an error; nothing is
# fetched here (the fetch target ran before).
set -eu
distinfo=$1 distdir=$2
shift 2
[ $# -gt 0 ] || exit 0
if [ ! -f "$distinfo" ]; then
	echo "checksum: $distinfo does not exist (run '${MAKE:-bmake} distinfo')" >&2
	exit 1
fi
status=0
for f in "$@"; do
	if [ ! -f "$distdir/$f" ]; then
		echo "checksum: distfile $distdir/$f is missing" >&2
		status=1; continue
	fi
	want=$(awk -v f="($f)" '$1 == "SHA256" && $2 == f && $3 == "=" { print $4 }' "$distinfo")
	if [ -z "$want" ]; then
		echo "checksum: $distinfo has no SHA256 entry for $f" >&2
		status=1; continue
	fi
	got=$(sha256sum < "$distdir/$f" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		echo "checksum: SHA256 MISMATCH for $distdir/$f: distinfo says $want, the file has $got" >&2
		status=1; continue
	fi
	size=$(awk -v f="($f)" '$1 == "Size" && $2 == f && $3 == "=" && $5 == "bytes" { print $4 }' "$distinfo")
	if [ -n "$size" ] && [ "$size" != "$(wc -c < "$distdir/$f" | tr -d ' ')" ]; then
		echo "checksum: size mismatch for $distdir/$f (distinfo says $size bytes)" >&2
		status=1; continue
	fi
	echo "=> Checksum SHA256 OK for $f"
done
exit $status
