#!/usr/bin/env bash
# bench/hive/bench_jobs.sh BUILD_DIR — jobs per second through submit → lease
# → complete with zero-step jobs and 2 keyforge-worker processes, submit →
# running latency, and the same job flow through beanstalkd (binlog on) for
# the ratio (issue 5). Starts and stops its own PostgreSQL (scripts/pgtmp,
# default durability), broker, workers and beanstalkd on loopback ports
# KF_HBENCH_PORT_BASE.. (default 17600).
#
# Environment (defaults):
#   KF_HBENCH_JOBS=5000        jobs per measurement
#   KF_HBENCH_INFLIGHT=64      submit RPCs (and beanstalkd puts) in flight
#   KF_HBENCH_SLOTS="1 8 32"   worker --slots values, one measurement each
#   KF_HBENCH_RATES="100 1000" open-loop rates (jobs/s), measured after the
#                              flood for each slots value (8 s of jobs each)
#   KF_HBENCH_BS_FSYNC="50 0"  beanstalkd -f values (50: its default; 0: every write)
#   KF_HBENCH_TRACE=DIR        also write each open-loop run's per-job times to
#                              DIR/LABEL-K.trace, K counting the rates from 1
#                              (bench_jobs --trace)
#   KF_HBENCH_GATEWAY=monitor  run keyforge-gateway too, on the monitor socket
#                              (or =events: on the events socket), and count
#                              its CPU (lib.sh)
#   KF_HBENCH_VCPU=1           count the machine's CPU dips over 50 ms in each
#                              open-loop run (bench_vcpu beside it, lib.sh)
# Figures and commands: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# phase_jobs RUN: one full measurement; appends to $HB_WORK/summary.
phase_jobs() {
	local run="$1" db slots rate out line w1 w2 n jobs fs
	local bs_rate slots_list="${KF_HBENCH_SLOTS:-1 8 32}" ratios sep label k dips
	local -a trace
	local -A hive_rate=()
	jobs="${KF_HBENCH_JOBS:-5000}"
	hb_say "jobs, run $run (load $(hb_load))"
	db="$(hb_db "jobs$run")"
	hb_broker_start "$db"
	hb_gateway_start "$db"
	for slots in $slots_list; do
		hb_worker_start "bw1-$run-$slots" --slots "$slots"
		w1=$HB_PID
		hb_worker_start "bw2-$run-$slots" --slots "$slots"
		w2=$HB_PID
		hb_wait_alive 2
		# Warm-up: each worker loads the corpus and builds its scorer once.
		"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
			--jobs 40 --inflight 8 >/dev/null
		# shellcheck disable=SC2046 # a list of flags
		out="$("$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" \
			--token-file "$HB_TOKEN" --jobs "$jobs" --inflight "${KF_HBENCH_INFLIGHT:-64}" \
			--label "run$run-slots$slots-flood" --cpu broker="$HB_BROKER_PID" \
			--cpu worker1="$w1" --cpu worker2="$w2" $(hb_pg_cpu_flags) \
			$(hb_gateway_cpu_flags))"
		echo "$out"
		line="$(grep '^RESULT' <<<"$out")"
		hive_rate[$slots]="$(hb_field "$line" rate)"
		printf 'jobs/s (2 workers x %s slot%s, flood)|>= 1000|%s (submit->running p99 %s ms under a backlog)|%s\n' \
			"$slots" "$([ "$slots" = 1 ] || echo s)" "$(hb_field "$line" rate)" \
			"$(hb_field "$line" run_p99_ms)" "$(hb_field "$line" load)" >>"$HB_WORK/summary"
		k=0
		for rate in ${KF_HBENCH_RATES:-100 1000}; do
			n=$((rate * 8))
			[ "$n" -le "$jobs" ] || n="$jobs"
			label="run$run-slots$slots-rate$rate"
			k=$((k + 1))   # the same rate may come twice: one trace each
			trace=()
			[ -z "${KF_HBENCH_TRACE:-}" ] || trace=(--trace "$KF_HBENCH_TRACE/$label-$k.trace")
			dips=""
			[ "${KF_HBENCH_VCPU:-0}" = 0 ] ||
				hb_vcpu_start "$((n / rate + 2))" "$HB_WORK/vcpu-$label-$k.log"
			# shellcheck disable=SC2046 # a list of flags
			out="$("$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" \
				--token-file "$HB_TOKEN" --jobs "$n" --inflight "${KF_HBENCH_INFLIGHT:-64}" \
				--rate "$rate" --label "$label" "${trace[@]}" $(hb_gateway_cpu_flags))"
			echo "$out"
			if [ "${KF_HBENCH_VCPU:-0}" != 0 ]; then
				hb_vcpu_wait
				dips="; $(hb_vcpu_dips "$HB_WORK/vcpu-$label-$k.log" 50 | wc -l) CPU dips over 50 ms"
				echo "  machine CPU dips   ${dips#; }"
			fi
			line="$(grep '^RESULT' <<<"$out")"
			printf 'submit->running p50 / p99 at %s jobs/s offered (2 x %s slots)|p99 <= 20 ms|%s / %s ms (%s jobs/s done; announced p99 %s%s)|%s\n' \
				"$rate" "$slots" "$(hb_field "$line" run_p50_ms)" "$(hb_field "$line" run_p99_ms)" \
				"$(hb_field "$line" rate)" "$(hb_field "$line" announced_p99_ms)" "$dips" \
				"$(hb_field "$line" load)" >>"$HB_WORK/summary"
		done
		hb_stop "$w1" "$w2"
	done
	hb_stop_all

	for fs in ${KF_HBENCH_BS_FSYNC:-50 0}; do
		mkdir -p "$HB_WORK/beanstalkd-$run-$fs"
		hb_spawn "beanstalkd-$fs" beanstalkd -l 127.0.0.1 -p "$HB_BS_PORT" \
			-b "$HB_WORK/beanstalkd-$run-$fs" -f "$fs"
		for ((n = 0; n < 50; n++)); do
			(exec 3<>"/dev/tcp/127.0.0.1/$HB_BS_PORT") 2>/dev/null && break
			sleep 0.1
		done
		out="$("$HB_BENCH/bench_beanstalkd" --addr "127.0.0.1:$HB_BS_PORT" --jobs "$jobs" \
			--producers "${KF_HBENCH_INFLIGHT:-64}" --consumers 2 --label "run$run-f$fs-flood")"
		echo "$out"
		line="$(grep '^RESULT' <<<"$out")"
		bs_rate="$(hb_field "$line" rate)"
		for rate in ${KF_HBENCH_RATES:-100 1000}; do
			n=$((rate * 8))
			[ "$n" -le "$jobs" ] || n="$jobs"
			out="$("$HB_BENCH/bench_beanstalkd" --addr "127.0.0.1:$HB_BS_PORT" --jobs "$n" \
				--producers "${KF_HBENCH_INFLIGHT:-64}" --consumers 2 --rate "$rate" \
				--label "run$run-f$fs-rate$rate")"
			echo "$out"
		done
		hb_stop_all
		ratios=""
		sep=""
		for slots in $slots_list; do
			ratios+="$sep$(awk -v h="${hive_rate[$slots]}" -v b="$bs_rate" \
				'BEGIN { printf "%.3f", h / b }') (2 x $slots slots)"
			sep=", "
		done
		printf 'beanstalkd -b DIR -f %s: jobs/s (%s producers, 2 consumers); hive/beanstalkd|-|%s; ratio %s|%s\n' \
			"$fs" "${KF_HBENCH_INFLIGHT:-64}" "$bs_rate" "$ratios" "$(hb_field "$line" load)" \
			>>"$HB_WORK/summary"
		echo "ratio hive / beanstalkd -f $fs: $ratios"
	done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	hb_init "$@"
	hb_pg_start
	phase_jobs 1
	column -t -s '|' "$HB_WORK/summary"
fi
