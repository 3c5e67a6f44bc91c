#!/usr/bin/env bash
# test_admin.sh — keyforge-admin end to end, through a real terminal (TAP).
#
# The command line first (help, version, bad flags, no terminal). Then
# scripts/hive brings up a real hive (pgtmp PostgreSQL, keyforge-broker,
# keyforge-gateway, two keyforge-workers) in a temporary state folder on
# free loopback ports, and keyforge-admin runs in a detached 160x40 tmux
# session on a private tmux server (-L): keys go in with send-keys, the
# screen comes back with capture-pane, polled against a deadline. It checks
# the cluster map and a drain from it (cancelled, then done; j and d read
# together ask nothing), a kill, a
# retry and a cancelled prompt from the job queue (with keyforgectl as the
# judge of the job's and the worker's state), the selection staying on its
# job as a new one comes above it in a newest-first tab, the log stream and its
# regex filter, the help box, a resize to 80x24, the header once the broker
# is gone, and `q` (exit status 0); then a second admin against a hostile
# publisher (nasty_pub.c) on its events address, one against nasty_pub's
# two workers whose rows keep changing places (d asks about the one shown
# selected), a third on ipc://
# sockets without a token (a broker of its own), and a fourth through an SSH
# tunnel (a private sshd on loopback, `ssh -N -L`, a broker of its own). The
# behaviour checked is docs/operations.md "keyforge-admin".
#
# Environment (set by meson): KF_BUILD_ROOT, KF_SOURCE_ROOT; KF_ADMIN, e.g. a
# sanitizer build of keyforge-admin; KF_NASTY_PUB, the hostile publisher.
# Exit 77 (skip) when a program is not built or tmux is missing; the SSH
# part is skipped (one TAP line) without openssh-server or root. About 30 s.
set -uo pipefail

BUILD="${KF_BUILD_ROOT:?KF_BUILD_ROOT is not set}"
SRC="${KF_SOURCE_ROOT:?KF_SOURCE_ROOT is not set}"
ADMIN="${KF_ADMIN:-$BUILD/admin/keyforge-admin}"
CTL="$BUILD/admin/keyforgectl"
HIVE="$SRC/scripts/hive"
LAYOUT_TOOL="$BUILD/layout/keyforge-layout"

for bin in "$ADMIN" "$CTL" "$BUILD/broker/keyforge-broker" "$BUILD/gateway/keyforge-gateway" \
	"$BUILD/worker/keyforge-worker" "$LAYOUT_TOOL"; do
	if [ ! -x "$bin" ]; then
		echo "1..0 # SKIP $(basename "$bin") is not built"
		exit 77
	fi
done
command -v tmux >/dev/null || { echo "1..0 # SKIP tmux is not installed"; exit 77; }
command -v jq >/dev/null || { echo "1..0 # SKIP jq is not installed"; exit 77; }

TMP="$(mktemp -d /tmp/kf-tui-test-XXXXXX)"
export KEYFORGE_STATE_DIR="$TMP/hive"
unset KEYFORGE_RPC KEYFORGE_EVENTS KEYFORGE_INGEST KEYFORGE_HTTP KEYFORGE_TOKEN_FILE KEYFORGE_DB

# The admin in a 160x40 pane of a private tmux server: tests/lib/admin_tmux.sh.
ADIR="$TMP"
TSOCK="kf-tui-$$-$RANDOM"
SESSION="admin"
# shellcheck source=SCRIPTDIR/../lib/admin_tmux.sh
. "$SRC/tests/lib/admin_tmux.sh"

# ---- TAP, corpus, ports, hive up: tests/lib/hive_test.sh ------------------------------

# shellcheck source=SCRIPTDIR/../lib/hive_test.sh
. "$SRC/tests/lib/hive_test.sh"

