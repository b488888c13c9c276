#!/bin/sh
# Sets up a Debian machine for the tests (scripts/setup.sh --test) and runs
# them: gofmt, go vet and every package's tests, with the real bmake, sshd,
# S3 server, gpg and openssl that the set-up installed.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh --test
PATH=$(go env GOPATH)/bin:$PATH
export PATH

unformatted=$(gofmt -l cmd lib 2>/dev/null || true)
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
