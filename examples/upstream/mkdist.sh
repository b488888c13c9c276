#!/bin/sh
# mkdist.sh: turn every upstream source directory here into the distfile
# tree/distfiles/<dir>.tar.gz, and each sites/<site>/<path>/<dir> into
# tree/sites/<site>/<path>/<dir>.tar.gz (what MASTER_SITE_EXAMPLE serves),
# reproducibly (sorted names, fixed times and owners, gzip without a
# timestamp), then regenerate the distinfo of every package that has
# distfiles, except net/exbadsum and net/exsitedown, whose distinfo files
# are wrong or unverifiable on purpose.  Run it after changing anything
# below upstream/, and commit the distfiles and distinfo files it changed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tree=$here/../tree
mkdir -p "$tree/distfiles"
for d in "$here"/*/ "$here"/sites/*/*/*/; do
	name=$(basename "$d")
	[ "$name" = sites ] && continue
	src=$(dirname "$d")
	rel=${src#"$here"}
	if [ -n "$rel" ]; then
		out=$tree$rel/$name.tar.gz
		mkdir -p "$tree$rel"
	else
		out=$tree/distfiles/$name.tar.gz
	fi
	tar -C "$src" --sort=name --mtime=@1700000000 --owner=0 --group=0 \
	    --numeric-owner --format=ustar -cf - "$name" | gzip -n -9 > "$out.tmp"
	if [ -f "$out" ] && cmp -s "$out" "$out.tmp"; then
		rm "$out.tmp"
	else
		mv "$out.tmp" "$out"
		echo "wrote $out"
	fi
done
cd "$tree"
for c in $(bmake show-subdir-var VARNAME=SUBDIR); do
	for p in $(cd "$c" && bmake show-subdir-var VARNAME=SUBDIR); do
		case $c/$p in net/exbadsum|net/exsitedown) continue ;; esac
		(cd "$c/$p" && if [ -n "$(bmake show-var VARNAME=DISTFILES)" ]; then bmake distinfo; fi)
	done
done
