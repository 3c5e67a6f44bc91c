#!/usr/bin/env bash
# test_ctl.sh — keyforgectl and the local hive end to end (TAP).
#
# scripts/hive brings up a real hive (pgtmp PostgreSQL, keyforge-broker,
# keyforge-gateway, two keyforge-workers) in a temporary state folder on
# free loopback ports; keyforgectl submits, waits, lists, shows, kills and
# retries real jobs; a keyed submit queues one job however often it is sent,
# even after a timeout; bad input gives exit status 2 with a clear message; an
# unreachable broker gives 4, and so does a submit while PostgreSQL is down
# (a wait is waited out); run as root, `up` starts it all in one CPU cgroup;
# `down` leaves no process, no folder and no group.
#
# Environment (set by meson): KF_BUILD_ROOT, KF_SOURCE_ROOT. Exit 77 (skip)
# when a program is not built. About 30 s.
set -uo pipefail

BUILD="${KF_BUILD_ROOT:?KF_BUILD_ROOT is not set}"
SRC="${KF_SOURCE_ROOT:?KF_SOURCE_ROOT is not set}"
CTL="${KF_CTL:-$BUILD/admin/keyforgectl}" # KF_CTL: e.g. a sanitizer build of it
HIVE="$SRC/scripts/hive"
LAYOUT_TOOL="$BUILD/layout/keyforge-layout"

for bin in "$CTL" "$BUILD/broker/keyforge-broker" "$BUILD/gateway/keyforge-gateway" \
	"$BUILD/worker/keyforge-worker" "$LAYOUT_TOOL"; do
	if [ ! -x "$bin" ]; then
		echo "1..0 # SKIP $(basename "$bin") is not built"
		exit 77
	fi
done
command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 77; }

TMP="$(mktemp -d /tmp/kf-ctl-test-XXXXXX)"
export KEYFORGE_STATE_DIR="$TMP/hive"
unset KEYFORGE_RPC KEYFORGE_EVENTS KEYFORGE_INGEST KEYFORGE_HTTP KEYFORGE_TOKEN_FILE KEYFORGE_DB

# ---- TAP, corpus, ports, hive up: tests/lib/hive_test.sh ------------------------------

# shellcheck source=SCRIPTDIR/../lib/hive_test.sh
. "$SRC/tests/lib/hive_test.sh"

# Runs keyforgectl; sets RC, OUT, ERR.
run_ctl() {
	OUT="$("$CTL" "$@" 2>"$TMP/err")"
	RC=$?
	ERR="$(cat "$TMP/err")"
}

# expect_rc DESC WANT_RC GREP_ERR ARGS... : exit status and a stderr phrase.
expect_rc() {
	local desc="$1" want="$2" phrase="$3"; shift 3
	run_ctl "$@"
	if [ "$RC" = "$want" ] && grep -qF -- "$phrase" <<<"$ERR"; then
		ok "$desc"
	else
		not_ok "$desc" "keyforgectl $*" "exit $RC (want $want), stderr: $ERR"
	fi
}