PIDS=""
cleanup() {
	local pid
	admin_tmux_stop
	"$HIVE" down "$BUILD" >/dev/null 2>&1
	# (wait: bash reports each job it reaps as "Killed" on stderr, not here)
	for pid in $PIDS; do { kill -KILL "$pid" && wait "$pid"; } 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---- the command line, without a hive --------------------------------------------------

# Runs keyforge-admin with no terminal (and a time limit); sets RC, OUT, ERR.
run_admin() {
	OUT="$(timeout 10 "$ADMIN" "$@" </dev/null 2>"$TMP/err")"
	RC=$?
	ERR="$(cat "$TMP/err")"
}

# expect_rc DESC WANT_RC GREP_ERR ARGS... : exit status and a stderr phrase.
expect_rc() {
	local desc="$1" want="$2" phrase="$3"; shift 3
	run_admin "$@"
	if [ "$RC" = "$want" ] && grep -qF -- "$phrase" <<<"$ERR"; then
		ok "$desc"
	else
		not_ok "$desc" "keyforge-admin $*" "exit $RC (want $want), stderr: $ERR"
	fi
}

run_admin --help
if [ "$RC" = 0 ] && grep -qF -- "--rpc" <<<"$OUT"; then
	ok "--help: usage on stdout naming --rpc, exit 0"
else
	not_ok "--help" "exit $RC, stdout: $OUT" "stderr: $ERR"
fi
run_admin --version
# One line, "keyforge-admin X.Y.Z" first (keyforgectl adds " (protocol N.M)").
if [ "$RC" = 0 ] && [[ "$OUT" =~ ^keyforge-admin\ [0-9]+\.[0-9]+\.[0-9]+(\ .*)?$ ]]; then
	ok "--version: '$OUT', exit 0"
else
	not_ok "--version" "exit $RC, stdout: $OUT" "stderr: $ERR"
fi
expect_rc "--regex '(': exit 2" 2 "is not a valid regular expression" --regex '('
expect_rc "--regex with a back-reference: exit 2" 2 "back-references" --regex '(.*)\1'
expect_rc "--view bogus: exit 2" 2 "keyforge-admin: " --view bogus
expect_rc "--level bogus: exit 2" 2 "keyforge-admin: " --level bogus
expect_rc "without a terminal: exit 1, 'needs a terminal'" 1 "needs a terminal"

# ---- setup and up --------------------------------------------------------------------------

hive_corpus
hive_ports
hive_up

# ---- the admin in tmux -----------------------------------------------------------------

# The pane's script, run-admin.sh (the hive's addresses, the admin, its exit
# status into admin.exit), and the server's configuration.
admin_tmux_setup

SCREEN=""      # the last capture of the pane
LAST_SCREEN="" # the last capture while the admin ran
# capture: the pane into SCREEN; false (SCREEN empty) once the admin is gone.
capture() {
	if SCREEN="$(tm capture-pane -p -t "$SESSION" 2>/dev/null)"; then
		LAST_SCREEN="$SCREEN"
	else
		SCREEN=""
		return 1
	fi
}

# poll SECONDS COMMAND... : captures the pane into SCREEN every 0.2 s until
# COMMAND (which reads SCREEN) succeeds, or SECONDS have passed, or the admin
# has exited (false: no check passes on a terminal the admin has left).
poll() {
	local secs="$1"; shift
	local end=$(($(now_ms) + secs * 1000))
	while :; do
		capture && "$@" && return 0
		admin_running || return 1
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.2
	done
}
has() { grep -qF -- "$1" <<<"$SCREEN"; }
has_re() { grep -qE -- "$1" <<<"$SCREEN"; }
has_all() {
	local t
	for t in "$@"; do has "$t" || return 1; done
}
lacks() { ! has "$1"; }
line1_has() { head -n 1 <<<"$SCREEN" | grep -qF -- "$1"; }

# wait_screen TEXT [SECONDS] : the pane shows TEXT within SECONDS (default 5).
wait_screen() { poll "${2:-5}" has "$1"; }

# The screen and the admin's state, as TAP diagnostics.
screen_diag() {
	local shown="$SCREEN"
	[ -n "$shown" ] || shown="$LAST_SCREEN"
	if admin_running; then
		echo "#   the screen ($(tm display -p -t "$SESSION" '#{pane_width}x#{pane_height}' 2>/dev/null)):"
	else
		echo "#   keyforge-admin is no longer running ($(cat "$TMP/admin.exit" 2>/dev/null ||
			echo 'no exit status')); stderr:"
		sed 's/^/#     /' "$TMP/admin.err" 2>/dev/null | tail -n 20
		echo "#   the last screen seen:"
	fi
	# shellcheck disable=SC2001 # a prefix on every line
	sed 's/^/#   |/' <<<"$shown"
}

# screen_check DESC SECONDS COMMAND... : ok when poll succeeds, else not ok
# with the screen.
screen_check() {
	local desc="$1" secs="$2"; shift 2
	if poll "$secs" "$@"; then
		ok "$desc"
	else
		not_ok "$desc" "not seen within ${secs} s: $*"
		screen_diag
	fi
}

# check_screen DESC TEXT [SECONDS] : the pane shows TEXT within SECONDS (5).
check_screen() {
	local desc="$1" text="$2" secs="${3:-5}"
	if wait_screen "$text" "$secs"; then
		ok "$desc"
	else
		not_ok "$desc" "not seen within ${secs} s: '$text'"
		screen_diag
	fi
}

# send TEXT : types TEXT literally. key NAME... : named keys (Enter, Escape, Right).
# (Silent once the admin has gone: the checks that follow say so.)
send() { tm send-keys -t "$SESSION" -l -- "$1" 2>/dev/null; }
key() { tm send-keys -t "$SESSION" "$@" 2>/dev/null; }

# keyforgectl's view of a job: "STATE ATTEMPT".
job_state() { "$CTL" show "$1" --json 2>/dev/null | jq -r '"\(.state) \(.attempt)"'; }
# state_is ID REGEX : the job's "STATE ATTEMPT" matches REGEX; sets STATE.
state_is() {
	STATE="$(job_state "$1")"
	[[ "$STATE" =~ $2 ]]
}
# wait_state ID SECONDS REGEX : state_is within SECONDS.
wait_state() { wait_until $(($2 * 1000)) state_is "$1" "$3"; }

tm new-session -d -s "$SESSION" -x 160 -y 40 sh "$TMP/run-admin.sh"
screen_check "the admin starts in a 160x40 terminal on the Cluster Map" 10 \
	has_all "KeyForge Hive" "Cluster Map"

# ---- 1 Cluster Map ---------------------------------------------------------------------------

cluster_ok() {
	has "2 workers" && has_re "hive-w1 .*alive" && has_re "hive-w2 .*alive" && line1_has connected
}
screen_check "Cluster Map: '2 workers', hive-w1 and hive-w2 alive, header 'connected'" 10 cluster_ok
# The highlighted (reverse video) text of the pane: its selected rows.
highlighted() {
	tm capture-pane -e -p -t "$SESSION" 2>/dev/null |
		grep -oP '\x1b\[(?:[0-9]*;)*7(?:;[0-9]*)*m(?:\x1b\[[0-9;]*m)*\K[^\x1b]*'
}
# worker_selected W: the highlighted Cluster Map row is worker W's.
worker_selected() { highlighted | grep -qE "^$1( |$)"; }

