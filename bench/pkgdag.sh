#!/bin/sh
# pkgdag benchmark on the real 29,022-record illumos scan (157.7 MB):
#   1. decompress it to a temporary file (not timed: the target is for a
#      scan already on disk);
#   2. run `pkgdag build -o bulk.db` RUNS times (default 5) under
#      /usr/bin/time -v and print wall time, CPU time and peak RSS of each
#      (target: 1.0 s wall, 400 MB peak RSS on 2 cores);
#   3. run `pkgdag presolve` once and check it equals pbulk-resolve's output
#      byte for byte.
# The first build runs without an existing database, later ones replace it
# (carrying its history table over), as a real re-run does. Phase timings
# of the last run come from the hidden --timings flag.
#
# Usage: sh bench/pkgdag.sh                  (from anywhere in the repository)
#        RUNS=10 WORK=/tmp/dagbench sh bench/pkgdag.sh
# Needs ../shared/data beside the checkout (or PKGBULK_SHARED_DATA), zstd
# and GNU time (/usr/bin/time).
set -eu
cd "$(dirname "$0")/.."
DATA=${PKGBULK_SHARED_DATA:-$(cd .. && pwd)/shared/data}
RUNS=${RUNS:-5}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pkgdag-bench.XXXXXX")}
mkdir -p "$WORK"

go build -o "$WORK/pkgdag" ./cmd/pkgdag
zstd -dqf "$DATA/scan/pscan-illumos-2026.txt.zst" -o "$WORK/pscan"
zstd -dqf "$DATA/scan/presolve-illumos-2026.txt.zst" -o "$WORK/presolve.want"
rm -f "$WORK/bulk.db"

echo "input: $(wc -c < "$WORK/pscan") bytes, $(grep -c '^PKGNAME=' "$WORK/pscan") records; cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
i=1
while [ "$i" -le "$RUNS" ]; do
	/usr/bin/time -v "$WORK/pkgdag" build -q -o "$WORK/bulk.db" "$WORK/pscan" 2> "$WORK/time.$i"
	awk -v run="$i" '
		/Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
		/User time/ { user = $NF } /System time/ { sys = $NF }
		/Maximum resident set size/ { rss = $NF }
		END { printf "build run %d: wall %.2f s  cpu %.2f s (user %.2f sys %.2f)  max RSS %.0f MB\n", run, wall, user + sys, user, sys, rss / 1024 }
	' "$WORK/time.$i"
	i=$((i + 1))
done
"$WORK/pkgdag" build -q --timings -o "$WORK/bulk.db" "$WORK/pscan"
echo "database: $(wc -c < "$WORK/bulk.db") bytes"

/usr/bin/time -f "presolve: wall %e s  cpu %U+%S s  max RSS %M KB" "$WORK/pkgdag" presolve -q "$WORK/pscan" > "$WORK/presolve.got"
if cmp -s "$WORK/presolve.got" "$WORK/presolve.want"; then
	echo "presolve: byte-identical to pbulk-resolve's output"
else
	echo "presolve: DIFFERS from pbulk-resolve's output" >&2
	exit 1
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
