#!/usr/bin/env bash
# bench/hive/profile_jobs.sh BUILD_DIR [SLOTS] [JOBS] — where the CPU of a
# job goes: one flood of JOBS zero-step jobs (default 5000) through a broker
# and 2 keyforge-workers with SLOTS slots each (default 1), like
# bench_jobs.sh, printing per job
#   - bench_jobs' own figures (jobs/s, CPU and context switches per process),
#   - each PostgreSQL process' user and system CPU,
#   - each thread of the broker and of the first worker: CPU, voluntary and
#     involuntary context switches (/proc/PID/task/TID), by thread name
#     (nng names its own: nng:task, nng:poll:epoll, …),
#   - for those threads and PostgreSQL's processes, how long they waited,
#     runnable, for a CPU (schedstat): on two busy cores the database
#     connection's time is its backend's CPU, the WAL flush, and this wait.
# Use it to compare two builds or settings run for run, on the same minute:
# on a shared machine only interleaved runs compare.
#
# Environment:
#   KF_PROFILE_PERF=DIR     also `perf record -g` the broker, the first worker
#                           and PostgreSQL for 5 s into DIR/{broker,worker,pg}.data
#   KF_PROFILE_WORKER_FLAGS extra keyforge-worker flags
#   KF_PROFILE_RATE=R       open loop at R jobs/s instead of a flood: where
#                           the CPU goes at a given load, not at the ceiling
#   KF_PROFILE_BENCH_FLAGS  extra bench_jobs flags (e.g. --no-events)
#   and lib.sh's (KF_HBENCH_PORT_BASE, KF_HBENCH_KEEP, KEYFORGE_LOG).
# Figures and commands: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
SLOTS="${2:-1}"
JOBS="${3:-5000}"
[[ "$SLOTS" =~ ^[1-9][0-9]*$ && "$JOBS" =~ ^[1-9][0-9]*$ ]] || hb_die "SLOTS and JOBS are numbers"
US_PER_TICK=$((1000000 / $(getconf CLK_TCK)))

# Nanoseconds a task spent waiting, runnable, for a CPU: the second field
# of /proc/.../schedstat (kernels with schedstats; "0" where it is missing).
rq_wait() {
	local f=()
	read -ra f <"$1/schedstat" 2>/dev/null || true
	echo "${f[1]:-0}"
}

# Threads of the given processes:
# pid tid name cpu_ticks voluntary involuntary runqueue_wait_ns
threads() {
	local p t st name vol invol
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			# A thread may end between the listing and the reads
			# (nng's resolver threads come and go): skip it.
			st=() name="" vol="" invol=""
			read -ra st <<<"$(sed 's/.*) //' "$t/stat" 2>/dev/null)" || true
			name="$(tr ' ' _ <"$t/comm" 2>/dev/null)" || true
			vol="$(awk '/^voluntary_ctxt/ { print $2 }' "$t/status" 2>/dev/null)" || true
			invol="$(awk '/^nonvoluntary_ctxt/ { print $2 }' "$t/status" 2>/dev/null)" || true
			if [ "${#st[@]}" -le 12 ] || [ -z "$name" ] || [ -z "$vol" ] || [ -z "$invol" ]; then
				continue
			fi
			printf '%s %s %s %s %s %s %s\n' "$p" "${t##*/}" "$name" $((st[11] + st[12])) \
				"$vol" "$invol" "$(rq_wait "$t")"
		done
	done
}

# PostgreSQL processes: pid name utime stime runqueue_wait_ns
pg_procs() {
	local p st name
	for p in $(pgrep -u postgres postgres); do
		# An autovacuum worker may end between pgrep and the reads: skip it.
		st=() name=""
		read -ra st <<<"$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null)" || true
		name="$(tr ' ' _ <"/proc/$p/comm" 2>/dev/null)" || true
		if [ "${#st[@]}" -le 12 ] || [ -z "$name" ]; then
			continue
		fi
		printf '%s %s %s %s %s\n' "$p" "$name" "${st[11]}" "${st[12]}" "$(rq_wait "/proc/$p")"
	done
}