# The workers in the order shown; j selects the second, d asks to drain it.
ROWS="$(grep -oE '^hive-w[0-9]+' <<<"$SCREEN" | tr '\n' ' ')"
FIRST="$(awk '{ print $1 }' <<<"$ROWS")"
SECOND="$(awk '{ print $2 }' <<<"$ROWS")"
send j
screen_check "j: worker $SECOND selected" 5 worker_selected "$SECOND"
send d
check_screen "d: 'Drain worker $SECOND ...? [y/N]' (rows: $ROWS)" "Drain worker $SECOND (no new job"
send n
check_screen "n: 'cancelled'" "cancelled"

# Keys read together: d after a key that moved the selection asks about no
# worker the screen has not shown selected (as x in the Job Queue).
send g
screen_check "g: worker $FIRST selected" 5 worker_selected "$FIRST"
send jd
typed_ahead_ok() {
	has "the selection moved to worker $SECOND before it was shown; d again" &&
		lacks "Drain worker" && worker_selected "$SECOND"
}
screen_check "j and d read together: 'the selection moved to worker $SECOND before it was shown', no prompt" \
	5 typed_ahead_ok
key Escape # (a prompt, had one opened, is answered no)

# ---- 2 Job Queue: kill, retry, a cancelled prompt -------------------------------------------

LONG="$("$CTL" submit --corpus "$CORPUS" --steps 2000000000 --seed 7 --key admin-long)"
wait_state "$LONG" 10 '^running '
check "a long job $LONG runs (keyforgectl: $STATE)" test "${STATE%% *}" = running

# A table row of the job in a given state: "ID  STATE  ...".
row() { has_re "(^|[^0-9])$1 +$2( |$)"; }
# tab_is NAME : the highlighted (reverse video) tab is "NAME N".
tab_is() {
	tm capture-pane -e -p -t "$SESSION" 2>/dev/null |
		grep -oP '\x1b\[(?:[0-9]*;)*7(?:;[0-9]*)*m(?:\x1b\[[0-9;]*m)*\K[^\x1b]*' |
		grep -qE "^ *$1 [0-9]+ *$"
}
# on_tab NAME ID STATE : that tab is the current one and lists the job so.
on_tab() { tab_is "$1" && row "$2" "$3"; }
queue_opens() {
	has_all "Job Queue" "Pending 0" "Running 1" "Killed 0" "All 1" && tab_is Pending
}

send 2
screen_check "2: the Job Queue opens on the Pending tab; counts Pending 0, Running 1" 5 queue_opens
send l
screen_check "l: the Running tab lists job $LONG as running" 5 on_tab Running "$LONG" running
key Enter
screen_check "Enter: job $LONG's details — state, attempt, its submit key" 5 \
	has_all "Job details" "job $LONG  running  attempt 1 of" "key admin-long"
key Escape
screen_check "Esc closes the details" 5 lacks "Job details"
send x
check_screen "x: 'Kill job $LONG? [y/N]'" "Kill job $LONG? [y/N]"
send y
check_screen "y: message 'job $LONG: kill accepted, cancel sent to its worker'" \
	"job $LONG: kill accepted, cancel sent to its worker"
wait_state "$LONG" 5 '^killed '
check "keyforgectl: job $LONG is killed ($STATE)" test "${STATE%% *}" = killed

# Running -> Retrying -> Succeeded -> Failed -> Killed
send l; send l; send l; send l
screen_check "l x4: the Killed tab lists job $LONG as killed" 5 on_tab Killed "$LONG" killed
send r
check_screen "r: 'Retry job $LONG? [y/N]'" "Retry job $LONG? [y/N]"
send y
check_screen "y: message 'job $LONG: retry accepted'" "job $LONG: retry accepted"
if wait_state "$LONG" 5 '^(pending [0-9]+|running 2)$'; then
	ok "keyforgectl: job $LONG is no longer killed ($STATE)"
else
	not_ok "keyforgectl: job $LONG is no longer killed" "state and attempt: $STATE"
fi

# A cancelled prompt on the running job: nothing is sent.
wait_state "$LONG" 10 '^running 2$'
# Killed -> Failed -> Succeeded -> Retrying -> Running
send h; send h; send h; send h
screen_check "h x4: the Running tab lists job $LONG as running (attempt 2)" 5 \
	on_tab Running "$LONG" "running +2(/[0-9]+)?"
send x
check_screen "x: 'Kill job $LONG? [y/N]' again" "Kill job $LONG? [y/N]"
send n
check_screen "n: message 'cancelled'" "cancelled"
sleep 1 # time for a kill, were one sent, to land
STATE="$(job_state "$LONG")"
check "keyforgectl: job $LONG still runs after the cancelled prompt ($STATE)" test "$STATE" = "running 2"
"$CTL" kill "$LONG" >/dev/null
"$CTL" wait "$LONG" --timeout 10 >/dev/null

# ---- 3 Log Stream: the filter ---------------------------------------------------------------

SHORT="$("$CTL" submit --corpus "$CORPUS" --steps 1000 --seed 3)"
"$CTL" wait "$SHORT" --timeout 30 >/dev/null
check "a short job $SHORT succeeds (keyforgectl: $(job_state "$SHORT"))" \
	test "$(job_state "$SHORT")" = "succeeded 1"

completed_shown() {
	has "Log Stream" && has "level>=INFO" && has_re "job_id=$SHORT([^0-9].*)? job completed"
}
send 3
screen_check "3: the Log Stream at level>=INFO shows job $SHORT's 'job completed'" 5 completed_shown

