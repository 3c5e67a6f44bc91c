#!/usr/bin/env bash
# bench/hive/wal_per_job.sh BUILD_DIR [JOBS] — how much WAL one job writes.
# A flood of JOBS zero-step jobs (default 5000) through a broker and 2
# keyforge-workers of 8 slots; the WAL position before and after gives the
# bytes per job, and pg_walinspect (PostgreSQL 15 contrib) splits them by
# record type. Unlike a rate, this figure does not depend on how busy the
# machine is: it changes only with the schema and the statements, so it is
# the one to compare when either changes. The broker's own sweeps write a
# little WAL too (a few records a second). Figures: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || { sed -n '2,2p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
JOBS="${2:-5000}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || hb_die "JOBS is a number"

hb_init "$1"
hb_pg_start
db="$(hb_db walpj)"
hb_broker_start "$db"
hb_worker_start ww1 --slots 8
w1=$HB_PID
hb_worker_start ww2 --slots 8
w2=$HB_PID
hb_wait_alive 2
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs 40 --inflight 8 >/dev/null   # warm-up: corpus and scorer loaded
hb_psql -d walpj -c "CREATE EXTENSION IF NOT EXISTS pg_walinspect" >/dev/null

from="$(hb_psql -d walpj -Atc "SELECT pg_current_wal_lsn()")"
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs "$JOBS" --label "wal-per-job" | grep -E '^  jobs/s'
to="$(hb_psql -d walpj -Atc "SELECT pg_current_wal_lsn()")"
hb_stop "$w1" "$w2"

hb_psql -d walpj -Atc "SELECT 'WAL per job: ' || round(pg_wal_lsn_diff('$to', '$from') / $JOBS) ||
	' bytes (' || pg_size_pretty(pg_wal_lsn_diff('$to', '$from')) || ' for $JOBS jobs)'"
# Record types above 0.5 % of the bytes, per job.
hb_psql -d walpj -P footer=off -c "
	SELECT \"resource_manager/record_type\" AS record,
	       round(count::numeric / $JOBS, 2) AS per_job,
	       round(combined_size::numeric / $JOBS) AS bytes_per_job,
	       round(combined_size_percentage::numeric, 1) AS pct
	  FROM pg_get_wal_stats('$from', '$to', true)
	 WHERE combined_size_percentage >= 0.5
	 ORDER BY combined_size DESC"
