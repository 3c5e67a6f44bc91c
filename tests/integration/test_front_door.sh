#!/usr/bin/env bash
# tests/integration/test_front_door.sh — the arguments of ./keyforge and
# the scripts under scripts/ (TAP): --help prints the synopsis in the
# caller's words and exits 0 without building or starting anything; a wrong
# option or command is a usage error (2) that names itself; `env` and
# `status` of a hive that is not up exit 3 (DESIGN.md §10). Starts no
# process; ~1 s.
set -uo pipefail

SRC="${KF_SOURCE_ROOT:?}"
BUILD="${KF_BUILD_ROOT:?}"
TMP="$(mktemp -d /tmp/kf-front-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
# A state folder of our own: a hive of the user's must not answer for us.
export KEYFORGE_STATE_DIR="$TMP/state"

N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
	N=$((N + 1)); FAILED=$((FAILED + 1))
	echo "not ok $N - $1"
	shift
	for line in "$@"; do printf '#   %s\n' "$line"; done
}
# expect DESC RC PATTERN COMMAND...: COMMAND exits RC and its output (stdout
# and stderr) matches the extended regex PATTERN.
expect() {
	local desc="$1" want="$2" pattern="$3" rc
	shift 3
	"$@" >"$TMP/out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ] && grep -Eq -- "$pattern" "$TMP/out"; then
		ok "$desc"
	else
		not_ok "$desc" "command: $*" "exit $rc (want $want)" "$(head -n 5 "$TMP/out")"
	fi
}

echo "1..14"

# `./keyforge up --help` must not install or build: point it at a build
# folder that does not exist and see that none appears.
expect "./keyforge up --help: synopsis in ./keyforge's words, exit 0" 0 \
	'^  \./keyforge up +\[--workers N\] \[--port-base P\]$' \
	env KEYFORGE_BUILD_DIR="$TMP/nobuild" "$SRC/keyforge" up --help
if [ -e "$TMP/nobuild" ]; then
	not_ok "./keyforge up --help builds nothing" "$TMP/nobuild was made"
else
	ok "./keyforge up --help builds nothing"
fi
expect "./keyforge down -h describes the exit statuses" 0 \
	'^Exit status: 0 done' "$SRC/keyforge" down -h
expect "scripts/hive --help keeps BUILD_DIR in its synopsis" 0 \
	'^  scripts/hive status BUILD_DIR$' "$SRC/scripts/hive" status "$BUILD" --help
expect "an unknown option of up is named, exit 2" 2 \
	"unknown option '--bogus'" "$SRC/scripts/hive" up "$BUILD" --bogus
expect "a bad worker count is refused, exit 2" 2 \
	"--workers 'abc' is not a number" "$SRC/scripts/hive" up "$BUILD" --workers abc
expect "env of a hive that is not up: exit 3" 3 \
	'the local hive is not up' env KEYFORGE_BUILD_DIR="$BUILD" "$SRC/keyforge" env
expect "status of a hive that is not up: exit 3" 3 \
	'the local hive is not up' env KEYFORGE_BUILD_DIR="$BUILD" "$SRC/keyforge" status
expect "./keyforge with an unknown command: exit 1, named" 1 \
	"unknown command 'bogus'" "$SRC/keyforge" bogus

# The scripts ./keyforge runs are programs too: --help on stdout, exit 0.
expect "scripts/pgtmp --help" 0 '^  pgtmp start +\[DIR\]' "$SRC/scripts/pgtmp" --help
expect "scripts/demo --help" 0 '^demo BUILD_DIR \[--keep\]' "$SRC/scripts/demo" --help
expect "scripts/chaos --help" 0 '^  scripts/chaos BUILD_DIR \[SECONDS\] \[JOBS\]' "$SRC/scripts/chaos" --help
expect "scripts/default-corpus --help" 0 '^default-corpus BUILD_DIR' "$SRC/scripts/default-corpus" --help
expect "scripts/pgtmp with an unknown command: exit 2" 2 '^pgtmp — ' "$SRC/scripts/pgtmp" bogus

[ "$FAILED" = 0 ]
