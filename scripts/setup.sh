#!/bin/sh
# Installs what pkgbulk needs on a Debian machine and builds the tools into
# ./bin. With --test it also installs what the test suite runs for real:
# OpenSSH's sshd, an S3 server (versitygw), GnuPG, OpenSSL, binutils' ar and
# bsdtar. Run as root (or with sudo). Safe to run again.
set -eu
cd "$(dirname "$0")/.."

want_test=no
[ "${1:-}" = "--test" ] && want_test=yes

pkgs="bmake sqlite3 gzip bzip2 xz-utils zstd ca-certificates"
if [ "$want_test" = yes ]; then
	pkgs="$pkgs openssh-server openssh-client gnupg openssl binutils libarchive-tools chromium"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		PATH=/usr/local/go/bin:$PATH
	else
		echo "setup: Go is not installed (pkgbulk needs Go 1.26 or newer)" >&2
		exit 2
	fi
fi

if [ "$want_test" = yes ]; then
	gobin=$(go env GOPATH)/bin
	if [ ! -x "$gobin/versitygw" ]; then
		echo "setup: installing versitygw (S3 server for the store tests)" >&2
		go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
	fi
fi

mkdir -p bin
go build -o bin/ ./cmd/...