# The log lines on screen: between the title line and the last line, those
# that start with a timestamp.
log_lines() {
	sed -n '/Log Stream/,$p' <<<"$SCREEN" | sed '1d;$d' |
		grep -E '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}'
}
# The log lines are all of job $SHORT, and there is one at least.
only_short() {
	local lines
	lines="$(log_lines)" || return 1
	! grep -vqE "job_id=$SHORT([^0-9]|$)" <<<"$lines"
}
# Some log lines are not of job $SHORT (or the filter below proves nothing).
others_shown() {
	local lines
	lines="$(log_lines)" && grep -vqE "job_id=$SHORT([^0-9]|$)" <<<"$lines"
}
screen_check "before a filter, log lines that are not job $SHORT's are shown too" 2 others_shown

send /
prompt_open() { tail -n 1 <<<"$SCREEN" | grep -q "^/"; }
screen_check "/: the prompt '/' on the last line" 5 prompt_open
send "job_id=$SHORT"
key Enter
check_screen "the filter 'job_id=$SHORT' is named in the title" "filter: job_id=$SHORT"
screen_check "every log line shown is of job $SHORT" 5 only_short

send /
send "("
key Enter
screen_check "an invalid regex: 'bad regex', the old filter stays" 5 \
	has_all "bad regex" "filter: job_id=$SHORT"

prompt_closed() { ! prompt_open && has "filter: job_id=$SHORT" && lacks "filter: zzz"; }
send /
poll 5 prompt_open
send zzz
key Escape
screen_check "Esc cancels the '/' prompt; the filter stays" 5 prompt_closed

# ---- help, resize ------------------------------------------------------------------------

send "?"
check_screen "?: the help box ('Keys'); the admin still runs after the bad regex" "Keys"
send z
screen_check "any key closes the help box" 5 lacks "Keys"

# Redrawn for the new size: tmux, shrinking the pane, keeps its bottom lines,
# so line 1 shows the header again only once the admin has redrawn.
resized_ok() {
	[ "$(wc -l <<<"$SCREEN")" -le 24 ] && line1_has "KeyForge Hive" &&
		sed -n 2,3p <<<"$SCREEN" | grep -qF "Log Stream"
}
tm resize-window -t "$SESSION" -x 80 -y 24 2>/dev/null
screen_check "resized to 80x24: 'KeyForge Hive' on line 1, the Log Stream below it" 5 resized_ok

# Sideways: > shifts the lines 20 columns left (a log line no longer starts
# with its date), 0 brings them back.
first_log_line() { sed -n 3p <<<"$SCREEN"; }
shifted_ok() { line1_has "shifted +20" && ! first_log_line | grep -qE '^[0-9]{4}-'; }
unshifted_ok() { ! line1_has "shifted" && first_log_line | grep -qE '^[0-9]{4}-'; }
send ">"
screen_check ">: the view shifted 20 columns ('shifted +20'; lines start past their date)" 5 \
	shifted_ok
send 0
screen_check "0: back to the left edge (lines start with their date)" 5 unshifted_ok

# Wrapped: a line longer than 80 columns goes on over the next row, which
# then starts with no date; unwrapped, every row starts with one.
log_rows() { sed -n '3,$p' <<<"$SCREEN" | head -n -1 | grep -v '^ *$'; }
wrapped_ok() { has "WRAP" && log_rows | grep -qvE '^[0-9]{4}-'; }
unwrapped_ok() { lacks "WRAP" && ! log_rows | grep -qvE '^[0-9]{4}-'; }
send w
screen_check "w: long lines wrap ('WRAP'; a row goes on from the one above)" 5 wrapped_ok
send w
screen_check "w again: one row per line" 5 unwrapped_ok

# The All tab lists the newest first: job $SHORT above job $LONG.
row_line() { grep -nE "^ *$1 +[a-z]+ " <<<"$SCREEN" | head -n 1 | cut -d: -f1; }
newest_first_ok() {
	local s l
	has "All: 2 jobs, newest first" || return 1
	s="$(row_line "$SHORT")" l="$(row_line "$LONG")"
	[ -n "$s" ] && [ -n "$l" ] && [ "$s" -lt "$l" ]
}
key 2
send l; send l; send l; send l; send l  # Running → Retrying → … → All
screen_check "All tab: newest first (job $SHORT above job $LONG)" 10 newest_first_ok

# A tab longer than the screen: G reads its far end from the other end
# (admin/tui_window.c) and shows it in the tab's order — the oldest job,
# $LONG, on the last row, $SHORT above it, the first of 40 new jobs above
# that; g goes back to the newest.
BATCH=()
for n in $(seq 1 40); do
	BATCH+=("$("$CTL" submit --corpus "$CORPUS" --steps 0 --seed "$((100 + n))")")
done
table_rows() { sed -n '4,$p' <<<"$SCREEN" | grep -E '^ *[0-9]+ +[a-z]+ '; }
far_end_ok() {
	local last3
	has "All: 42 jobs, newest first" || return 1
	last3="$(table_rows | tail -n 3 | awk '{print $1}' | tr '\n' ' ')"
	[ "$last3" = "${BATCH[0]} $SHORT $LONG " ]
}
newest_on_top_ok() {
	[ "$(table_rows | head -n 1 | awk '{print $1}')" = "${BATCH[39]}" ]
}
# G goes to the end the admin knows: let the list catch up with the 40 first.
check_screen "the All tab counts the 40 new jobs ('All: 42 jobs')" "All: 42 jobs" 10
send G
screen_check "G in a tab of 42 jobs on 80x24: the oldest ones last, in order (${BATCH[0]}, $SHORT, $LONG)" 10 far_end_ok
send g
screen_check "g: the newest job (${BATCH[39]}) on the first row" 10 newest_on_top_ok

