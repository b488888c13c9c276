#!/bin/sh
# logrun.sh WRKLOG COMMAND...: append the command (and its directory) to
# WRKLOG when one is set, then run it.  This is what fills pbulk's work.log.
log=$1
shift
if [ -n "$log" ]; then
	printf '[%s] %s\n' "$(pwd)" "$*" >> "$log" || true
fi
exec "$@"
