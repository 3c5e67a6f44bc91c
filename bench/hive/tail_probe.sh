#!/usr/bin/env bash
# bench/hive/tail_probe.sh BUILD_DIR [RATE] [SLOTS] [JOBS] — where the tail of
# submit→running comes from. One open-loop run of JOBS zero-step jobs
# (default 10000) at RATE jobs/s (default 500) through a broker and 2
# keyforge-workers of SLOTS slots (default 8), with bench_jobs --trace, while
#   - PostgreSQL logs every autovacuum and autoanalyze
#     (log_autovacuum_min_duration = 0), and
#   - a watcher notes each new WAL segment file in pg_wal (a fresh cluster
#     creates and zero-fills one per 16 MB of WAL: no checkpoint has freed
#     one to recycle yet), and
#   - the broker logs each database transaction that takes KF_TAIL_DB_SLOW
#     ms or more (default 5: --db-slow; a transaction of one job's requests
#     takes 0.2-1 ms), and
#   - bench_vcpu, at real-time priority and busy 5 % of the time (one
#     thread), notes when the machine's CPUs ran slow for reasons no
#     process of the machine can cause (KF_TAIL_VCPU=0 leaves it out):
#     the hypervisor's dips, docs/performance.md "The machine's CPU".
# Then it prints the stall windows — runs of jobs whose submit→running took
# more than KF_TAIL_MS (default 20) ms, merged when less than 100 ms apart —
# on one time line with those events, in seconds since the first submit.
# KF_TAIL_FLOOD=N first pushes N jobs through as fast as they go, as
# run-all's flood does before its open-loop runs (default 0).
# Environment: KF_TAIL_MS, KF_TAIL_FLOOD, KF_TAIL_DB_SLOW, KF_TAIL_VCPU, and
# lib.sh's (KF_HBENCH_PORT_BASE, KF_HBENCH_KEEP, KEYFORGE_LOG). Figures:
# docs/performance.md, "Where the tail comes from" and "The machine's CPU".
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

hb_probe_args 500 8 10000 "$@"
TAIL_MS="${KF_TAIL_MS:-20}"
FLOOD="${KF_TAIL_FLOOD:-0}"
DB_SLOW="${KF_TAIL_DB_SLOW:-5}"
for v in "$TAIL_MS" "$((FLOOD + 1))" "$DB_SLOW"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || hb_die "KF_TAIL_MS, KF_TAIL_FLOOD and KF_TAIL_DB_SLOW are numbers"
done

# watch_wal DIR: prints "epoch_seconds count" whenever the number of WAL
# segment files in DIR changes. No process per poll: a forking loop every
# few milliseconds would itself disturb the run it watches.
watch_wal() {
	local dir="$1" fifo="$HB_WORK/walwatch.fifo" prev=-1 files
	mkfifo "$fifo"
	exec 9<>"$fifo"
	shopt -s nullglob
	while :; do
		files=("$dir"/0*)
		if [ "${#files[@]}" != "$prev" ]; then
			prev="${#files[@]}"
			echo "$EPOCHREALTIME $prev"
		fi
		read -r -t 0.005 -u 9 _ || true
	done
}

hb_init "$1"
hb_pg_start
hb_psql -d postgres -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" \
	-c "SELECT pg_reload_conf()" >/dev/null
db="$(hb_db tail)"
hb_broker_start "$db" --db-slow "$DB_SLOW"
hb_worker_start tw1 --slots "$SLOTS"
w1=$HB_PID
hb_worker_start tw2 --slots "$SLOTS"
w2=$HB_PID
hb_wait_alive 2
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs 40 --inflight 8 >/dev/null   # warm-up: corpus and scorer loaded
if [ "$FLOOD" -gt 0 ]; then
	"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
		--jobs "$FLOOD" --label "tail-flood" | grep -E '^  jobs/s'
fi

watch_wal "$HB_PGDIR/data/pg_wal" >"$HB_WORK/wal.log" &
watcher=$!
vcpu=""
if [ "${KF_TAIL_VCPU:-1}" != 0 ]; then
	hb_vcpu_start "$((JOBS / RATE + 2))" "$HB_WORK/vcpu.log"
	vcpu=1
fi
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs "$JOBS" --rate "$RATE" --label "tail-rate$RATE-slots$SLOTS" \
	--trace "$HB_WORK/jobs.trace" | grep -v '^RESULT'
kill "$watcher"
wait "$watcher" 2>/dev/null || true
hb_stop "$w1" "$w2"
[ -z "$vcpu" ] || hb_vcpu_wait

t0="$(sed -n 's/^# first submit at \([0-9.]*\).*/\1/p' "$HB_WORK/jobs.trace")"
{
	# New WAL segment files (the first line is the count at the start).
	awk -v t0="$t0" 'NR > 1 && $2 > prev { printf "%9.2f  WAL segment file created (%d in pg_wal)\n", $1 - t0, $2 }
		{ prev = $2 }' "$HB_WORK/wal.log"
	# Autovacuum and autoanalyze of the hive's tables: the first line of a
	# log entry names the table, the entry's last line ("system usage")
	# has the CPU and elapsed time; the entry is logged when it ends.
	awk -v t0="$t0" '
		/automatic (aggressive )?(vacuum|analyze) of table "tail\./ {
			split($2, hms, ":"); t = hms[1] * 3600 + hms[2] * 60 + hms[3]
			day = t0 - (t0 % 86400); what = $0
			sub(/.*automatic /, "", what); sub(/:.*/, "", what)
			at = day + t - t0; pending = 1; next
		}
		pending && /system usage: CPU:/ {
			line = $0; sub(/.*CPU: /, "", line)
			printf "%9.2f  %s ends (%s)\n", at, what, line; pending = 0
		}' "$HB_PGDIR/postgres.log"
	# The broker's slow transactions: logged when they end, placed where
	# they began.
	awk -v t0="$t0" '/ WARN .*slow database transaction / {
			split(substr($1, 12, 15), hms, ":"); t = hms[1] * 3600 + hms[2] * 60 + hms[3]
			day = t0 - (t0 % 86400); ms = $0; sub(/.* ms=/, "", ms); sub(/ .*/, "", ms)
			what = $0; sub(/.*slow database transaction /, "", what)
			printf "%9.3f  slow transaction: %s\n", day + t - ms / 1000 - t0, what
		}' "$HB_WORK/logs/broker.log"
	# The CPU dips of 5 ms or longer.
	[ -z "$vcpu" ] || hb_vcpu_dips "$HB_WORK/vcpu.log" 5 |
		awk -v t0="$t0" '{ printf "%9.3f  CPU DIP %s ms: the machine ran slow\n", $1 - t0, $2 }'
	# Stall windows from the trace: submit time, submit→running.
	awk -v lim="$TAIL_MS" '!/^#/ && $4 != "-" && $4 - $2 > lim { print $2, $4 - $2 }' \
		"$HB_WORK/jobs.trace" | sort -n |
		awk 'function out() { printf "%9.2f  STALL %.0f ms long: %d jobs over the limit, worst %.1f ms\n",
				start / 1000, last - start, n, worst }
			{ if (n && $1 - last > 100) { out(); n = 0 }
			  if (!n) { start = $1; worst = 0 }
			  n++; last = $1; if ($2 > worst) worst = $2 }
			END { if (n) out() }'
} | sort -n
echo "(seconds since the first submit; STALL: jobs submitted in that window waited > $TAIL_MS ms to run)"
