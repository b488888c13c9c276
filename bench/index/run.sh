#!/bin/sh
# pkgindex benchmark. Two parts, both printing figures:
#
# 1. merge: F fragments (default 30000, real fluxer entries renamed) in a
#    file store, merged and published by `pkgindex merge` as pkg_summary.gz
#    only, and as plain+gz+bz2+xz (the default); target: under 2 s for 30,000.
#    Then the CPU time by part: the read phase (--stdout) and each format
#    alone less the read phase; their sum over 2 is the floor of the wall
#    time of the default merge on 2 cores. And the floor with an ideal
#    bzip2 encoder: bz2's share replaced by the suffix sort of its blocks
#    alone (bench/index/sortfloor).
# 2. fragments from packages: P real .tgz packages (default 200, 100 KB to
#    5 MB, metadata first). Times `gzip -dc` over all files, `pkgindex
#    fragment` over the same files (metadata only: one process, sequential),
#    and `pkgindex fragment --cksum` (reads every byte for FILE_CKSUM);
#    prints MB/s of package bytes and the ratio to gzip -dc (target >= 0.6).
#
# Usage: sh bench/index/run.sh                (from the repository root)
#        F=30000 P=200 WORK=/tmp/idxbench sh bench/index/run.sh
# The shared metadata must be at ../shared/data (or set META=path).
set -eu
cd "$(dirname "$0")/../.."
F=${F:-30000}
P=${P:-200}
META=${META:-../shared/data/pkg_summary/fluxer-2022-metadata.tar.gz}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pkgindex-bench.XXXXXX")}
mkdir -p "$WORK"

now() { date +%s.%N; }
# cpu CMD...: run CMD, print its user+sys CPU seconds to $WORK/cpu (the
# wall time under contention says little; CPU time is what an idle
# machine would mostly need).
cpu() { /usr/bin/time -f "%U %S" -o "$WORK/cpu" "$@"; }
cpus() { awk '{ printf "%.2f", $1 + $2 }' "$WORK/cpu"; }
elapsed() { awk "BEGIN { printf \"%.3f\", $2 - $1 }"; }

go build -o "$WORK/pkgindex" ./cmd/pkgindex
go build -o "$WORK/genrepo" ./bench/index/genrepo
echo "work: $WORK; load: $(cut -d' ' -f1-3 /proc/loadavg); cpus: $(nproc)"

# --- 1. merge of fragments
if [ ! -d "$WORK/frag/index" ]; then
	"$WORK/genrepo" -mode fragments -n "$F" -o "$WORK/frag" -meta "$META"
fi
t0=$(now)
cpu "$WORK/pkgindex" merge --store "$WORK/frag" --formats gz --force --json > "$WORK/merge-gz.json"
t1=$(now)
gz_s=$(elapsed "$t0" "$t1")
gz_cpu=$(cpus)
t0=$(now)
cpu "$WORK/pkgindex" merge --store "$WORK/frag" --force --json > "$WORK/merge-all.json"
t1=$(now)
all_s=$(elapsed "$t0" "$t1")
all_cpu=$(cpus)
t0=$(now)
cpu "$WORK/pkgindex" merge --store "$WORK/frag" --json > "$WORK/merge-same.json"
t1=$(now)
same_s=$(elapsed "$t0" "$t1")
same_cpu=$(cpus)
grep -q '"unchanged": true' "$WORK/merge-same.json" || { echo "the repeated merge was not seen as unchanged" >&2; exit 1; }
bytes=$(sed -n 's/.*"summary_bytes": \([0-9]*\).*/\1/p' "$WORK/merge-all.json")
echo "merge: $F fragments, pkg_summary $bytes bytes"
json() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" "$1"; }
echo "merge: gz only:        ${gz_s} s wall, ${gz_cpu} s CPU (read $(json "$WORK/merge-gz.json" read_seconds) s, publish $(json "$WORK/merge-gz.json" publish_seconds) s) (target < 2 s)"
echo "merge: default (plain, gz, bz2, xz): ${all_s} s wall, ${all_cpu} s CPU (read $(json "$WORK/merge-all.json" read_seconds) s, publish $(json "$WORK/merge-all.json" publish_seconds) s)"
echo "merge: unchanged (default formats, nothing rewritten): ${same_s} s wall, ${same_cpu} s CPU"
ls -l "$WORK/frag/All/pkg_summary" "$WORK/frag/All/pkg_summary".* | awk '{ print "merge:   " $NF ": " $5 " bytes" }'
# CPU by part: the read phase alone (--stdout: no compression, nothing
# written to the store), then each format on its own, less the read phase.
t0=$(now)
cpu "$WORK/pkgindex" merge --store "$WORK/frag" --stdout > /dev/null
t1=$(now)
parts="read $(elapsed "$t0" "$t1") $(cpus)"
for f in gz bz2 xz; do
	t0=$(now)
	cpu "$WORK/pkgindex" merge --store "$WORK/frag" --formats "$f" --force --json > "$WORK/merge-$f.json"
	t1=$(now)
	parts="$parts $f $(elapsed "$t0" "$t1") $(cpus)"
