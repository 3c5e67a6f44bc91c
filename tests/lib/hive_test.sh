# tests/lib/hive_test.sh — what the shell tests that bring up a local hive
# share (sourced by tests/integration/test_ctl.sh, tests/integration/test_tls.sh
# and tests/tui/test_admin.sh): TAP output, a corpus for the jobs, free
# loopback ports, a submit that waits for the broker, and `scripts/hive up`.
#
# The sourcing test sets BUILD, SRC, HIVE, LAYOUT_TOOL, TMP and
# KEYFORGE_STATE_DIR first. Skips exit 77 after a `1..0 # SKIP` line.
# shellcheck shell=bash

# ---- TAP ---------------------------------------------------------------------------

N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
	N=$((N + 1)); FAILED=$((FAILED + 1))
	echo "not ok $N - $1"
	shift
	for line in "$@"; do printf '#   %s\n' "$line"; done
}
# check DESCRIPTION COMMAND... : ok when the command succeeds.
check() {
	local desc="$1"; shift
	if "$@"; then ok "$desc"; else not_ok "$desc" "failed: $*"; fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_until MS COMMAND...: runs COMMAND every 0.1 s until it succeeds
# (true) or MS milliseconds have passed (false).
wait_until() {
	local end=$(($(now_ms) + $1))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# submit_when_up SECONDS CTL ARGS...: SUBMITTED, the id of a job from
# `CTL submit ARGS...` (CTL: keyforgectl or a function around it), tried
# again while the broker is still starting; empty after SECONDS.
submit_when_up() {
	local secs="$1"
	shift
	wait_until $((secs * 1000)) try_submit "$@" || SUBMITTED=""
}
# try_submit CTL ARGS...: one `CTL submit ARGS...`; true with SUBMITTED set
# to the job's id.
try_submit() {
	local ctl="$1"
	shift
	SUBMITTED="$("$ctl" submit "$@" 2>/dev/null)" && [ -n "$SUBMITTED" ]
}

# ---- setup --------------------------------------------------------------------------

# hive_corpus: sets CORPUS — the default corpus of the build, else one built
# from English text that ships with the source (the docs).
hive_corpus() {
	CORPUS="$BUILD/corpora/brown.kfc"
	if [ ! -f "$CORPUS" ]; then
		CORPUS="$TMP/docs.kfc"
		"$LAYOUT_TOOL" corpus build "$SRC"/docs/*.md "$SRC"/README.md -o "$CORPUS" \
			--name docs >/dev/null || { echo "1..0 # SKIP cannot build a corpus"; exit 77; }
	fi
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# hive_ports: sets BASE, the first of six free loopback ports BASE..BASE+5.
hive_ports() {
	local b
	BASE=""
	for _ in $(seq 1 50); do
		# Below the kernel's ephemeral range (32768 on): a port up there may
		# be taken, between this check and the bind, by the local end of any
		# connection made meanwhile — another test's, running beside this one.
		b=$((20000 + (RANDOM % 1270) * 10))
		if ! port_taken $b && ! port_taken $((b + 1)) && ! port_taken $((b + 2)) &&
			! port_taken $((b + 3)) && ! port_taken $((b + 4)) && ! port_taken $((b + 5)); then
			BASE=$b
			return 0
		fi
	done
	echo "1..0 # SKIP no free ports"
	exit 77
}

# hive_up: a hive of 2 workers on BASE (scripts/hive up), its pids in PIDS and
# its addresses in the environment; a hive that does not come up ends the test.
hive_up() {
	if "$HIVE" up "$BUILD" --workers 2 --port-base "$BASE" >"$TMP/up.out" 2>&1; then
		ok "hive up: PostgreSQL, broker, gateway and 2 workers on ports $BASE-$((BASE + 5))"
	else
		not_ok "hive up" "$(tail -n 20 "$TMP/up.out")"
		tail -n 20 "$KEYFORGE_STATE_DIR"/logs/*.log 2>/dev/null | sed 's/^/# /'
		echo "1..$N"
		exit 1
	fi
	# shellcheck disable=SC2034 # the sourcing test's cleanup kills them
	PIDS="$(cut -d" " -f1 "$KEYFORGE_STATE_DIR"/pids/*.pid 2>/dev/null | tr "\n" " ")"
	eval "$("$HIVE" env "$BUILD")"
}
