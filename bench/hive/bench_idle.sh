#!/usr/bin/env bash
# bench/hive/bench_idle.sh BUILD_DIR — what an idle hive costs the machine:
# a broker and N keyforge-workers with no job, for S seconds after they
# settle. Prints, per process, CPU (% of one core) and wake-ups a second
# (voluntary context switches of all its threads, summed), and the share of
# both cores busy (/proc/stat). Starts and stops its own PostgreSQL, broker
# and workers on loopback ports KF_HBENCH_PORT_BASE..
#
# Environment (defaults): KF_HBENCH_IDLE_WORKERS=20 workers,
# KF_HBENCH_SLOTS=1 slots each, KF_HBENCH_IDLE_SECS=20 seconds measured.
# Figures and commands: docs/performance.md, "An idle hive".
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# idle_sample PID: "TICKS SWITCHES" — CPU clock ticks (user + system) and
# voluntary context switches of every thread so far.
idle_sample() {
	local ticks sw
	ticks="$(sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }')"
	sw="$(cat /proc/"$1"/task/*/status 2>/dev/null |
		awk '/^voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')"
	echo "$ticks $sw"
}

# The busy and total jiffies of the machine (first line of /proc/stat).
idle_machine() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

phase_idle() {
	local n="${KF_HBENCH_IDLE_WORKERS:-20}" secs="${KF_HBENCH_IDLE_SECS:-20}"
	local slots="${KF_HBENCH_SLOTS:-1}" hz db i pid
	local -a pids=() before=() after=()
	local m0 m1
	hz="$(getconf CLK_TCK)"
	hb_say "idle hive: broker + $n workers of $slots slot(s), $secs s (load $(hb_load))"
	db="$(hb_db idle)"
	hb_broker_start "$db"
	for ((i = 1; i <= n; i++)); do
		hb_worker_start "idle-w$i" --slots "$slots"
		pids+=("$HB_PID")
	done
	hb_wait_alive "$n"
	sleep 5 # past the start: hellos, first heartbeats, the writers' last lines
	pids=("$HB_BROKER_PID" "${pids[@]}")
	m0="$(idle_machine)"
	for pid in "${pids[@]}"; do before+=("$(idle_sample "$pid")"); done
	sleep "$secs"
	for pid in "${pids[@]}"; do after+=("$(idle_sample "$pid")"); done
	m1="$(idle_machine)"
	for ((i = 0; i < ${#pids[@]}; i++)); do
		echo "${before[$i]} ${after[$i]}"
	done | awk -v hz="$hz" -v secs="$secs" -v m0="$m0" -v m1="$m1" -v n="$n" '
		{ cpu = ($3 - $1) * 100 / hz / secs; wk = ($4 - $2) / secs }
		NR == 1 { bcpu = cpu; bwk = wk; next }
		{ wcpu += cpu; wwk += wk; if (wk > wmax) wmax = wk; if (cpu > cmax) cmax = cpu }
		END {
			split(m0, a, " "); split(m1, b, " ")
			busy = (b[1] - a[1]) * 100 / (b[2] - a[2])
			printf "broker: %.2f %% CPU, %.1f wake-ups/s\n", bcpu, bwk
			printf "workers: %.2f %% CPU each on average (max %.2f), %.1f wake-ups/s each (max %.1f)\n",
				wcpu / n, cmax, wwk / n, wmax
			printf "machine: %.1f %% of both cores busy\n", busy
			printf "RESULT workers=%d broker_cpu_pct=%.2f broker_wakeups=%.1f worker_cpu_pct=%.3f worker_wakeups=%.1f machine_busy_pct=%.1f\n",
				n, bcpu, bwk, wcpu / n, wwk / n, busy
		}'
	hb_stop_all
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	hb_init "$@"
	hb_pg_start
	phase_idle
fi