PIDS=""
cleanup() {
	"$HIVE" down "$BUILD" >/dev/null 2>&1
	for pid in $PIDS; do kill -KILL "$pid" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---- the command line, without a hive ---------------------------------------------------

# --help, -V and --version work before the command and after every one of
# them ("global flags (before or after the command)", keyforgectl --help).
VERSION_RE='^keyforgectl [0-9]+\.[0-9]+\.[0-9]+ \(protocol [0-9]+\.[0-9]+\)$'
flags_ok=""
for cmd in "" submit list show kill retry wait workers drain logs; do
	for flag in -V --version; do
		# shellcheck disable=SC2086 # no command: no word
		run_ctl $cmd "$flag"
		[ "$RC" = 0 ] && [[ "$OUT" =~ $VERSION_RE ]] || flags_ok+=" '${cmd:+$cmd }$flag' (exit $RC: $OUT$ERR)"
	done
	# shellcheck disable=SC2086
	run_ctl $cmd --help
	[ "$RC" = 0 ] && grep -q "^usage: keyforgectl ${cmd}" <<<"$OUT" || flags_ok+=" '${cmd:+$cmd }--help' (exit $RC)"
done
if [ -z "$flags_ok" ]; then
	ok "-V, --version and --help before the command and after each: exit 0"
else
	not_ok "-V, --version and --help before the command and after each" "failed:$flags_ok"
fi

# ---- setup and up --------------------------------------------------------------------------

hive_corpus
hive_ports
hive_up
PGDIR="$(cat "$KEYFORGE_STATE_DIR/pgdir")"
check "env points at the hive (rpc port $((BASE + 2)))" \
	test "$KEYFORGE_RPC" = "tcp://127.0.0.1:$((BASE + 2))" -a -f "$KEYFORGE_TOKEN_FILE"

# ---- the CPU group (scripts/cpugroup) ------------------------------------------------------------

# The cpu line of /proc/PID/cgroup (v1 "N:cpu,...:/path", or v2 "0::/path").
cpu_cgroup_of() {
	grep -E '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:|^0::' "/proc/$1/cgroup" | head -n 1 | cut -d: -f3
}
CGROUP="$(cat "$KEYFORGE_STATE_DIR/cgroup" 2>/dev/null || true)"
if [ -z "$CGROUP" ]; then
	ok "# SKIP no CPU group: $(tail -n 1 "$KEYFORGE_STATE_DIR/logs/cpugroup.log" 2>/dev/null)"
else
	# The broker, a worker, the postmaster and the broker's backend (a
	# process the postmaster forked after `up` joined the group).
	in_group=1 members="" n=0
	POSTMASTER="$(head -n 1 "$PGDIR/data/postmaster.pid" 2>/dev/null)"
	for pid in $(cat "$KEYFORGE_STATE_DIR/pids/broker.pid" "$KEYFORGE_STATE_DIR/pids/worker-1.pid" | cut -d" " -f1) \
		"$POSTMASTER" $(pgrep -P "$POSTMASTER" -u postgres 2>/dev/null); do
		g="$(cpu_cgroup_of "$pid" 2>/dev/null)"
		[ -n "$g" ] || continue
		members+=" $pid:$g"
		n=$((n + 1))
		case "$CGROUP" in */"${g#/}") ;; *) in_group=0 ;; esac
	done
	check "up runs the broker, a worker and PostgreSQL in the CPU group $CGROUP ($members)" \
		test "$in_group" = 1 -a "$n" -ge 4
fi

"$HIVE" up "$BUILD" --workers 1 --port-base "$BASE" >"$TMP/up2.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "already up" "$TMP/up2.out"; then
	ok "a second up refuses clearly"
else
	not_ok "a second up refuses clearly" "exit $rc: $(cat "$TMP/up2.out")"
fi

run_ctl workers --json
check "workers --json: 2 alive workers" \
	test "$(jq '[.workers[] | select(.liveness == "alive")] | length' <<<"$OUT")" = 2

# ---- jobs ------------------------------------------------------------------------------------

IDS=()
for seed in 1 2 3; do
	run_ctl submit --corpus "$CORPUS" --steps 20000 --seed "$seed"
	[ "$RC" = 0 ] && [[ "$OUT" =~ ^[0-9]+$ ]] && IDS+=("$OUT")
done
check "submit prints the new job id alone (3 jobs: ${IDS[*]})" test ${#IDS[@]} = 3

run_ctl wait "${IDS[@]}" --timeout 60
check "wait returns 0 once all are final" test "$RC" = 0
check "wait prints one line per job" test "$(grep -c succeeded <<<"$OUT")" = 3

run_ctl show "${IDS[0]}" --json
if jq -e '.state == "succeeded" and (.result.layout | length) == 30 and
	(.result.sfb | type) == "number" and (.result.score | type) == "number" and
	.attempt == 1 and (.worker | type) == "string" and .params.steps == 20000 and
	.params.seed == 1' <<<"$OUT" >/dev/null; then
	ok "show --json: succeeded, 30-character layout, numeric sfb and score, params"
else
	not_ok "show --json" "$OUT"
fi

run_ctl list --json
if jq -e --argjson n 3 'length == $n and all(.[]; .state == "succeeded" and
	(.result.layout | length) == 30 and (.result.finger_usage | length) == 8)' <<<"$OUT" \
	>/dev/null; then
	ok "list --json: full records of the 3 succeeded jobs"