# The selection is a job, not a row (admin/tui_window.c): on the second
# newest, a job submitted meanwhile comes above it in this newest-first tab,
# and the cursor stays on its job, which x asks about — on a row index it
# would be on ${BATCH[39]}, which moved under it.
# selected_is ID: the highlighted (reverse video) table row is job ID's.
selected_is() {
	tm capture-pane -e -p -t "$SESSION" 2>/dev/null |
		grep -oP '\x1b\[(?:[0-9]*;)*7(?:;[0-9]*)*m(?:\x1b\[[0-9;]*m)*\K[^\x1b]*' |
		grep -qE "^ *$1 +[a-z]+ "
}
send j
screen_check "j: job ${BATCH[38]} selected" 5 selected_is "${BATCH[38]}"
send x
check_screen "x: 'Kill job ${BATCH[38]}? [y/N]'" "Kill job ${BATCH[38]}? [y/N]"
send n
NEWER="$("$CTL" submit --corpus "$CORPUS" --steps 0 --seed 200)"
newer_on_top_ok() {
	has "All: 43 jobs" && [ "$(table_rows | head -n 1 | awk '{print $1}')" = "$NEWER" ] &&
		selected_is "${BATCH[38]}"
}
screen_check "job $NEWER, submitted now, on the first row; job ${BATCH[38]} still selected" 10 \
	newer_on_top_ok
send x
check_screen "x: still 'Kill job ${BATCH[38]}? [y/N]', the job the cursor was on" \
	"Kill job ${BATCH[38]}? [y/N]"
send n

# A smaller terminal keeps the selection in the window at once, so x asks
# about it (not 'moved before it was shown' until the next list, up to 1 s).
send G
screen_check "G: job $LONG, the oldest, selected on the last row" 10 selected_is "$LONG"
tm resize-window -t "$SESSION" -x 80 -y 12 2>/dev/null
send x
shrunk_ok() { selected_is "$LONG" && has "Kill job $LONG? [y/N]"; }
screen_check "resized to 80x12, x at once: job $LONG still shown selected, 'Kill job $LONG? [y/N]'" \
	5 shrunk_ok
send n
tm resize-window -t "$SESSION" -x 80 -y 24 2>/dev/null
key 3

# ---- 1 Cluster Map: drain --------------------------------------------------------------------

# g selects the first worker; d, y drain it: it says so, and the worker's
# last heartbeat says draining (it finishes its jobs and exits).
key 1
send g
screen_check "g: worker $FIRST selected" 5 worker_selected "$FIRST"
send d
check_screen "g, d: 'Drain worker $FIRST ...? [y/N]'" "Drain worker $FIRST (no new job"
send y
check_screen "y: 'worker $FIRST: drain sent'" "worker $FIRST: drain sent" 10
drained() {
	[ "$("$CTL" workers --json 2>/dev/null |
		jq -r --arg w "$FIRST" '.workers[] | select(.id == $w) | .state')" = draining ]
}
if poll 10 drained; then
	ok "keyforgectl workers: $FIRST's last heartbeat says draining"
else
	not_ok "keyforgectl workers: $FIRST draining" "$("$CTL" workers 2>&1)"
fi

# ---- the broker goes away ------------------------------------------------------------------

BROKER_PID=""
read -r BROKER_PID _ <"$KEYFORGE_STATE_DIR/pids/broker.pid"
case "$(readlink "/proc/$BROKER_PID/exe" 2>/dev/null)" in
	*/keyforge-broker)
		T0=$(now_ms)
		kill -TERM "$BROKER_PID"
		# when it is gone: the spec's 3 s count from there
		(while kill -0 "$BROKER_PID" 2>/dev/null; do sleep 0.05; done; now_ms >"$TMP/broker.gone") &
		PIDS+=" $!"
		;;
	*) BROKER_PID="" ;;
esac
check "the hive's broker (pid ${BROKER_PID:-?}) is sent SIGTERM" test -n "$BROKER_PID"
# (The spec: within 3 s; allowed 10 here, the time taken is in the line.)
if poll 10 line1_has "broker unreachable"; then
	T1=$(now_ms)
	gone="the broker still runs"
	[ -s "$TMP/broker.gone" ] && gone="$((T1 - $(cat "$TMP/broker.gone"))) ms after it exited"
	ok "the header says 'broker unreachable' ($((T1 - T0)) ms after the SIGTERM, $gone)"
else
	not_ok "the header says 'broker unreachable'" "not on line 1 within 10 s"
	screen_diag
fi

# ---- q ---------------------------------------------------------------------------------------

# quit_admin DESC : q, then the admin's exit status is 0 within 10 s.
quit_admin() {
	send q
	wait_until 10000 test -s "$TMP/admin.exit" || true
	if [ "$(cat "$TMP/admin.exit" 2>/dev/null)" = "exit=0" ]; then
		ok "$1"
	else
		not_ok "$1" "exit file: $(cat "$TMP/admin.exit" 2>/dev/null || echo none)"
		screen_diag
	fi
}
quit_admin "q: the admin exits with status 0"

# ---- a hostile publisher ----------------------------------------------------------------------

