#!/usr/bin/env bash
# bench/hive/stmt_probe.sh BUILD_DIR [RATE] [SLOTS] [JOBS] — where the broker's
# database connection spends its time. One open-loop run of JOBS zero-step
# jobs (default 8000) at RATE jobs/s (default 1000) through a broker and 2
# keyforge-workers of SLOTS slots (default 8), on a PostgreSQL that loads
# pg_stat_statements (top-level statements and those run inside the hive's
# PL/pgSQL functions); then prints every statement's calls, total and mean
# execution time and rows, and the share of the run's wall time the
# top-level statements took on the broker's one connection. The counters are
# reset after the warm-up, so the figures cover the measured run only.
# KF_STMT_SQL=SQL runs SQL on the hive's database once the broker has
# migrated it, before the warm-up, and then reloads the server's
# configuration: a what-if (an index dropped, an ALTER SYSTEM setting)
# measured without a migration.
# KF_STMT_PLANNING=1 also times the planning of each statement
# (pg_stat_statements.track_planning; it costs a little itself).
# Environment: KF_STMT_SQL, KF_STMT_PLANNING, and lib.sh's (KF_HBENCH_PORT_BASE,
# KF_HBENCH_KEEP, KEYFORGE_LOG).
# Figures: docs/performance.md, "Another machine, and the database connection"
# and "The final counts without triggers".
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

hb_probe_args 1000 8 8000 "$@"

hb_init "$1"
hb_pg_start
hb_psql -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
"$HB_PGTMP" restart "$HB_PGDIR" >/dev/null 2>>"$HB_WORK/logs/pgtmp.log" ||
	hb_die "PostgreSQL did not restart with pg_stat_statements"
# Known only once the library is loaded.
hb_psql -d postgres -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" \
	-c "SELECT pg_reload_conf()" >/dev/null
db="$(hb_db stmt)"
hb_psql -d stmt -c "CREATE EXTENSION pg_stat_statements" >/dev/null
hb_broker_start "$db"
hb_worker_start sw1 --slots "$SLOTS"
hb_worker_start sw2 --slots "$SLOTS"
hb_wait_alive 2
if [ -n "${KF_STMT_SQL:-}" ]; then
	hb_psql -d stmt -c "$KF_STMT_SQL" -c "SELECT pg_reload_conf()" >/dev/null ||
		hb_die "KF_STMT_SQL failed"
fi
if [ "${KF_STMT_PLANNING:-0}" = 1 ]; then
	hb_psql -d postgres -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" \
		-c "SELECT pg_reload_conf()" >/dev/null
fi
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs 40 --inflight 8 >/dev/null   # warm-up: corpus and scorer loaded
hb_psql -d stmt -c "SELECT pg_stat_statements_reset()" >/dev/null
"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
	--jobs "$JOBS" --rate "$RATE" --label "stmt-rate$RATE-slots$SLOTS" >"$HB_WORK/run.out"
grep -E '^  (jobs/s|submit->running|database|machine)' "$HB_WORK/run.out"
secs="$(hb_field "$(grep '^RESULT' "$HB_WORK/run.out")" secs)"

# Statements of the broker's database only; a statement's text is cut to
# its first 60 characters, whitespace folded. plan_ms is 0 unless
# KF_STMT_PLANNING=1; a statement planned and never run has no mean.
hb_psql -d stmt -P pager=off -P footer=off -c "
	SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
	       round((total_exec_time / NULLIF(calls, 0) * 1000)::numeric, 1) AS mean_us,
	       round(total_plan_time::numeric, 1) AS plan_ms, rows,
	       CASE WHEN toplevel THEN 'top' ELSE 'nested' END AS level,
	       left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS statement
	FROM pg_stat_statements
	WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'stmt')
	ORDER BY toplevel DESC, total_exec_time DESC"
hb_psql -d stmt -At -c "
	SELECT 'top-level statements: ' || sum(calls) || ' calls, '
	       || round(sum(total_exec_time)::numeric) || ' ms of execution and '
	       || round(sum(total_plan_time)::numeric) || ' ms of planning = '
	       || round((sum(total_exec_time + total_plan_time) / 10 / $secs)::numeric, 1)
	       || ' % of the run''s ' || $secs || ' s'
	FROM pg_stat_statements
	WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = 'stmt')"