else
	not_ok "list --json" "$OUT"
fi

run_ctl list --state succeeded --limit 2
check "list table: header and 2 rows, next page named" \
	test "$(grep -cE '^ *[0-9]+ +succeeded ' <<<"$OUT")" = 2 -a "$(grep -c 'list --after' <<<"$OUT")" = 1
# The next page is the same command after the last job shown: its --limit too.
NEXT="$(grep -o 'next page: keyforgectl list .*' <<<"$OUT")"
check "the next page keeps --limit 2 and --state ($NEXT)" \
	test "$NEXT" = "next page: keyforgectl list --after ${IDS[1]} --limit 2 --state succeeded"

# Newest first: the 3 jobs in descending ids, 2 then the page below.
run_ctl list --newest-first --limit 2 --json --brief
page1="$(jq -r 'map(.id) | join(" ")' <<<"$OUT")"
run_ctl list --newest-first --after "${page1##* }" --json --brief
page2="$(jq -r 'map(.id) | join(" ")' <<<"$OUT")"
check "list --newest-first: ${IDS[2]} ${IDS[1]}, then below ${IDS[1]}: ${IDS[0]} ($page1; $page2)" \
	test "$page1" = "${IDS[2]} ${IDS[1]}" -a "$page2" = "${IDS[0]}"

# The next-page line only when a next page has jobs — the broker's total
# counts the jobs before --after too — also when the last page is exactly
# full; --json --brief still holds --limit jobs.
rows() { grep -cE '^ *[0-9]+ +succeeded ' <<<"$OUT"; }
hint() { grep -c 'list --after' <<<"$OUT"; }
run_ctl list --after "${IDS[0]}" --limit 5
paging="after ${IDS[0]}, limit 5: $(rows) rows, $(hint) hint"
run_ctl list --after "${IDS[0]}" --limit 2
paging+="; limit 2: $(rows) rows, $(hint) hint"
run_ctl list --newest-first --after "${IDS[2]}" --limit 2
paging+="; newest first after ${IDS[2]}, limit 2: $(rows) rows, $(hint) hint"
run_ctl list --limit 2
paging+="; limit 2 from the start: $(rows) rows, $(hint) hint"
run_ctl list --limit 2 --json --brief
paging+="; --json --brief --limit 2: $(jq length <<<"$OUT") jobs"
check "list names a next page only when it has jobs ($paging)" test "$paging" = \
	"after ${IDS[0]}, limit 5: 2 rows, 0 hint; limit 2: 2 rows, 0 hint; newest first after ${IDS[2]}, limit 2: 2 rows, 0 hint; limit 2 from the start: 2 rows, 1 hint; --json --brief --limit 2: 2 jobs"

run_ctl show "${IDS[1]}"
check "show (text) draws the layout and the statistics" \
	grep -q "SFB" <<<"$OUT"

# Without ids: the jobs not final when it starts, and only those.
run_ctl wait --timeout 5
check "wait without ids and no active job: exit 0, says so ($ERR)" \
	test "$RC" = 0 -a -z "$OUT" -a "$(grep -c 'no job is pending' <<<"$ERR")" = 1
# About 1.5 s each: still running when the wait lists the active jobs.
NOIDS=()
for seed in 4 5; do
	run_ctl submit --corpus "$CORPUS" --steps 3000000 --seed "$seed"
	NOIDS+=("$OUT")
done
run_ctl wait --timeout 60
check "wait without ids waits for the 2 active jobs (${NOIDS[*]}): $(tr '\n' ' ' <<<"$OUT")" \
	test "$RC" = 0 -a "$(awk '$2 == "succeeded" { print $1 }' <<<"$OUT" | sort -n | tr '\n' ' ')" \
	= "${NOIDS[0]} ${NOIDS[1]} "