# A second admin whose events address is nasty_pub's: random bytes, cut
# envelopes, and well-formed events whose text carries escape sequences
# (clear screen, colours, cursor moves), a C1 CSI, a bell and wide
# characters, with numbers at their limits. Drawn, the escapes must come
# out as harmless text ("nasty [2J [31mred?1;1H 日本-end": ESC and BEL as
# spaces, CSI as '?'), and the admin must survive it and quit with 0.
NASTY="${KF_NASTY_PUB:-$BUILD/tests/tui/nasty_pub}"
NASTY_PORT=$((BASE + 6))
while port_taken "$NASTY_PORT" && [ "$NASTY_PORT" -lt $((BASE + 50)) ]; do
	NASTY_PORT=$((NASTY_PORT + 1))
done
if [ -x "$NASTY" ]; then
	"$NASTY" "tcp://127.0.0.1:$NASTY_PORT" 30 >"$TMP/nasty.out" 2>&1 &
	PIDS+=" $!"
	rm -f "$TMP/admin.exit" "$TMP/admin.pid"
	SESSION="nasty"
	sed "s|^export KEYFORGE_EVENTS=.*|export KEYFORGE_EVENTS=tcp://127.0.0.1:$NASTY_PORT|" \
		"$TMP/run-admin.sh" >"$TMP/run-nasty.sh"
	sed -i "s|$(printf %q "$ADMIN")|& --view logs --level trace|" "$TMP/run-nasty.sh"
	tm new-session -d -s "$SESSION" -x 160 -y 40 sh "$TMP/run-nasty.sh"
	sanitized() { has "nasty [2J [31mred?1;1H 日本-end" && line1_has "KeyForge Hive"; }
	screen_check "hostile events: log lines drawn with their escapes as text" 10 sanitized
	key 1
	screen_check "hostile events: a forged cluster status of 300 workers is drawn" 10 \
		has_all "Cluster Map" "300 workers (100 alive, 100 stale, 100 dead)"
	key 2
	screen_check "hostile events: the Job Queue opens all the same" 10 has "Job Queue"
	quit_admin "hostile events: q still exits with status 0"

	# The Cluster Map's selection is a worker, not a row: nasty_pub's swap
	# mode publishes two workers whose rows change places fifty times a
	# second, so a key is mostly read after a status the screen has not
	# drawn yet. Each d must ask about the worker shown selected.
	SWAP_PORT=$((NASTY_PORT + 1))
	while port_taken "$SWAP_PORT" && [ "$SWAP_PORT" -lt $((BASE + 59)) ]; do
		SWAP_PORT=$((SWAP_PORT + 1))
	done
	"$NASTY" "tcp://127.0.0.1:$SWAP_PORT" 30 swap >"$TMP/swap.out" 2>&1 &
	PIDS+=" $!"
	rm -f "$TMP/admin.exit" "$TMP/admin.pid"
	SESSION="swap"
	sed "s|^export KEYFORGE_EVENTS=.*|export KEYFORGE_EVENTS=tcp://127.0.0.1:$SWAP_PORT|" \
		"$TMP/run-admin.sh" >"$TMP/run-swap.sh"
	tm new-session -d -s "$SESSION" -x 160 -y 40 sh "$TMP/run-swap.sh"
	screen_check "rows that swap: the Cluster Map shows swap-a and swap-b" 10 \
		has_all "swap-a" "swap-b" "3 workers"
	# (g selects the first row, swap-a or swap-b; j from swap-a moves one
	# row down from where swap-a is now, to swap-b or the third: again, then)
	for _ in $(seq 1 20); do
		send g
		sleep 0.3
		worker_selected swap-b && break
		send j
		sleep 0.3
		worker_selected swap-b && break
	done
	screen_check "rows that swap: swap-b selected" 5 worker_selected swap-b
	swap_wrong=""
	last_line() { tail -n 1 <<<"$SCREEN"; }
	prompt_shown() { last_line | grep -q "^Drain worker"; }
	for _ in $(seq 1 10); do
		send d
		poll 5 prompt_shown
		last_line | grep -qF "Drain worker swap-b (" || swap_wrong+="$(last_line); "
		send n
		poll 5 has cancelled
	done
	if [ -z "$swap_wrong" ]; then
		ok "rows that swap: d asked about swap-b, the worker shown selected, 10 times in 10"
	else
		not_ok "rows that swap: d asks about the worker shown selected (swap-b)" \
			"asked instead: $swap_wrong"
	fi
	# A worker id of 200 characters: the drain prompt cuts it ('…') so
	# that the question and its [y/N] stay on the 160 columns.
	send G
	long_selected() { highlighted | grep -q '^swap-long-xxx'; }
	screen_check "G: the worker with a 200-character id selected" 5 long_selected
	send d
	long_prompt_ok() { last_line | grep -qE '^Drain worker swap-long-x+…\? \[y/N\] *$'; }
	screen_check "d: 'Drain worker swap-long-xxx…? [y/N]', the id cut to fit" 5 long_prompt_ok
	send n
	quit_admin "rows that swap: q exits with status 0"
else
	not_ok "hostile events" "$NASTY is not built"
fi

# kill_from_queue WHERE JOB CTL: the admin's Running tab lists JOB; x and y
# kill it ('kill accepted'), and CTL (a keyforgectl of the same broker) sees
# it killed within 10 s.
kill_from_queue() {
	local where="$1" job="$2" ctl="$3"
	key 2
	send l
	screen_check "$where: the Running tab lists job $job" 10 on_tab Running "$job" running
	send x
	check_screen "$where: x asks 'Kill job $job? [y/N]'" "Kill job $job? [y/N]"
	send y
	check_screen "$where: 'job $job: kill accepted'" "job $job: kill accepted" 10
	wait_until 10000 killed_by "$ctl" "$job"
	check "$where: job $job is killed (keyforgectl: ${STATE:-?})" test "$STATE" = killed
}
# killed_by CTL JOB: STATE, JOB's state as CTL shows it; true when killed.
killed_by() { STATE="$("$1" show "$2" --json 2>/dev/null | jq -r .state)"; [ "$STATE" = killed ]; }

