#!/bin/sh
# bulk.sh: one bulk build, start to end, by chaining the pkgbulk tools:
#
#   pkgscan -> pkgdag -> pkgsched run -> pkgsched report -> [pkgsign] -> pkgindex merge
#
# Usage: scripts/bulk.sh [-c CONFIG]
#
# CONFIG is a shell fragment that sets any of the variables below (like
# pbulk.conf); everything it does not set keeps the embedded default, which
# builds the bundled example tree (examples/tree) with the local executor
# into a file:// package store under ./work/bulk. Every stage can also be run
# by hand: this script only passes paths along.
#
# Only the report's path goes to stdout; the tools' own output goes to stderr.
#
# Exit status: 0 the bulk build ran to the end and wrote its report (like
# pbulk's bulkbuild, packages that failed to build are in the report, not in
# the exit status; set strict=yes to exit 1 when any package failed); 1 with
# strict=yes, some package failed or some location failed to scan; 2 a
# setting is wrong (all are checked before the scan starts: files, the
# limited list's locations, the store) or a stage could not run.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

# ---- embedded defaults ----------------------------------------------------
pkgsrc=$top/examples/tree           # the pkgsrc tree to build
bulkdir=$top/work/bulk              # meta/ (scan, database, report), work/
store=file://$top/work/bulk/packages  # package store: file:///dir, sftp://user@host/dir, s3://bucket/prefix
store_opts=                         # store-access flags for every tool, e.g. "--s3-endpoint=https://s3.example.org"
                                    # or "--ssh-identity=/root/.ssh/bulk --known-hosts=/etc/bulk/known_hosts"
                                    # (S3 keys: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment)
make=bmake                          # make program
jobs=0                              # parallel builds (0: one per CPU)
scan_jobs=0                         # parallel scans (0: one per CPU)
reuse_scan_results=yes              # rescan only what changed since the last scan
limited_list=                       # file of pkgpaths: build only these and their dependencies
priority=                           # file of pkgpaths/PKGNAMEs to build first
max_time=2h                         # wall-time limit of one package build
no_output_time=30m                  # kill a build that logs nothing for this long
bootstrapkit=                       # tar.gz unpacked into every fresh build prefix
sign=no                             # no, gpg or x509 (pkgsign runs before pkgindex)
gpg_key=                            # armoured OpenPGP secret key (sign=gpg)
x509_key=                           # PEM private key (sign=x509)
x509_cert=                          # PEM code-signing certificate (sign=x509)
passphrase_file=                    # passphrase of the signing key, if any
summary_formats=plain,gz,bz2,xz     # pkg_summary forms to publish
checksum_packages=no                # yes: also publish SHA512.bz2
bindir=$top/bin                     # where the pkgbulk tools are
strict=no                           # yes: exit 1 when any package failed
base_url=                           # URL prefix of the report in report.txt (pbulk's base_url)
compiler=gcc                        # shown in the report (pbulk's PKGSRC_COMPILER)
# ---------------------------------------------------------------------------

config=
while getopts c: opt; do
	case $opt in
	c) config=$OPTARG ;;
	*) echo "usage: $0 [-c CONFIG]" >&2; exit 2 ;;
	esac
done
if [ -n "$config" ]; then
	[ -r "$config" ] || { echo "bulk.sh: cannot read config $config" >&2; exit 2; }
	# shellcheck disable=SC1090
	. "$config"
fi
say() { echo "bulk.sh: $*" >&2; }
. "$top/scripts/common.sh"

# ---- check the settings before anything runs -------------------------------
# A mistake in the config must stop the run now, naming the setting, not
# after a scan of the whole tree. Every problem found is reported.
bad=0
conf_error() { say "$*"; bad=1; }
need_file() { # setting value: an existing, readable file
	if [ ! -f "$2" ] || [ ! -r "$2" ]; then
		conf_error "$1=$2: no such readable file"
	fi
}
yes_no() {
	case $2 in
	yes | no) ;;
	*) conf_error "$1=$2: want yes or no" ;;
	esac
}
count() {
	case $2 in
	'' | *[!0-9]*) conf_error "$1=$2: want a number (0: one per CPU)" ;;
	esac
}
if [ ! -d "$pkgsrc" ]; then
	conf_error "pkgsrc=$pkgsrc: no such directory"