# same seed, same result: the job is reproducible through the hive
run_ctl submit --corpus "$CORPUS" --steps 20000 --seed 1
again="$OUT"
"$CTL" wait "$again" --timeout 60 >/dev/null
l1="$("$CTL" show "${IDS[0]}" --json | jq -r .result.layout)"
l2="$("$CTL" show "$again" --json | jq -r .result.layout)"
check "the same seed gives the same layout ($l1)" test -n "$l1" -a "$l1" = "$l2"

# ---- kill and retry ------------------------------------------------------------------------

run_ctl submit --corpus "$CORPUS" --steps 2000000000 --seed 7
LONG="$OUT"
state=""
for _ in $(seq 1 100); do
	state="$("$CTL" show "$LONG" --json | jq -r .state)"
	[ "$state" = running ] && break
	sleep 0.1
done
check "a long job runs" test "$state" = running
t0=$(date +%s%N)
run_ctl kill "$LONG"
check "kill of a running job is accepted" test "$RC" = 0
"$CTL" wait "$LONG" --timeout 5 >/dev/null
state="$("$CTL" show "$LONG" --json | jq -r .state)"
ms=$((($(date +%s%N) - t0) / 1000000))
check "the killed job is final as killed ($state after ${ms} ms)" test "$state" = killed
run_ctl show "$LONG"
check "show of the killed job labels its result as the best before the kill" \
	grep -q '^result (best before the kill): score' <<<"$OUT"
run_ctl retry "$LONG"
check "retry of the killed job makes it pending again" test "$RC" = 0 -a "$OUT" = "job $LONG: pending"
state=""
for _ in $(seq 1 100); do
	state="$("$CTL" show "$LONG" --json | jq -r '"\(.state) \(.attempt)"')"
	[ "$state" = "running 2" ] && break
	sleep 0.1
done
check "the retried job runs again with attempt 2" test "$state" = "running 2"
check "the new attempt starts without the killed attempt's result" \
	test "$("$CTL" show "$LONG" --json | jq -c .result)" = null

# wait --timeout bounds the wait also when the broker stops answering in the
# middle of it (frozen: SIGSTOP): a request then takes no more than is left
# of the wait, not the 5 s of the global --timeout. 2 s: exit 3 in under 3.5 s.
BROKER_PID="$(cut -d" " -f1 "$KEYFORGE_STATE_DIR/pids/broker.pid")"
(sleep 1; kill -STOP "$BROKER_PID") &
FREEZER=$!
t0=$(date +%s%N)
run_ctl wait "$LONG" --timeout 2s
ms=$((($(date +%s%N) - t0) / 1000000))
wait "$FREEZER"
kill -CONT "$BROKER_PID"
if [ "$RC" = 3 ] && [ "$ms" -lt 3500 ] && grep -q "timed out after 2s; not final yet: $LONG (running" <<<"$ERR"; then
	ok "wait --timeout 2s with the broker frozen after 1 s: exit 3 in $ms ms"
else
	not_ok "wait --timeout 2s with the broker frozen after 1 s: exit 3 within 3.5 s" \
		"exit $RC after $ms ms" "stderr: $ERR"
fi
"$CTL" kill "$LONG" >/dev/null
expect_rc "retry of a job that is not failed or killed is refused (exit 1)" 1 "only those can be retried" \
	retry "${IDS[0]}"

# A job that fails: wait names the state once, then the error.
run_ctl submit --corpus no-such-corpus --steps 10 --max-attempts 1
run_ctl wait "$OUT" --timeout 30
check "wait prints a failed job as 'ID failed: <error>' ($OUT)" \
	grep -qE "^[0-9]+ failed: corpus 'no-such-corpus' not found" <<<"$OUT"

