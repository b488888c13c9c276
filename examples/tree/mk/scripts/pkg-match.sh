# pkg-match.sh: shell functions (sourced) that find an installed package
# matching a pkgsrc dependency pattern in a PKG_DBDIR.
#
# Supported pattern forms: csh braces `{a,b}>=1`, relational `foo>=1.0`,
# `foo>1`, `foo<2`, `foo<=2`, `foo>=1<2`, and shell globs `foo-[0-9]*`,
# `foo-1.*`.  Versions are compared with sort -V, which agrees with pkgsrc's
# dewey order for the plain versions (and `nbN` revisions) of this tree.
# pkgdag implements the full rules; this is only the build-time check.

# ex_expand_braces PATTERN: print each alternative on its own line.
ex_expand_braces() {
	case $1 in
	*\{*\}*)
		_pre=${1%%\{*}
		_rest=${1#*\{}
		_alts=${_rest%%\}*}
		_post=${_rest#*\}}
		_oldifs=$IFS; IFS=,
		for _a in $_alts; do
			IFS=$_oldifs
			ex_expand_braces "$_pre$_a$_post"
		done
		IFS=$_oldifs
		;;
	*)	printf '%s\n' "$1" ;;
	esac
}

# ex_vercmp A OP B: true when version A OP B holds.
ex_vercmp() {
	if [ "$1" = "$3" ]; then
		case $2 in '>='|'<=') return 0 ;; *) return 1 ;; esac
	fi
	_lo=$(printf '%s\n%s\n' "$1" "$3" | LC_ALL=C sort -V | head -n 1)
	case $2 in
	'>'|'>=') [ "$_lo" = "$3" ] ;;
	'<'|'<=') [ "$_lo" = "$1" ] ;;
	*) return 1 ;;
	esac
}

# ex_match_one NAME PATTERN: true when the package NAME matches PATTERN
# (a single alternative, braces already expanded).
ex_match_one() {
	_name=$1 _pat=$2
	case $_pat in
	*'<'*|*'>'*)
		_base=$(printf '%s' "$_pat" | sed 's/[<>].*//')
		[ "${_name%-*}" = "$_base" ] || return 1
		_ver=${_name##*-}
		_cons=${_pat#"$_base"}
		while [ -n "$_cons" ]; do
			case $_cons in
			'>='*) _op='>='; _cons=${_cons#>=} ;;
			'<='*) _op='<='; _cons=${_cons#<=} ;;
			'>'*) _op='>'; _cons=${_cons#>} ;;
			'<'*) _op='<'; _cons=${_cons#<} ;;
			*) return 1 ;;
			esac
			_lim=$(printf '%s' "$_cons" | sed 's/[<>].*//')
			_cons=${_cons#"$_lim"}
			ex_vercmp "$_ver" "$_op" "$_lim" || return 1
		done
		return 0
		;;
	*)
		# shellcheck disable=SC2254
		case $_name in $_pat) return 0 ;; esac
		return 1
		;;
	esac
}

# ex_best_installed DBDIR PATTERN: print the highest installed package
# matching PATTERN; false when there is none.
ex_best_installed() {
	_db=$1
	_found=$(
		for _alt in $(ex_expand_braces "$2"); do
			for _d in "$_db"/*; do
				[ -f "$_d/+CONTENTS" ] || continue
				_n=${_d##*/}
				ex_match_one "$_n" "$_alt" && printf '%s %s\n' "${_n##*-}" "$_n"
			done
		done | LC_ALL=C sort -V -k1,1 | tail -n 1)
	[ -n "$_found" ] || return 1
	printf '%s\n' "${_found#* }"
}
