#!/usr/bin/env bash
# bench/hive/bench_heartbeats.sh BUILD_DIR — heartbeats per second the broker
# absorbs from simulated workers (200 at 1 Hz, then faster and more of them
# to find the ceiling) with no gap, and its CPU share (issue 5). Starts and
# stops its own PostgreSQL and broker on loopback ports KF_HBENCH_PORT_BASE..
#
# Environment (defaults):
#   KF_HBENCH_HB_STEPS=200:1,200:5,200:10,200:20,400:20,1000:20,2000:20
#                        IDS:HZ per step (the broker takes 20 heartbeats/s per
#                        worker at most, so more workers are needed past 4,000/s)
#   KF_HBENCH_HB_SECS=10 seconds per step
# Figures and commands: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# phase_heartbeats RUN: appends to $HB_WORK/summary.
phase_heartbeats() {
	local run="$1" db out line one ceiling
	hb_say "heartbeats, run $run (load $(hb_load))"
	db="$(hb_db "hb$run")"
	hb_broker_start "$db"
	out="$("$HB_BENCH/bench_heartbeats" --ingest "$HB_INGEST" --events "$HB_EVENTS" \
		--broker-pid "$HB_BROKER_PID" --label "run$run" --prefix "sim$run" \
		--steps "${KF_HBENCH_HB_STEPS:-200:1,200:5,200:10,200:20,400:20,1000:20,2000:20}" \
		--secs "${KF_HBENCH_HB_SECS:-10}")"
	echo "$out"
	one="$(grep '^RESULT.* step=1 ' <<<"$out")"
	ceiling="$(grep '^RESULT.* ceiling_absorbed=' <<<"$out")"
	printf 'heartbeats/s absorbed, 200 workers at 1 Hz|200, no gap|%s accepted/s, gaps %s, broker CPU %s%% of one core|%s\n' \
		"$(hb_field "$one" accepted_rate)" "$(hb_field "$one" gaps)" \
		"$(hb_field "$one" broker_cpu_pct)" "$(hb_field "$one" load)" >>"$HB_WORK/summary"
	while read -r line; do
		printf 'heartbeats/s: %s workers x %s Hz|-|%s accepted/s of %s sent/s, gaps %s, rate-limited %s, broker CPU %s%%%s|%s\n' \
			"$(hb_field "$line" ids)" "$(hb_field "$line" hz)" "$(hb_field "$line" accepted_rate)" \
			"$(hb_field "$line" sent_rate)" "$(hb_field "$line" gaps)" \
			"$(hb_field "$line" rate_limited)" "$(hb_field "$line" broker_cpu_pct)" \
			"$([ "$(hb_field "$line" absorbed)" = 1 ] && echo ', absorbed' || echo ', NOT absorbed')" \
			"$(hb_field "$line" load)" >>"$HB_WORK/summary"
	done < <(grep '^RESULT.* step=' <<<"$out" | tail -n +2)
	printf 'heartbeat ceiling (highest step absorbed with no gap)|-|%s/s|\n' \
		"$(hb_field "$ceiling" ceiling_absorbed)" >>"$HB_WORK/summary"
	hb_stop_all
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	hb_init "$@"
	hb_pg_start
	phase_heartbeats 1
	column -t -s '|' "$HB_WORK/summary"
fi