# Broker strings on the terminal: a corpus name (anyone with the token
# chooses it) with escape sequences — clear the screen, set the title, a
# bell, a C1 CSI (U+009B) — reaches keyforgectl in the job's corpus, in its
# error and in the worker's and the broker's WARN "job failed". Text output
# shows each control as '?' (a tab as a space); --json keeps the string
# exactly, escaped.
NASTY="$(printf 'evil\033[2J\033]0;owned\a\302\233%s\t-end' '1;1H')"
SAFE='evil?[2J?]0;owned??1;1H -end'
# has_controls FILE: a C0 control but newline, DEL or a C1 control in FILE.
has_controls() { LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]' "$1"; }
run_ctl submit --corpus "$NASTY" --steps 10 --max-attempts 1
NJ="$OUT"
"$CTL" wait "$NJ" --timeout 30 >"$TMP/nasty.wait" 2>&1
"$CTL" show "$NJ" >"$TMP/nasty.show" 2>&1
"$CTL" list --state failed --limit 1000 >"$TMP/nasty.list" 2>&1
# The worker's event reaches the broker's log tail over pub/sub.
nasty_logs() {
	"$CTL" logs --tail 1000 --level warn --regex "job failed.* job_id=$NJ( |\$)" \
		>"$TMP/nasty.logs" 2>&1 && [ -s "$TMP/nasty.logs" ]
}
wait_until 5000 nasty_logs
bad=""
for what in wait show list logs; do
	f="$TMP/nasty.$what"
	if has_controls "$f" || ! grep -qF -- "$SAFE" "$f"; then bad+=" $what"; fi
done
if [ -n "$NJ" ] && [ -z "$bad" ]; then
	ok "a corpus name with escape sequences: wait, show, list and logs print it as '$SAFE'"
else
	not_ok "broker strings with escape sequences are printed safely" "job '$NJ', unsafe in:$bad" \
		"$(cat -v "$TMP"/nasty.*)"
fi
check "... and show --json keeps the corpus name exactly" \
	test "$("$CTL" show "$NJ" --json | jq -r .params.corpus)" = "$NASTY"

# A job that outlives its deadline: its worker stops it there, and the job
# fails, not retried, keeping the best layout found.
run_ctl submit --corpus "$CORPUS" --steps 2000000000 --seed 8 --deadline 1s
DL="$OUT"
run_ctl wait "$DL" --timeout 30
check "wait prints the job stopped at its deadline as failed ($OUT)" \
	grep -qE "^$DL failed: expired: deadline exceeded: stopped after [0-9]+ ms" <<<"$OUT"
check "the expired job was not retried" \
	test "$("$CTL" show "$DL" --json | jq -r .attempt)" = 1
run_ctl show "$DL"
check "show of the expired job labels its result as the best before it stopped" \
	grep -q '^result (best before it stopped): score' <<<"$OUT"

# ---- the database goes away --------------------------------------------------------------------

# Submissions are refused with exit 4 while PostgreSQL is down; a wait
# started then is waited out, not failed: the broker answered, only its
# database is away, and it reconnects by itself.
run_ctl submit --corpus "$CORPUS" --steps 3000000 --seed 9
OUTAGE_JOB="$OUT"
"$SRC/scripts/pgtmp" pause "$PGDIR" immediate >/dev/null 2>&1
expect_rc "submit while the database is down: exit 4" 4 "database unavailable" \
	submit --corpus "$CORPUS" --steps 10
"$CTL" wait "$OUTAGE_JOB" --timeout 60 >"$TMP/wait.out" 2>"$TMP/wait.err" &
WAITER=$!
sleep 3
"$SRC/scripts/pgtmp" resume "$PGDIR" >/dev/null 2>&1
wait "$WAITER"
rc=$?
if [ $rc = 0 ] && grep -q "^$OUTAGE_JOB succeeded" "$TMP/wait.out" &&
	grep -q "still waiting" "$TMP/wait.err"; then
	ok "wait started during a database outage waits it out (job $OUTAGE_JOB succeeded)"
else
	not_ok "wait during a database outage" "exit $rc" "stdout: $(cat "$TMP/wait.out")" \
		"stderr: $(cat "$TMP/wait.err")"
fi

