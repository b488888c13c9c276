# Shell functions shared by setup.sh, test.sh and bulk.sh; source it, do
# not run it. POSIX sh. Each function prints its messages as "$1: ..." on
# stderr (the caller's name) and returns non-zero on failure.

# find_go NAME TOP: puts a Go that can build TOP/go.mod on PATH (and
# exports PATH). This is the one definition of "where Go is": of the go on
# PATH and /usr/local/go/bin/go (where the go.dev tarball installs it), the
# first that is at least the version go.mod's "go" line names; else the
# first Go 1.21 or newer that may download that version (GOTOOLCHAIN is not
# "local"). Go's bin directory (GOPATH/bin, where "go install" puts
# versitygw) is added too.
find_go() {
	_fg_need=$(awk '$1 == "go" { print $2; exit }' "$2/go.mod")
	_fg_found=""
	_fg_switch=""
	for _fg_go in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
		[ -n "$_fg_go" ] && [ -x "$_fg_go" ] || continue
		_fg_v=$(go_env "$_fg_go" GOVERSION) || continue
		if go_version_at_least "${_fg_v#go}" "$_fg_need"; then
			go_on_path "$_fg_go"
			return 0
		fi
		_fg_found="$_fg_found $_fg_v ($_fg_go)"
		# Go 1.21 and newer fetch the toolchain go.mod asks for, unless
		# GOTOOLCHAIN=local forbids it.
		if [ -z "$_fg_switch" ] && go_version_at_least "${_fg_v#go}" 1.21 &&
			[ "$(go_env "$_fg_go" GOTOOLCHAIN)" != local ]; then
			_fg_switch=$_fg_go
		fi
	done
	if [ -n "$_fg_switch" ]; then
		echo "$1: using $(go_env "$_fg_switch" GOVERSION) ($_fg_switch), which downloads Go $_fg_need for this module (GOTOOLCHAIN)" >&2
		go_on_path "$_fg_switch"
		return 0
	fi
	if [ -n "$_fg_found" ]; then
		echo "$1: pkgbulk needs Go $_fg_need or newer; found only$_fg_found. Install it from https://go.dev/dl/ into /usr/local/go" >&2
	else
		echo "$1: Go is not installed (not on PATH, not in /usr/local/go); pkgbulk needs Go $_fg_need or newer: https://go.dev/dl/" >&2
	fi
	return 2
}

# go_on_path GO: puts GO's directory first on PATH (unless it is on PATH
# already) and its GOPATH/bin last, and exports PATH.
go_on_path() {
	_gp_dir=$(dirname "$1")
	case ":$PATH:" in
	*":$_gp_dir:"*) ;;
	*) PATH=$_gp_dir:$PATH ;;
	esac
	PATH=$PATH:$(go_env "$1" GOPATH | sed 's/:.*//')/bin
	export PATH
}

# go_env GO VAR: GO's setting VAR, asked outside any module (inside this
# one, an older Go would answer for the toolchain go.mod makes it fetch).
go_env() {
	(cd / && "$1" env "$2" 2>/dev/null)
}

# go_version_at_least HAVE NEED: true when version HAVE (1.26.8, 1.27rc1)
# is NEED or newer; pre-releases count as their release.
go_version_at_least() {
	awk -v have="$1" -v need="$2" 'BEGIN {
		sub(/(rc|beta).*/, "", have); sub(/(rc|beta).*/, "", need)
		nh = split(have, h, "."); nn = split(need, n, ".")
		for (i = 1; i <= 3; i++) {
			a = (i <= nh) ? h[i] + 0 : 0; b = (i <= nn) ? n[i] + 0 : 0
			if (a != b) exit !(a > b)
		}
		exit 0
	}'
}

# apt_lock_holder FILE...: prints "FILE PID" for the first of the files that
# a process holds a lock on, and fails when none is held. apt and dpkg lock
# with fcntl(2), which /proc/locks lists (by inode: "... PID MAJ:MIN:INODE ...").
apt_lock_holder() {
	for _al_f in "$@"; do
		[ -e "$_al_f" ] || continue
		_al_ino=$(stat -c %i "$_al_f" 2>/dev/null) || continue
		_al_pid=$(awk -v ino="$_al_ino" '{
			for (i = 2; i <= NF; i++) if ($i ~ /^[0-9a-f]+:[0-9a-f]+:[0-9]+$/) {
				n = split($i, p, ":"); if (p[n] == ino) { print $(i-1); exit }
			}
		}' /proc/locks 2>/dev/null)
		if [ -n "$_al_pid" ]; then
			echo "$_al_f $_al_pid"
			return 0
		fi
	done
	return 1
}

# wait_for_apt NAME TIMEOUT [FILE...]: waits until no process holds apt's
# or dpkg's locks (on a fresh machine unattended-upgrades holds them for
# minutes), at most TIMEOUT seconds, saying so once a minute; fails with a
# message that says what to do when they are still held. The files default
# to apt's and dpkg's lock files.
wait_for_apt() {
	_wa_name=$1 _wa_timeout=$2
	shift 2
	[ $# -gt 0 ] || set -- /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock
	_wa_waited=0
	while _wa_holder=$(apt_lock_holder "$@"); do
		_wa_pid=${_wa_holder##* }
		_wa_prog=$(cat "/proc/$_wa_pid/comm" 2>/dev/null || echo "process $_wa_pid")
		if [ "$_wa_waited" -ge "$_wa_timeout" ]; then
			echo "$_wa_name: apt/dpkg is still busy after ${_wa_timeout}s: $_wa_prog (pid $_wa_pid) holds ${_wa_holder% *}." >&2
			echo "$_wa_name: wait for it to finish (unattended-upgrades on a fresh machine can take a while) and run this again, or raise APT_LOCK_TIMEOUT (seconds)" >&2
			return 2
		fi
		if [ $((_wa_waited % 60)) -eq 0 ]; then
			echo "$_wa_name: waiting for apt/dpkg: $_wa_prog (pid $_wa_pid) holds ${_wa_holder% *} (${_wa_waited}s of at most ${_wa_timeout}s)" >&2
		fi
		sleep 1
		_wa_waited=$((_wa_waited + 1))
	done
	return 0
}
