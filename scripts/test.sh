#!/bin/sh
# Sets up a Debian machine for the tests (scripts/setup.sh --test) and runs
# them: gofmt, go vet and every package's tests, with the real bmake, sshd,
# S3 server, gpg and openssl that the set-up installed. Go is found as
# setup.sh finds it (scripts/common.sh): on PATH or in /usr/local/go.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
sh scripts/setup.sh --test
find_go test "$(pwd)"   # Go and GOPATH/bin (versitygw) on PATH for the tests

unformatted=$(gofmt -l . 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# In CI every suite that can skip for a missing server or data set must run.
if [ "${CI:-}" = true ]; then
	PKGBULK_TEST_REQUIRE=${PKGBULK_TEST_REQUIRE:-all}
	export PKGBULK_TEST_REQUIRE
fi
go test -count=1 -timeout 40m ./...