# This shell, outside the CPU group, resumed PostgreSQL: pgtmp noted the
# group `up` first started it in and joined that group before starting it.
if [ -n "$CGROUP" ]; then
	POSTMASTER="$(head -n 1 "$PGDIR/data/postmaster.pid" 2>/dev/null)"
	g="$(cpu_cgroup_of "$POSTMASTER" 2>/dev/null)"
	case "$CGROUP" in
		*/"${g#/}") ok "PostgreSQL resumed from outside runs in the CPU group again ($POSTMASTER:$g)" ;;
		*) not_ok "PostgreSQL resumed from outside runs in the CPU group again" \
			"postmaster $POSTMASTER in '$g', the group is $CGROUP" ;;
	esac
fi

# ---- idempotent submit: --key ---------------------------------------------------------------

# A key names at most one job, whoever sends it: the same command again
# prints the first id and queues nothing; other flags under the key are
# refused.
count_jobs() { "$CTL" list --limit 1000 --json --brief | jq length; }
before="$(count_jobs)"
run_ctl submit --corpus "$CORPUS" --steps 20000 --key "nightly/a"
KA="$OUT"
run_ctl submit --corpus "$CORPUS" --steps 20000 --key "nightly/a"
check "submit --key again: the first job's id ($KA), exit 0, said on stderr" \
	test "$RC" = 0 -a "$OUT" = "$KA" -a -n "$KA" -a "$(grep -c "already names job $KA" <<<"$ERR")" = 1
expect_rc "submit --key with other flags: exit 1, nothing queued" 1 \
	"the key already names job $KA, submitted with other parameters" \
	submit --corpus "$CORPUS" --steps 30000 --key "nightly/a"
run_ctl submit --corpus "$CORPUS" --steps 20000 --key "nightly/b"
KB="$OUT"
check "another key is another job ($KB)" test "$RC" = 0 -a -n "$KB" -a "$KB" != "$KA"
check "the keyed submits queued 2 jobs" test "$(count_jobs)" = $((before + 2))
check "show names a keyed job's key (--json: null without one)" \
	test "$("$CTL" show "$KA" --json | jq -r .key)" = "nightly/a" \
	-a "$("$CTL" show "${IDS[0]}" --json | jq -r .key)" = null \
	-a "$("$CTL" show "$KA" | grep -c '^  key        nightly/a$')" = 1
check "a keyed job's seed comes from its key, not the clock" \
	test "$("$CTL" show "$KA" --json | jq .params.seed)" != "$("$CTL" show "$KB" --json | jq .params.seed)"
expect_rc "a key with a control character: exit 2" 2 "--key" \
	submit --corpus "$CORPUS" --key "$(printf 'a\tb')"

# The case the key is for: a submit that times out after the broker took
# it — here its INSERT waits for a frozen PostgreSQL and commits once the
# server wakes — leaves it unknown to the caller whether the job was
# queued. Sent again with the key, it gives the one job the first request
# queued.
before="$(count_jobs)"
"$SRC/scripts/pgtmp" freeze "$PGDIR"
expect_rc "a keyed submit that the broker cannot answer in time: exit 4, says to send it again" 4 \
	"submit again with the same --key" \
	--timeout 1s submit --corpus "$CORPUS" --steps 20000 --key "frozen"
"$SRC/scripts/pgtmp" thaw "$PGDIR"
run_ctl submit --corpus "$CORPUS" --steps 20000 --key "frozen"
KF="$OUT"
check "sent again, it answers the job the timed-out submit queued ($KF), and 1 job in all" \
	test "$RC" = 0 -a -n "$KF" -a "$(count_jobs)" = $((before + 1)) \
	-a "$(grep -c "already names job $KF" <<<"$ERR")" = 1
"$CTL" wait "$KA" "$KB" "$KF" --timeout 60 >/dev/null

# ---- errors --------------------------------------------------------------------------------