fi
command -v "$make" >/dev/null 2>&1 || conf_error "make=$make: no such program"
count jobs "$jobs"
count scan_jobs "$scan_jobs"
yes_no reuse_scan_results "$reuse_scan_results"
yes_no checksum_packages "$checksum_packages"
yes_no strict "$strict"
[ -z "$priority" ] || need_file priority "$priority"
[ -z "$bootstrapkit" ] || need_file bootstrapkit "$bootstrapkit"
[ -z "$passphrase_file" ] || need_file passphrase_file "$passphrase_file"
case $sign in
no) ;;
gpg) need_file gpg_key "$gpg_key" ;;
x509) need_file x509_key "$x509_key"; need_file x509_cert "$x509_cert" ;;
*) conf_error "sign=$sign: want no, gpg or x509" ;;
esac
# Every location of the limited list must be a package directory of the
# tree (the list is read as pkgdag reads it: '#' starts a comment, trailing
# blanks are dropped).
if [ -n "$limited_list" ]; then
	need_file limited_list "$limited_list"
	if [ -f "$limited_list" ] && [ -r "$limited_list" ] && [ -d "$pkgsrc" ]; then
		locations=$(awk '{ sub(/#.*/, ""); sub(/[ \t]+$/, "") } $0 != "" { print NR ":" $0 }' "$limited_list")
		if [ -z "$locations" ]; then
			conf_error "limited_list=$limited_list: lists no package"
		fi
		while IFS= read -r l; do
			[ -n "$l" ] || continue
			loc=${l#*:}
			[ -f "$pkgsrc/$loc/Makefile" ] || conf_error "limited_list=$limited_list:${l%%:*}: $loc is not a package directory of pkgsrc=$pkgsrc"
		done <<-EOF
			$locations
		EOF
	fi
fi
[ "$bad" = 0 ] || { say "fix the settings above${config:+ in $config}"; exit 2; }

# Build the tools when this checkout has none yet (or they are older than
# the sources), so the script works straight after a clone.
if [ ! -x "$bindir/pkgsched" ] || [ -n "$(find "$top/cmd" "$top/lib" -name '*.go' -newer "$bindir/pkgsched" 2>/dev/null | head -1)" ]; then
	find_go bulk.sh "$top" || exit 2
	(cd "$top" && go build -o "$bindir/" ./cmd/...) || { say "building the tools failed"; exit 2; }
fi
PATH=$bindir:$PATH
export PATH

# The store: a known scheme, reachable, with working store_opts. pkgindex
# opens it and lists All/, as every later stage will.
if ! msg=$(pkgindex merge --check-store --store="$store" $store_opts 2>&1 >/dev/null); then
	say "the store setting does not work (store=, store_opts=):"
	printf '%s\n' "$msg" | sed "/: run '.*--help' for usage\$/d; s/^/    /" >&2
	exit 2
fi

meta=$bulkdir/meta
mkdir -p "$meta" "$bulkdir/work"
failed=0

# ---- scan -----------------------------------------------------------------
say "scanning $pkgsrc"
reuse=
if [ "$reuse_scan_results" = yes ] && [ -f "$meta/pscan" ]; then
	reuse="--reuse=$meta/pscan"
fi
rc=0
# A limited build scans the listed locations and what they depend on, as pbulk does.
pkgscan --pkgsrc="$pkgsrc" --make="$make" --jobs="$scan_jobs" $reuse ${limited_list:+--limited="$limited_list"} --output="$meta/pscan.new" || rc=$?
case $rc in
0) ;;
1) say "some locations failed to scan (see above); building the rest"; failed=1 ;;
*) say "scan failed"; exit 2 ;;
esac
mv "$meta/pscan.new" "$meta/pscan"
[ -f "$meta/pscan.new.cache" ] && mv "$meta/pscan.new.cache" "$meta/pscan.cache"

# ---- resolve --------------------------------------------------------------
say "resolving dependencies into $meta/bulk.db"
limited=
[ -n "$limited_list" ] && limited="--limited=$limited_list"
pkgdag build $limited --pkgsrc="$pkgsrc" --output="$meta/bulk.db" "$meta/pscan" >&2 || exit 2
pkgdag presolve --quiet "$meta/pscan" >"$meta/presolve.new" && mv "$meta/presolve.new" "$meta/presolve"

# ---- build ----------------------------------------------------------------
if [ "$jobs" -gt 0 ]; then
	say "building with $jobs local build slots into $store"
else
	say "building with $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) local build slots (one per CPU) into $store"
fi
prio=
[ -n "$priority" ] && prio="--priority=$priority"
kit=
[ -n "$bootstrapkit" ] && kit="--bootstrap-kit=$bootstrapkit"
rc=0
pkgsched run --db="$meta/bulk.db" --jobs="$jobs" $prio $kit \
	--pkgsrc="$pkgsrc" --store="$store" $store_opts --make="$make" \
	--work-root="$bulkdir/work" --max-time="$max_time" --no-output-time="$no_output_time" >&2 || rc=$?
case $rc in
0) ;;
1) failed=1 ;;
*) say "the build could not run"; exit 2 ;;
esac

# ---- report ---------------------------------------------------------------
pkgsched report --db="$meta/bulk.db" --output="$meta" --store="$store" $store_opts \
	--compiler="$compiler" ${base_url:+--base-url="$base_url"} >&2 || exit 2

# ---- sign, then index (the index must describe the signed files) ---------
# A tool's exit 1 (some package could not be signed or read) is noted and
# the run goes on; exit 2 (could not run at all) stops it.
step() {
	rc=0
	"$@" >&2 || rc=$?
	case $rc in
	0) ;;
	1) failed=1 ;;
	*) say "$1 could not run"; exit 2 ;;
	esac
}
case $sign in
no) ;;
gpg)
	step pkgsign sign --store="$store" $store_opts --gpg-key="$gpg_key" ${passphrase_file:+--passphrase-file="$passphrase_file"} ;;
x509)
	step pkgsign sign --store="$store" $store_opts --x509-key="$x509_key" --x509-cert="$x509_cert" ${passphrase_file:+--passphrase-file="$passphrase_file"} ;;
esac
sha=
[ "$checksum_packages" = yes ] && sha="--sha512"
step pkgindex merge --store="$store" $store_opts --formats="$summary_formats" $sha

say "report: $meta/report.html"
echo "$meta/report.html"
if [ "$strict" = yes ]; then
	exit $failed
fi
exit 0