# ---- a local socket, no token ---------------------------------------------------------------

# DESIGN.md §7: the admin on a local socket, its actions authorised by its
# uid and not by a token. The hive's broker is gone (above); a broker on the
# same database now serves rpc and events on ipc:// (ingest, commands and
# monitor on the hive's ports), with a worker of its own whose rpc is ipc:// too. The
# admin runs without KEYFORGE_TOKEN_FILE and kills a job from the Job Queue.
IPC_RPC="ipc://$TMP/rpc.ipc"
IPC_EVENTS="ipc://$TMP/events.ipc"
"$BUILD/broker/keyforge-broker" --db "$KEYFORGE_DB" --ingest "$KEYFORGE_INGEST" \
	--commands "$KEYFORGE_COMMANDS" --monitor "$KEYFORGE_MONITOR" --rpc "$IPC_RPC" \
	--events "$IPC_EVENTS" --token-file "$TMP/ipc.token" >"$TMP/ipc-broker.log" 2>&1 &
IPC_PIDS="$!"
"$BUILD/worker/keyforge-worker" --id ipc-w1 --rpc "$IPC_RPC" --ingest "$KEYFORGE_INGEST" \
	--commands "$KEYFORGE_COMMANDS" >"$TMP/ipc-worker.log" 2>&1 &
IPC_PIDS+=" $!"
PIDS+=" $IPC_PIDS"
ipc_ctl() { env -u KEYFORGE_TOKEN_FILE "$CTL" --rpc "$IPC_RPC" --events "$IPC_EVENTS" "$@"; }
submit_when_up 15 ipc_ctl --corpus "$CORPUS" --steps 2000000000 --seed 9
IPC_JOB="$SUBMITTED"
check "keyforgectl over ipc:// without a token submits a job (${IPC_JOB:-none})" test -n "$IPC_JOB"
rm -f "$TMP/admin.exit" "$TMP/admin.pid"
SESSION="ipc"
sed -e "s|^export KEYFORGE_RPC=.*|export KEYFORGE_RPC=$IPC_RPC|" \
	-e "s|^export KEYFORGE_EVENTS=.*|export KEYFORGE_EVENTS=$IPC_EVENTS|" \
	-e "/^export KEYFORGE_TOKEN_FILE=/d" "$TMP/run-admin.sh" >"$TMP/run-ipc.sh"
tm new-session -d -s "$SESSION" -x 160 -y 40 sh "$TMP/run-ipc.sh"
ipc_cluster() { has_re "ipc-w1 .*alive" && line1_has connected; }
screen_check "over ipc://: the Cluster Map shows ipc-w1 alive, header 'connected'" 15 ipc_cluster
kill_from_queue "over ipc://, no token" "$IPC_JOB" ipc_ctl
quit_admin "over ipc://: q exits with status 0"
# shellcheck disable=SC2086 # a list of pids
kill -TERM $IPC_PIDS 2>/dev/null

# ---- an SSH tunnel ----------------------------------------------------------------------------

# DESIGN.md §7: an operator on another machine reaches the broker through an
# SSH tunnel. A private sshd on a loopback port (a host key of its own, one
# authorised key, local forwarding only) stands for the broker's machine,
# and `ssh -N -L` for the operator's: the admin and keyforgectl know only
# the tunnel's two local ports. Behind it, a broker on fresh loopback ports
# (the same database) and a worker, ssh-w1. keyforgectl submits and follows
# the log stream through the tunnel; the admin shows ssh-w1, kills its job
# from the Job Queue, says 'broker unreachable' once the tunnel is cut and
# 'connected' once it is back.
NEXT_PORT=$((BASE + 60)) # past the ports above
free_port() {
	while port_taken "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
	PORT=$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 1))
}
SSH_DIR="$TMP/ssh"
ssh_skip=""
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
	ssh_skip="openssh-server or openssh-client is not installed"
elif [ "$(id -u)" -ne 0 ]; then
	ssh_skip="sshd runs only as root here (its privilege separation)"
fi

# The broker's machine: sshd on S_SSHD, the broker and ssh-w1.
ssh_side_up() {
	local v
	for v in S_INGEST S_EVENTS S_RPC S_COMMANDS S_MONITOR S_SSHD T_RPC T_EVENTS; do
		free_port
		printf -v "$v" %s "$PORT"
	done
	"$BUILD/broker/keyforge-broker" --db "$KEYFORGE_DB" --ingest "tcp://127.0.0.1:$S_INGEST" \
		--events "tcp://127.0.0.1:$S_EVENTS" --rpc "tcp://127.0.0.1:$S_RPC" \
		--commands "tcp://127.0.0.1:$S_COMMANDS" --monitor "tcp://127.0.0.1:$S_MONITOR" \
		--token-file "$TMP/ssh.token" >"$TMP/ssh-broker.log" 2>&1 &
	PIDS+=" $!"
	"$BUILD/worker/keyforge-worker" --id ssh-w1 --rpc "tcp://127.0.0.1:$S_RPC" \
		--ingest "tcp://127.0.0.1:$S_INGEST" --commands "tcp://127.0.0.1:$S_COMMANDS" \
		>"$TMP/ssh-worker.log" 2>&1 &
	PIDS+=" $!"
	mkdir -p "$SSH_DIR" /run/sshd && chmod 700 "$SSH_DIR" || return 1
	ssh-keygen -q -t ed25519 -N "" -f "$SSH_DIR/host_key" || return 1
	ssh-keygen -q -t ed25519 -N "" -f "$SSH_DIR/id" || return 1
	cp "$SSH_DIR/id.pub" "$SSH_DIR/authorized_keys"
	cat >"$SSH_DIR/sshd_config" <<-EOF
		Port $S_SSHD
		ListenAddress 127.0.0.1
		HostKey $SSH_DIR/host_key
		AuthorizedKeysFile $SSH_DIR/authorized_keys
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		PermitRootLogin prohibit-password
		AllowTcpForwarding local
		PermitTTY no
		X11Forwarding no
		StrictModes no
		PidFile $SSH_DIR/sshd.pid
		LogLevel ERROR
	EOF
	/usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" 2>"$SSH_DIR/sshd.log" &
	PIDS+=" $!"
	wait_until 10000 port_taken "$S_SSHD"
}