expect_rc "an unknown flag: exit 2" 2 "unknown option '--bogus'" submit --corpus x --bogus
expect_rc "a bad number: exit 2" 2 "--steps 'many' is not" submit --corpus "$CORPUS" --steps many
expect_rc "a bad start layout: exit 2" 2 "--start" submit --corpus "$CORPUS" --start qwertz
expect_rc "a bad regex: exit 2" 2 "is not a valid regular expression" logs --regex '(unclosed'
# Patterns glibc would spend seconds or minutes on are refused up front
# (common/regex_guard.h): a back-reference, and stacked repetitions.
expect_rc "a back-reference: exit 2" 2 "back-references" logs --regex '(.*)(.*)\2\1z'
expect_rc "a repetition of a repetition: exit 2" 2 "repetition of a repetition" \
	logs --regex 'a++++++++++++++++++++++++++'
expect_rc "a job that does not exist: exit 1" 1 "no " show 999999
expect_rc "submit without the token: exit 1, not authorised" 1 "not authorised" \
	--token-file "$TMP/none" submit --corpus "$CORPUS"
expect_rc "an unreachable broker: exit 4 and a clear line" 4 "cannot reach the broker at tcp://127.0.0.1:1" \
	--rpc tcp://127.0.0.1:1 --timeout 300ms workers
# A submit that never left this process queued nothing, and says so
# (the frozen-database case above says the opposite: it may have been).
expect_rc "a submit to an unreachable broker: exit 4, nothing was queued" 4 \
	"nothing was sent, so no job was queued" \
	--rpc tcp://127.0.0.1:1 --timeout 300ms submit --corpus "$CORPUS"
check "... and it does not say the job may have been queued" \
	test "$(grep -c 'may have been queued' <<<"$ERR")" = 0

run_ctl logs --tail 200 --regex 'job (submitted|completed)'
# The broker's "job submitted" is DEBUG, so under the hive's `info` only the
# workers' INFO "job completed" lines match.
check "logs shows the workers' job events, filtered by --regex" \
	test "$RC" = 0 -a "$(grep -c 'job completed' <<<"$OUT")" -ge 3 \
	-a "$(grep -c 'job submitted' <<<"$OUT")" = 0

# logs --follow: lines as they happen, through the same filters; Ctrl-C
# (SIGINT) ends it with exit 0.
"$CTL" logs --follow --tail 0 --regex 'job completed' >"$TMP/follow.out" 2>"$TMP/follow.err" &
FOLLOWER=$!
PIDS+=" $FOLLOWER"
# A follower shows what is published once it has connected, which it does
# not announce: a second and a third job cover a follower that a loaded
# machine started late.
sleep 1
for seed in 11 12 13; do
	run_ctl submit --corpus "$CORPUS" --steps 20000 --seed $seed
	FJ="$OUT"
	"$CTL" wait "$FJ" --timeout 60 >/dev/null
	for _ in $(seq 1 50); do
		grep -qE "job_id=${FJ}[^0-9].*job completed" "$TMP/follow.out" && break
		sleep 0.1
	done
	grep -qE "job_id=${FJ}[^0-9].*job completed" "$TMP/follow.out" && break
done
kill -INT "$FOLLOWER"
for _ in $(seq 1 50); do kill -0 "$FOLLOWER" 2>/dev/null || break; sleep 0.1; done
wait "$FOLLOWER"
FRC=$?
if grep -qE "job_id=${FJ}[^0-9].*job completed" "$TMP/follow.out" && [ "$FRC" = 0 ] &&
	[ "$(grep -vc 'job completed' "$TMP/follow.out")" = 0 ]; then
	ok "logs --follow shows job $FJ's 'job completed' as it happens, only matching lines; SIGINT: exit 0"
else
	not_ok "logs --follow" "exit $FRC" "$(cat "$TMP/follow.out")" "$(cat "$TMP/follow.err")"
fi

