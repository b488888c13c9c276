#!/bin/sh
# fetch.sh DISTDIR DIST_PATH SITES FILE...: make every FILE (relative to
# DISTDIR, DIST_SUBDIR included) present in DISTDIR.  A missing file is
# copied from the first directory of DIST_PATH that has it, else fetched
# from the first of SITES (URLs ending in /, followed by the file's base
# name) that serves it: file:// URLs are copied, others fetched with curl
# (or wget).  A file is written under a temporary name and renamed, so an
# interrupted fetch leaves nothing behind.  Fetched files are not checked
# here: the checksum target does that.
set -eu
distdir=$1 distpath=$2 sites=$3
shift 3
status=0
for f in "$@"; do
	[ -f "$distdir/$f" ] && continue
	dir=$(dirname "$distdir/$f")
	mkdir -p "$dir"
	tmp=$dir/.fetch.$$.${f##*/}
	got=
	for d in $distpath; do
		if [ -f "$d/$f" ] && ! [ "$d" -ef "$distdir" ]; then
			if cp "$d/$f" "$tmp"; then got="$d/$f"; break; fi
		fi
	done
	if [ -z "$got" ]; then
		for site in $sites; do
			url=$site${f##*/}
			echo "=> Fetching ${f##*/} from $url"
			case $url in
			file://*)
				cp "${url#file://}" "$tmp" 2>/dev/null && got=$url ;;
			*)
				if command -v curl >/dev/null 2>&1; then
					curl -fsS --connect-timeout 10 --max-time 300 -o "$tmp" "$url" && got=$url
				elif command -v wget >/dev/null 2>&1; then
					wget -q -T 10 -O "$tmp" "$url" && got=$url
				else
					echo "fetch: neither curl nor wget is installed" >&2
				fi ;;
			esac
			[ -n "$got" ] && break
			rm -f "$tmp"
		done
	fi
	if [ -n "$got" ]; then
		mv "$tmp" "$distdir/$f"
	else
		rm -f "$tmp"
		echo "fetch: distfile $f is missing from $distdir and could not be fetched (DIST_PATH: ${distpath:-none}; MASTER_SITES: ${sites:-none})" >&2
		status=1
	fi
done
exit $status