hb_init "$1"
hb_pg_start
hb_broker_start "$(hb_db profile)"
# shellcheck disable=SC2086 # a list of flags
hb_worker_start pw1 --slots "$SLOTS" ${KF_PROFILE_WORKER_FLAGS:-}
w1=$HB_PID
# shellcheck disable=SC2086
hb_worker_start pw2 --slots "$SLOTS" ${KF_PROFILE_WORKER_FLAGS:-}
w2=$HB_PID
hb_wait_alive 2
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs 40 --inflight 8 >/dev/null   # warm-up: corpus and scorer loaded

pg_procs >"$HB_WORK/pg.before"
threads "$HB_BROKER_PID" "$w1" >"$HB_WORK/threads.before"
if [ -n "${KF_PROFILE_PERF:-}" ]; then
	mkdir -p "$KF_PROFILE_PERF"
	for who in broker:"$HB_BROKER_PID" worker:"$w1" pg:"$(pgrep -d, -u postgres postgres)"; do
		perf record -q -e cpu-clock -F 2000 -g -p "${who#*:}" \
			-o "$KF_PROFILE_PERF/${who%%:*}.data" -- sleep 5 >/dev/null 2>&1 &
	done
fi
# shellcheck disable=SC2046,SC2086 # lists of flags, split on purpose
out="$("$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs "$JOBS" --inflight 64 --rate "${KF_PROFILE_RATE:-0}" --label "profile-slots$SLOTS" --cpu broker="$HB_BROKER_PID" \
	--cpu worker1="$w1" --cpu worker2="$w2" $(hb_pg_cpu_flags) ${KF_PROFILE_BENCH_FLAGS:-})"
threads "$HB_BROKER_PID" "$w1" >"$HB_WORK/threads.after"
pg_procs >"$HB_WORK/pg.after"
wait   # perf

echo "profile_jobs: $JOBS zero-step jobs, 2 workers x $SLOTS slot(s), load $(hb_load)"
grep -E 'offered|jobs/s|submits/s|submit ack|submit->(running|started|announced)|started->event|database|machine|cpu (broker|worker|bench_jobs)' <<<"$out"
echo "PostgreSQL processes (per job; waited: runnable, for a CPU):"
awk -v n="$JOBS" -v us="$US_PER_TICK" '
	NR == FNR { u[$1] = $3; s[$1] = $4; w[$1] = $5; next }
	($1 in u) && ($3 - u[$1] + $4 - s[$1]) > 0 {
		printf "  %-7s %-10s user %6.0f us  system %6.0f us  waited %6.0f us\n", $1, $2,
			($3 - u[$1]) * us / n, ($4 - s[$1]) * us / n, ($5 - w[$1]) / 1000 / n }' \
	"$HB_WORK/pg.before" "$HB_WORK/pg.after"
echo "threads of the broker (pid $HB_BROKER_PID) and worker pw1 (pid $w1), per job:"
awk -v n="$JOBS" -v us="$US_PER_TICK" '
	NR == FNR { c[$2] = $4; v[$2] = $5; x[$2] = $6; w[$2] = $7; next }
	($2 in c) && ($4 - c[$2] + $5 - v[$2] + $6 - x[$2]) > 0 {
		printf "  %-7s %-7s %-16s cpu %6.0f us  waited %6.0f us  switches %5.2f voluntary %5.2f involuntary\n",
			$1, $2, $3, ($4 - c[$2]) * us / n, ($7 - w[$2]) / 1000 / n,
			($5 - v[$2]) / n, ($6 - x[$2]) / n }' \
	"$HB_WORK/threads.before" "$HB_WORK/threads.after"
hb_stop "$w1" "$w2"
hb_stop_all
