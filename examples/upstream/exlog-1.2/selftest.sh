#!/bin/sh
# selftest.sh PREFIX: load the installed libraries this one uses, then
# this one, and print their versions (the build's built-with.txt).
prefix=$1
for lib in $(cat uses); do
	f=$prefix/share/exlib/$lib.sh
	if [ ! -r "$f" ]; then
		echo "selftest: cannot read $f: is $lib installed?" >&2
		exit 1
	fi
	. "$f"
done
. ./exlog.sh
exlog_selftest