done
# The floor of any bzip2 -9 encoder in Go: the suffix sort of its blocks
# alone (bench/index/sortfloor).
go build -o "$WORK/sortfloor" ./bench/index/sortfloor
sortfloor=$("$WORK/sortfloor" "$WORK/frag/All/pkg_summary")
echo "$parts $(echo "$sortfloor" | awk '{ print $5 }')" | awk '{
	p = $3
	printf "merge: CPU by part: read (--stdout) %.2f s (%.2f s wall)", p, $2
	for (i = 4; i <= 12; i += 3) printf "; %s %.2f s", $i, $(i+2) - p
	printf "; sum %.2f s, so >= %.2f s wall on 2 cores\n", $6 + $9 + $12 - 2 * p, ($6 + $9 + $12 - 2 * p) / 2
	ideal = $6 + $12 - p + $13
	printf "merge: bz2 block sorts alone (suffix sort of each 900 kB block, index/suffixarray): %.2f s CPU; with an ideal bzip2 encoder the default set would still need %.2f s CPU, >= %.2f s wall on 2 cores\n", $13, ideal, ideal / 2
}'

# --- 2. fragments computed from packages
if [ ! -f "$WORK/pkgs/done" ]; then
	"$WORK/genrepo" -mode packages -n "$P" -o "$WORK/pkgs" -meta "$META"
	touch "$WORK/pkgs/done"
fi
total=$(cat "$WORK"/pkgs/All/*.tgz | wc -c)
mb=$(awk "BEGIN { printf \"%.1f\", $total / 1048576 }")
cat "$WORK"/pkgs/All/*.tgz > /dev/null # warm the page cache for all three
t0=$(now)
cpu gzip -dc "$WORK"/pkgs/All/*.tgz > /dev/null
t1=$(now)
gzip_s=$(elapsed "$t0" "$t1")
gzip_cpu=$(cpus)
t0=$(now)
cpu "$WORK/pkgindex" fragment "$WORK"/pkgs/All/*.tgz > "$WORK/fragments.txt"
t1=$(now)
frag_s=$(elapsed "$t0" "$t1")
frag_cpu=$(cpus)
t0=$(now)
cpu "$WORK/pkgindex" fragment --cksum "$WORK"/pkgs/All/*.tgz > "$WORK/fragments-cksum.txt"
t1=$(now)
cksum_s=$(elapsed "$t0" "$t1")
cksum_cpu=$(cpus)
rm -rf "$WORK/pkgs/index" # no fragments: every entry is computed
t0=$(now)
cpu "$WORK/pkgindex" merge --store "$WORK/pkgs" --no-write-back --stdout > "$WORK/merged.txt"
t1=$(now)
merge_s=$(elapsed "$t0" "$t1")
merge_cpu=$(cpus)
cmp -s "$WORK/merged.txt" "$WORK/fragments.txt" || { echo "merge --stdout differs from pkgindex fragment over the sorted files" >&2; exit 1; }
rate() { awk "BEGIN { printf \"%.1f\", $total / 1048576 / ($1 > 0 ? $1 : 0.001) }"; }
ratio() { awk "BEGIN { printf \"%.2f\", ($2 > 0 ? $2 : 0.001) / ($1 > 0 ? $1 : 0.001) }"; }
echo "packages: $P files, $mb MB"
echo "                           wall               CPU"
echo "gzip -dc:                  ${gzip_s} s $(rate "$gzip_s") MB/s   ${gzip_cpu} s $(rate "$gzip_cpu") MB/s"
echo "pkgindex fragment:         ${frag_s} s $(rate "$frag_s") MB/s   ${frag_cpu} s $(rate "$frag_cpu") MB/s   ratio to gzip -dc: wall $(ratio "$frag_s" "$gzip_s"), CPU $(ratio "$frag_cpu" "$gzip_cpu") (target >= 0.6)"
echo "pkgindex fragment --cksum: ${cksum_s} s $(rate "$cksum_s") MB/s   ${cksum_cpu} s $(rate "$cksum_cpu") MB/s   ratio to gzip -dc: wall $(ratio "$cksum_s" "$gzip_s"), CPU $(ratio "$cksum_cpu" "$gzip_cpu")"
echo "pkgindex merge (computed): ${merge_s} s $(rate "$merge_s") MB/s   ${merge_cpu} s  (parallel, all entries computed from the packages)"
echo "(figures taken on $(nproc) CPUs; load was $(cut -d' ' -f1-3 /proc/loadavg))"
