#!/usr/bin/env bash
# bench/hive/bench_memory.sh BUILD_DIR — resident memory (issue 5): the broker
# with 200 workers (simulated heartbeats, 1 Hz each) and 100,000 finished
# jobs in the database (≤ 64 MB), and a keyforge-worker that has run an
# optimization on the default corpus (≤ 32 MB). Starts and stops its own
# PostgreSQL, broker and worker on loopback ports KF_HBENCH_PORT_BASE..
#
# Environment (defaults): KF_HBENCH_MEM_JOBS=100000 finished jobs inserted,
# KF_HBENCH_MEM_SECS=30 seconds of heartbeats, KF_HBENCH_MEM_STEPS=3000000
# annealing steps of the worker's job.
# Figures and commands: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# phase_memory RUN: appends to $HB_WORK/summary.
phase_memory() {
	local run="$1" db n t0 t1 id w hbpid out one b0 b1 w0 w1 size
	n="${KF_HBENCH_MEM_JOBS:-100000}"
	hb_say "memory, run $run (load $(hb_load))"
	db="$(hb_db "mem$run")"
	hb_broker_start "$db"            # applies the migrations
	hb_stop "$HB_BROKER_PID"
	t0=$(date +%s.%N)
	hb_insert_jobs "mem$run" "$n"
	t1=$(date +%s.%N)
	size="$(hb_psql -d "mem$run" -At -c "SELECT pg_size_pretty(pg_database_size('mem$run'))")"
	echo "inserted $n finished jobs (+ attempts) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; database $size"
	hb_broker_start "$db"
	b0="$(hb_rss "$HB_BROKER_PID")"
	hb_worker_start "mem$run-w1"
	w=$HB_PID
	hb_wait_alive 1
	w0="$(hb_rss "$w")"
	echo "at start: broker VmRSS/VmHWM ${b0/ //} KiB, worker ${w0/ //} KiB"

	"$HB_BENCH/bench_heartbeats" --ingest "$HB_INGEST" --events "$HB_EVENTS" \
		--broker-pid "$HB_BROKER_PID" --label "run$run-memory" --prefix "mem$run" \
		--steps 200:1 --secs "${KF_HBENCH_MEM_SECS:-30}" >"$HB_WORK/mem-hb.out" &
	hbpid=$!
	# While 200 workers beat: a real optimization on the default corpus, a
	# 1,000-job list page and the cluster view (201 workers).
	id="$(hb_ctl submit --corpus default --steps "${KF_HBENCH_MEM_STEPS:-3000000}" --seed 7)"
	hb_ctl wait --quiet --timeout 300s "$id"
	hb_ctl list --state succeeded --limit 1000 >/dev/null
	hb_ctl list --state all --after 50000 --limit 1000 --json --brief >/dev/null
	hb_ctl workers >/dev/null
	wait "$hbpid"
	out="$(cat "$HB_WORK/mem-hb.out")"
	echo "$out"
	one="$(grep '^RESULT.* step=1 ' <<<"$out")"
	b1="$(hb_rss "$HB_BROKER_PID")"
	w1="$(hb_rss "$w")"
	echo "jobs in the database: $(hb_ctl workers --json | jq -c .jobs)"
	echo "broker: VmRSS $(hb_mib "${b1% *}") MiB, VmHWM (peak) $(hb_mib "${b1#* }") MiB"
	echo "worker: VmRSS $(hb_mib "${w1% *}") MiB, VmHWM (peak) $(hb_mib "${w1#* }") MiB (job $id: $(hb_ctl show "$id" --json | jq -r '"\(.state), \(.result.steps) steps, \(.result.steps_per_sec | floor) steps/s"'))"
	printf 'broker resident memory, 200 workers + %s finished jobs|<= 64 MB|VmRSS %s MiB, peak %s MiB (%s hb/s accepted, broker CPU %s%%)|%s\n' \
		"$n" "$(hb_mib "${b1% *}")" "$(hb_mib "${b1#* }")" "$(hb_field "$one" accepted_rate)" \
		"$(hb_field "$one" broker_cpu_pct)" "$(hb_field "$one" load)" >>"$HB_WORK/summary"
	printf 'worker resident memory, default corpus, after a %s-step job|<= 32 MB|VmRSS %s MiB, peak %s MiB|%s\n' \
		"${KF_HBENCH_MEM_STEPS:-3000000}" "$(hb_mib "${w1% *}")" "$(hb_mib "${w1#* }")" \
		"$(hb_load)" >>"$HB_WORK/summary"
	hb_stop_all
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	hb_init "$@"
	hb_pg_start
	phase_memory 1
	column -t -s '|' "$HB_WORK/summary"
fi
