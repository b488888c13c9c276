#!/bin/sh
# pkgscan benchmark: a generated tree of N package directories (default
# 2000) scanned by real bmake, three ways:
#   1. a plain sequential shell loop: for d in ...; do (cd $d && bmake pbulk-index); done
#   2. pkgscan -j J (default 2) full scan, writing the output and its cache
#   3. pkgscan -j J --reuse on the unchanged tree
#   4. pkgscan -j J --reuse after changing an mk file read by 10% of them
# and prints the times, the speed-up of 2 over 1 (target >= 1.8 on 2 cores)
# and 3 as a share of 2 (target < 2%). It also checks that the reused
# output is byte-identical to the full scan.
#
# Usage: sh bench/scan/run.sh            (from the repository root)
#        N=500 J=2 WORK=/tmp/scanbench sh bench/scan/run.sh
set -eu
cd "$(dirname "$0")/../.."
N=${N:-2000}
J=${J:-2}
MAKE_PROG=${MAKE_PROG:-bmake}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pkgscan-bench.XXXXXX")}
mkdir -p "$WORK"

now() { date +%s.%N; }
elapsed() { awk "BEGIN { print $2 - $1 }"; }
calc() { awk "BEGIN { print $1 }"; }

go build -o "$WORK/pkgscan" ./cmd/pkgscan
rm -rf "$WORK/tree"
go run ./bench/scan/gentree -n "$N" -o "$WORK/tree"
tree=$WORK/tree
# Let the generated files age past the cache's "written during the scan"
# guard (a real tree is not written the second before it is scanned).
sleep 1

load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "tree: $N package directories in $tree; make: $MAKE_PROG; load: $load0"

# CPU seconds (user+sys, children included) when GNU time is there: on a
# loaded machine wall-clock ratios mean little, while CPU shows pkgscan's
# own overhead over the loop (on an idle 2-core machine the speed-up is at
# most 2 x loop CPU / pkgscan CPU).
if [ -x /usr/bin/time ]; then
	timed() { out=$1; shift; /usr/bin/time -f "%U %S" -o "$WORK/$out.cpu" "$@"; }
else
	timed() { shift; "$@"; }
fi
cpu() { [ -f "$WORK/$1.cpu" ] && awk '{ print $1 + $2 }' "$WORK/$1.cpu" || echo "?"; }

t0=$(now)
timed loop sh -c 'for d in $(cat "$1/locations.txt"); do (cd "$1/$d" && $2 pbulk-index); done' sh "$tree" "$MAKE_PROG" > "$WORK/loop.out"
t1=$(now)
seq_s=$(elapsed "$t0" "$t1")

t0=$(now)
timed full "$WORK/pkgscan" -C "$tree" -M "$MAKE_PROG" -j "$J" -o "$WORK/full.pscan" --stats-json "$WORK/full.stats.json"
t1=$(now)
full_s=$(elapsed "$t0" "$t1")

t0=$(now)
"$WORK/pkgscan" -C "$tree" -M "$MAKE_PROG" -j "$J" --reuse "$WORK/full.pscan" -o "$WORK/reuse.pscan" --stats-json "$WORK/reuse.stats.json"
t1=$(now)
reuse_s=$(elapsed "$t0" "$t1")

# One shared mk file, read by every tenth package, changes: exactly those
# packages rescan.
echo "# changed $(date)" >> "$tree/mk/extra.mk"
sleep 1
t0=$(now)
"$WORK/pkgscan" -C "$tree" -M "$MAKE_PROG" -j "$J" --reuse "$WORK/reuse.pscan" -o "$WORK/mk.pscan" --stats-json "$WORK/mk.stats.json"
t1=$(now)
mk_s=$(elapsed "$t0" "$t1")
mk_scanned=$(sed -n 's/.*"scanned": \([0-9]*\).*/\1/p' "$WORK/mk.stats.json")
readers=$(grep -l 'mk/extra.mk' "$tree"/cat*/pkg*/Makefile | wc -l)

cmp "$WORK/full.pscan" "$WORK/mk.pscan" || { echo "FAIL: output after a comment-only mk change differs" >&2; exit 1; }
cmp "$WORK/full.pscan" "$WORK/reuse.pscan" || { echo "FAIL: reused output differs from the full scan" >&2; exit 1; }
records=$(grep -c '^PKGNAME=' "$WORK/full.pscan")
loop_records=$(grep -c '^PKGNAME=' "$WORK/loop.out")
[ "$records" = "$loop_records" ] || { echo "FAIL: pkgscan wrote $records records, the loop $loop_records" >&2; exit 1; }
reuse_makes=$(sed -n 's/.*"make_runs": \([0-9]*\).*/\1/p' "$WORK/reuse.stats.json")

printf 'sequential shell loop:              %8.2f s\n' "$seq_s"
printf 'pkgscan -j %s full scan:             %8.2f s   speed-up %.2fx (target >= 1.8x)\n' "$J" "$full_s" "$(calc "$seq_s / $full_s")"
printf 'pkgscan -j %s --reuse, no change:    %8.2f s   %.2f%% of the full scan (target < 2%%), %s make runs\n' "$J" "$reuse_s" "$(calc "100 * $reuse_s / $full_s")" "$reuse_makes"
printf 'pkgscan -j %s --reuse, 10%% mk change:%8.2f s   %s locations rescanned (%s packages read that file)\n' "$J" "$mk_s" "$mk_scanned" "$readers"
echo "CPU seconds: loop $(cpu loop), pkgscan full scan $(cpu full) (load before: $load0)"
echo "records: $records; reused output identical to the full scan; work dir: $WORK"
