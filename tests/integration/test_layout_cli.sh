#!/usr/bin/env bash
# test_layout_cli.sh — keyforge-layout as a user runs it (TAP).
#
# The real binary on the real default corpus (BUILD/corpora/brown.kfc) and on
# small corpora it builds itself: analyze (text and JSON), optimize, corpus
# build/info, and one clear line plus the documented exit status for each
# kind of bad input. Environment (set by meson): KF_BUILD_ROOT.

# check() evals its second argument, so the single quotes of the checks below
# defer their expansion on purpose, and what they use looks unused to shellcheck.
# shellcheck disable=SC2016,SC2034
set -uo pipefail

BUILD="${KF_BUILD_ROOT:?KF_BUILD_ROOT is not set}"
KL="$BUILD/layout/keyforge-layout"
TMP="$(mktemp -d /tmp/kf-layout-cli-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

# expect_fail NAME STATUS PATTERN CMD...: exits STATUS, one stderr line matching PATTERN.
expect_fail() {
	local name="$1" status="$2" pattern="$3"
	shift 3
	"$@" >"$TMP/out" 2>"$TMP/err"
	local got=$?
	if [ "$got" -eq "$status" ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
		grep -qE "$pattern" "$TMP/err"; then
		ok "$name"
	else
		not_ok "$name (status $got, stderr: $(head -c 300 "$TMP/err"))"
	fi
}

printf 'the quick brown fox jumps over the lazy dog\nThe Lazy Dog sleeps.\n' >"$TMP/text.txt"
"$KL" corpus build "$TMP/text.txt" -o "$TMP/small.kfc" --name small >/dev/null 2>&1
check "corpus build writes a .kfc" '[ -s "$TMP/small.kfc" ]'
check "corpus info names it" '"$KL" corpus info "$TMP/small.kfc" >"$TMP/info" && grep -q small "$TMP/info"'

CORPUS="$BUILD/corpora/brown.kfc"
[ -s "$CORPUS" ] || CORPUS="$TMP/small.kfc"

out="$("$KL" analyze --corpus "$CORPUS" --layout qwerty --json)"
check "analyze --json has the DESIGN §10 keys" \
	'(for k in sfb sfs lsb scissors alternate alt_sfs inroll outroll onehand redirect bad_redirect finger_usage home_row left_hand; do echo "$out" | jq -e "has(\"$k\")" >/dev/null || exit 1; done)'
check "analyze --json gives the layout back" '[ "$(echo "$out" | jq -r .layout)" = "qwertyuiopasdfghjkl;zxcvbnm,./" ]'
check "analyze draws the board" '"$KL" analyze --corpus "$CORPUS" --layout colemak >"$TMP/board" && grep -q "q w f p g" "$TMP/board"'

opt="$("$KL" optimize --corpus "$CORPUS" --steps 20000 --seed 7 --json 2>/dev/null)"
check "optimize lowers the cost" \
	'echo "$opt" | jq -e ".best.score < .start.score" >/dev/null'
opt2="$("$KL" optimize --corpus "$CORPUS" --steps 20000 --seed 7 --json 2>/dev/null)"
check "the same seed gives the same layout" \
	'[ "$(echo "$opt" | jq -r .best.layout)" = "$(echo "$opt2" | jq -r .best.layout)" ]'
pinned="$("$KL" optimize --corpus "$CORPUS" --steps 20000 --seed 3 --pin qaz --json 2>/dev/null | jq -r .best.layout)"
check "pinned keys stay where they were" '[ "${pinned:0:1}${pinned:10:1}${pinned:20:1}" = "qaz" ]'

expect_fail "unknown option: usage error" 2 "unknown option '--bogus'" "$KL" analyze --bogus
expect_fail "missing value: usage error" 2 "needs a value" "$KL" analyze --corpus
expect_fail "missing --layout: usage error" 2 "required" "$KL" analyze --corpus "$CORPUS"
expect_fail "unknown command: usage error" 2 "unknown command" "$KL" frobnicate
expect_fail "short layout string: usage error" 2 "30-character" "$KL" analyze --corpus "$CORPUS" --layout abc
expect_fail "duplicate key in a layout: usage error" 2 "repeats" \
	"$KL" analyze --corpus "$CORPUS" --layout qqertyuiopasdfghjkl\;zxcvbnm,./
expect_fail "missing corpus file" 1 "no-such.kfc" \
	"$KL" analyze --corpus "$TMP/no-such.kfc" --layout qwerty
printf '{"chars": {"a": ' >"$TMP/broken.json"
expect_fail "malformed corpus JSON" 1 "broken.json" \
	"$KL" analyze --corpus "$TMP/broken.json" --layout qwerty
printf 'sfb = lots\n' >"$TMP/w.txt"
expect_fail "malformed weights file" 1 "w.txt|lots" \
	"$KL" optimize --corpus "$CORPUS" --steps 10 --weights "$TMP/w.txt"

echo "1..$n"
[ "$fails" -eq 0 ]
