#!/bin/sh
# Usage: sh scripts/setup.sh [--test] [--image] [--prefix DIR]
#
# Installs what pkgbulk needs on a Debian machine (bmake, SQLite, the
# compressors, a C compiler and patch for the example tree's builds) and
# builds the tools into ./bin. Run as root (or with sudo). Safe to run again.
#
#   --test        also install what the test suite runs for real: OpenSSH's
#                 sshd, an S3 server (versitygw), GnuPG, OpenSSL, binutils'
#                 ar, bsdtar, chromium and curl (the example tree fetches from
#                 a local HTTP site in the distfile tests), Slurm and munge,
#                 nftables (the pull workers' NAT-like rules in the netns tests)
#                 qemu, a Debian cloud kernel and busybox-static (the worker
#                 VMs), OVMF and the disk-image tools of --image (the AMI
#                 disk boot test) and ec2-metadata-mock (spot notices)
#   --image       also install what scripts/vmimage.sh needs to build the
#                 worker image and its AMI disk: the Debian cloud kernel,
#                 busybox-static, lz4, dosfstools, mtools, fdisk and
#                 systemd-boot-efi
#   --prefix DIR  also install the tools into DIR/bin (e.g. /usr/local)
#
# Go (the version go.mod names, or newer) must be on PATH or in
# /usr/local/go. When apt or dpkg is busy (unattended-upgrades on a fresh
# machine), setup waits up to APT_LOCK_TIMEOUT seconds (default 600).
set -eu

usage() {
	echo "usage: sh scripts/setup.sh [--test] [--image] [--prefix DIR]" >&2
	exit 2
}
want_test=no
want_image=no
prefix=
while [ $# -gt 0 ]; do
	case $1 in
	--test) want_test=yes want_image=yes ;;
	--image) want_image=yes ;;
	--prefix) [ $# -ge 2 ] || usage; prefix=$2; shift ;;
	--prefix=*) prefix=${1#--prefix=} ;;
	-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "setup: unknown option $1" >&2; usage ;;
	esac
	shift
done
if [ -n "$prefix" ]; then
	case $prefix in
	/*) ;;
	*) prefix=$PWD/$prefix ;;
	esac
fi

cd "$(dirname "$0")/.."
top=$(pwd)
. "$top/scripts/common.sh"
apt_timeout=${APT_LOCK_TIMEOUT:-600}

pkgs="bmake sqlite3 gzip bzip2 xz-utils zstd ca-certificates gcc libc6-dev patch"
if [ "$want_test" = yes ]; then
	pkgs="$pkgs openssh-server openssh-client iproute2 gnupg openssl binutils libarchive-tools chromium curl slurm-wlm munge nftables qemu-system-x86 ovmf"
fi
if [ "$want_image" = yes ]; then
	pkgs="$pkgs linux-image-cloud-amd64 busybox-static lz4 dosfstools mtools fdisk systemd-boot-efi"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	echo "setup: installing$missing" >&2
	wait_for_apt setup "$apt_timeout"
	$SUDO apt-get -o DPkg::Lock::Timeout="$apt_timeout" update -qq
	wait_for_apt setup "$apt_timeout"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout="$apt_timeout" install -y -qq $missing >/dev/null
fi

find_go setup "$top"

if [ "$want_test" = yes ]; then
	gobin=$(go env GOPATH | sed 's/:.*//')/bin
	if [ ! -x "$gobin/versitygw" ]; then
		echo "setup: installing versitygw (S3 server for the store tests)" >&2
		go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
	fi
	if [ ! -x "$gobin/ec2-metadata-mock" ]; then
		echo "setup: installing ec2-metadata-mock (spot notices for the VM tests)" >&2
		go install github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0
	fi
fi

mkdir -p bin
go build -o bin/ ./cmd/...
tools=$(ls cmd)

if [ -n "$prefix" ]; then
	mkdir -p "$prefix/bin"
	for t in $tools; do
		# A temporary name, then rename: a running tool keeps its file.
		cp "bin/$t" "$prefix/bin/.$t.new"
		chmod 755 "$prefix/bin/.$t.new"
		mv -f "$prefix/bin/.$t.new" "$prefix/bin/$t"
	done
	echo "setup: installed" $tools "into $prefix/bin" >&2
	case ":$PATH:" in
	*":$prefix/bin:"*) ;;
	*) echo "setup: $prefix/bin is not on PATH; add it: export PATH=$prefix/bin:\$PATH" >&2 ;;
	esac
else
	echo "setup: the tools are in $top/bin; to run them by name:" >&2
	echo "    export PATH=$top/bin:\$PATH" >&2
	echo "setup: (or install them: sh scripts/setup.sh --prefix /usr/local)" >&2
fi
