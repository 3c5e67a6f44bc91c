#!/usr/bin/env bash
# bench/hive/bench_requeue.sh BUILD_DIR — a dead worker's job running again
# ≤ 12 s after its last heartbeat (issue 5): a job too long to finish runs
# on one of two keyforge-workers, that worker gets SIGKILL, and
# bench_requeue measures from its last heartbeat to the job's "running"
# event on the other worker. Starts and stops its own PostgreSQL, broker and
# workers on loopback ports KF_HBENCH_PORT_BASE..
#
# Environment: KF_HBENCH_REQUEUE_KILLS=2 (kills per run; a fresh worker
# replaces each victim). Figures and commands: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# phase_requeue RUN: appends to $HB_WORK/summary.
phase_requeue() {
	local run="$1" db out line k victim next=3
	hb_say "dead worker requeue, run $run (load $(hb_load))"
	db="$(hb_db "rq$run")"
	hb_broker_start "$db"
	hb_worker_start "rq$run-w1"
	hb_worker_start "rq$run-w2"
	hb_wait_alive 2
	for ((k = 1; k <= ${KF_HBENCH_REQUEUE_KILLS:-2}; k++)); do
		out="$("$HB_BENCH/bench_requeue" --rpc "$HB_RPC" --events "$HB_EVENTS" \
			--token-file "$HB_TOKEN" --label "run$run-kill$k")"
		echo "$out"
		line="$(grep '^RESULT' <<<"$out")"
		printf 'dead worker: last heartbeat -> job running again (kill %s)|<= 12 s|%s s (kill -> running %s s)|%s\n' \
			"$k" "$(hb_field "$line" hb_to_running_s)" "$(hb_field "$line" kill_to_running_s)" \
			"$(hb_field "$line" load)" >>"$HB_WORK/summary"
		victim="$(hb_field "$line" victim)"
		echo "replacing $victim"
		hb_worker_start "rq$run-w$next"
		next=$((next + 1))
		hb_wait_alive 2
	done
	hb_stop_all
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	hb_init "$@"
	hb_pg_start
	phase_requeue 1
	column -t -s '|' "$HB_WORK/summary"
fi