# logs --follow into a pipe whose reader exits, with SIGPIPE ignored (as
# `trap '' PIPE` or a supervisor leaves it): the next event it writes fails
# with EPIPE, and it ends with exit 1 instead of following for good. A FIFO
# rather than a `|` so that $! is keyforgectl's own pid (exec), which
# cleanup kills if it does not end.
mkfifo "$TMP/follow.fifo"
(trap '' PIPE; exec "$CTL" logs --follow --tail 1 >"$TMP/follow.fifo" 2>"$TMP/pipe.err") &
PIPER=$!
PIDS+=" $PIPER"
head -n 1 "$TMP/follow.fifo" >"$TMP/pipe.out" &
HEADER=$!
PIDS+=" $HEADER"
head_gone() { ! kill -0 "$HEADER" 2>/dev/null; }
wait_until 10000 head_gone
# Events after head exited: each job logs at INFO on its worker.
piper_gone() { ! kill -0 "$PIPER" 2>/dev/null; }
for seed in 14 15 16; do
	run_ctl submit --corpus "$CORPUS" --steps 20000 --seed $seed
	"$CTL" wait "$OUT" --timeout 60 >/dev/null
	wait_until 3000 piper_gone && break
done
if piper_gone; then
	wait "$PIPER"
	PRC=$?
else
	PRC=running
	kill -KILL "$PIPER" 2>/dev/null # not down's leftover: that one is this test's failure
	wait "$PIPER" 2>/dev/null
fi
if [ "$PRC" = 1 ] && [ -s "$TMP/pipe.out" ] &&
	grep -q "logs: cannot write to stdout: Broken pipe" "$TMP/pipe.err"; then
	ok "logs --follow with SIGPIPE ignored ends once its reader is gone: exit 1, says why"
else
	not_ok "logs --follow with SIGPIPE ignored ends once its reader is gone" "exit $PRC" \
		"head read: $(cat "$TMP/pipe.out")" "stderr: $(cat "$TMP/pipe.err")"
fi

# ---- status and down -------------------------------------------------------------------------

"$HIVE" status "$BUILD" >"$TMP/status.out" 2>&1
check "status: everything runs (exit 0)" test $? = 0
check "status: the gateway is linked to the broker's monitor socket" \
	grep -q "monitor socket $KEYFORGE_MONITOR: connected" "$TMP/status.out"
if [ -n "$CGROUP" ]; then
	check "status names the CPU group" grep -q "cpu group   $CGROUP (" "$TMP/status.out"
fi

# ---- drain (after status: the hive has one worker fewer then) -----------------------------

expect_rc "drain without a worker: usage (exit 2)" 2 "which worker?" drain
expect_rc "drain of an unknown worker: exit 1, says so" 1 "no worker 'nobody'" drain nobody
W2PID="$("$CTL" workers --json | jq -r '.workers[] | select(.id == "hive-w2") | .pid')"
run_ctl drain hive-w2 --json
check "drain hive-w2 --json: exit 0, alive ($OUT)" \
	test "$RC" = 0 -a "$(jq -r '.worker + " " + .liveness' <<<"$OUT")" = "hive-w2 alive"
for _ in $(seq 1 100); do kill -0 "$W2PID" 2>/dev/null || break; sleep 0.1; done
check "the drained worker (pid $W2PID) exits within 10 s" bash -c "! kill -0 $W2PID 2>/dev/null"
run_ctl submit --corpus "$CORPUS" --steps 20000 --seed 11
DJ="$OUT"
"$CTL" wait "$DJ" --timeout 60 >/dev/null
check "a job after the drain runs on the other worker" \
	test "$("$CTL" show "$DJ" --json | jq -r '.state + " " + .worker')" = "succeeded hive-w1"

"$HIVE" down "$BUILD" >"$TMP/down.out" 2>&1
rc=$?
left=""
for pid in $PIDS; do kill -0 "$pid" 2>/dev/null && left+=" $pid"; done
if [ $rc = 0 ] && [ -z "$left" ] && [ ! -e "$KEYFORGE_STATE_DIR" ] && [ ! -e "$PGDIR" ] &&
	{ [ -z "$CGROUP" ] || [ ! -e "$CGROUP" ]; }; then
	ok "down stops every process and removes the state, the database and the CPU group"
else
	not_ok "down" "exit $rc, processes left:$left" "$(cat "$TMP/down.out")" \
		"$(ls -d "$KEYFORGE_STATE_DIR" "$PGDIR" "$CGROUP" 2>/dev/null)"
fi

echo "1..$N"
[ "$FAILED" = 0 ]