# The operator's end: ssh -N -L for rpc and events; true once it forwards.
tunnel_up() {
	ssh -N -F /dev/null -i "$SSH_DIR/id" -p "$S_SSHD" -o BatchMode=yes \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ExitOnForwardFailure=yes -o LogLevel=ERROR \
		-L "127.0.0.1:$T_RPC:127.0.0.1:$S_RPC" -L "127.0.0.1:$T_EVENTS:127.0.0.1:$S_EVENTS" \
		"$(id -un)@127.0.0.1" 2>>"$SSH_DIR/ssh.log" &
	TUNNEL_PID=$!
	PIDS+=" $TUNNEL_PID"
	wait_until 10000 port_taken "$T_EVENTS"
}

ssh_ctl() {
	"$CTL" --rpc "tcp://127.0.0.1:$T_RPC" --events "tcp://127.0.0.1:$T_EVENTS" \
		--token-file "$TMP/ssh.token" "$@"
}

if [ -n "$ssh_skip" ]; then
	ok "through an SSH tunnel # SKIP $ssh_skip"
elif ! ssh_side_up || ! tunnel_up; then
	not_ok "through an SSH tunnel: sshd and ssh -L up" "sshd: $(cat "$SSH_DIR/sshd.log" 2>/dev/null)" \
		"ssh: $(cat "$SSH_DIR/ssh.log" 2>/dev/null)"
else
	ok "an SSH tunnel: sshd on 127.0.0.1:$S_SSHD, ssh -L $T_RPC and $T_EVENTS to the broker"
	submit_when_up 15 ssh_ctl --corpus "$CORPUS" --steps 2000000000 --seed 11
	SSH_JOB="$SUBMITTED"
	check "through the tunnel: keyforgectl submits a job (${SSH_JOB:-none})" test -n "$SSH_JOB"
	# Its own pid, not a `timeout` in front: cleanup's SIGKILL of a timeout
	# would leave the follower running after the test.
	"$CTL" --rpc "tcp://127.0.0.1:$T_RPC" --events "tcp://127.0.0.1:$T_EVENTS" \
		logs --follow >"$TMP/ssh-follow.out" 2>&1 &
	FOLLOW_PID=$!
	PIDS+=" $FOLLOW_PID"
	rm -f "$TMP/admin.exit" "$TMP/admin.pid"
	SESSION="ssh"
	sed -e "s|^export KEYFORGE_RPC=.*|export KEYFORGE_RPC=tcp://127.0.0.1:$T_RPC|" \
		-e "s|^export KEYFORGE_EVENTS=.*|export KEYFORGE_EVENTS=tcp://127.0.0.1:$T_EVENTS|" \
		-e "s|^export KEYFORGE_TOKEN_FILE=.*|export KEYFORGE_TOKEN_FILE=$TMP/ssh.token|" \
		"$TMP/run-admin.sh" >"$TMP/run-ssh.sh"
	tm new-session -d -s "$SESSION" -x 160 -y 40 sh "$TMP/run-ssh.sh"
	ssh_cluster() { has_re "ssh-w1 .*alive" && line1_has connected; }
	screen_check "through the tunnel: the Cluster Map shows ssh-w1 alive, header 'connected'" 15 \
		ssh_cluster
	kill_from_queue "through the tunnel" "$SSH_JOB" ssh_ctl
	# The broker logs the kill as its worker reports it; the follower
	# receives that line on events, through the tunnel.
	followed() { grep -q "job killed job_id=$SSH_JOB " "$TMP/ssh-follow.out"; }
	if wait_until 5000 followed; then
		ok "through the tunnel: keyforgectl logs --follow shows 'job killed job_id=$SSH_JOB'"
	else
		not_ok "through the tunnel: keyforgectl logs --follow" "$(tail -n 5 "$TMP/ssh-follow.out")"
	fi
	kill -TERM "$FOLLOW_PID" 2>/dev/null
	# Cut the tunnel: the admin's connections end with it.
	kill -TERM "$TUNNEL_PID"
	if poll 10 line1_has "broker unreachable"; then
		ok "tunnel cut: the header says 'broker unreachable'"
	else
		not_ok "tunnel cut: 'broker unreachable' in the header" "$(head -n 1 <<<"$SCREEN")"
	fi
	if tunnel_up && poll 15 line1_has connected; then
		ok "tunnel back: the header says 'connected' again"
	else
		not_ok "tunnel back: 'connected' in the header" "$(head -n 1 <<<"$SCREEN")" \
			"ssh: $(cat "$SSH_DIR/ssh.log" 2>/dev/null)"
	fi
	quit_admin "through the tunnel: q exits with status 0"
fi

echo "1..$N"
[ "$FAILED" = 0 ]
