#!/usr/bin/env bash
# bench/hive/analyze_cost.sh BUILD_DIR [JOBS...] — what one ANALYZE of jobs
# costs with the statistics targets sql/ ships (003: none for the wide
# columns; 010: 10 for the rest) against PostgreSQL's default target (100)
# for the rest, in tables of JOBS finished jobs (default: 20000 100000).
# For each size: a fresh database migrated by the broker, the jobs inserted
# (hb_insert_jobs), then KF_ANALYZE_ROUNDS rounds (default 5), each timing
# one ANALYZE jobs with the shipped targets and one with the default, in
# alternation. Prints every time, the median of each way, and the sample
# ANALYZE VERBOSE reports. Figures: docs/database.md, sql/010.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
ROUNDS="${KF_ANALYZE_ROUNDS:-5}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || hb_die "KF_ANALYZE_ROUNDS is a positive number"
build="$1"
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(20000 100000)
for n in "${sizes[@]}"; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || hb_die "JOBS are positive numbers, not '$n'"
done

# set_targets DB TARGET: every column of jobs that 010 gave a target of 10
# (the shipped value) gets TARGET; -1 is PostgreSQL's default.
set_targets() {
	hb_psql -d "$1" -At -v t="$2" <<'SQL' >/dev/null
SELECT format('ALTER TABLE jobs ALTER COLUMN %I SET STATISTICS %s', a.attname, :'t')
  FROM pg_attribute a
 WHERE a.attrelid = 'jobs'::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attname NOT IN ('params', 'result', 'error', 'submit_key')
\gexec
SQL
}

# analyze_ms DB: the wall time of one ANALYZE jobs, in ms, as psql measures it.
analyze_ms() {
	hb_psql -d "$1" -c '\timing on' -c 'ANALYZE jobs' | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}

# sample_line DB: what ANALYZE VERBOSE says it read.
sample_line() {
	hb_psql -d "$1" -c 'ANALYZE VERBOSE jobs' 2>&1 | sed -n 's/^INFO: *"jobs": //p' | head -n 1
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

hb_init "$build"
hb_pg_start
for n in "${sizes[@]}"; do
	db="$(hb_db "analyze$n")"
	hb_broker_start "$db" # applies the migrations
	hb_stop "$HB_BROKER_PID"
	# No autovacuum analyze of the table between (or during) the timed ones.
	hb_psql -d "analyze$n" -c "ALTER TABLE jobs SET (autovacuum_enabled = off)"
	hb_insert_jobs "analyze$n" "$n" >/dev/null
	hb_say "ANALYZE jobs with $n finished jobs ($ROUNDS rounds, load $(hb_load))"
	shipped=() default=()
	for ((r = 1; r <= ROUNDS; r++)); do
		set_targets "analyze$n" 10
		shipped+=("$(analyze_ms "analyze$n")")
		set_targets "analyze$n" -1
		default+=("$(analyze_ms "analyze$n")")
	done
	printf '  targets 10 (shipped)    %s ms; median %s ms\n' "${shipped[*]}" \
		"$(printf '%s\n' "${shipped[@]}" | median)"
	printf '  targets 100 (default)   %s ms; median %s ms\n' "${default[*]}" \
		"$(printf '%s\n' "${default[@]}" | median)"
	printf '  sample, default: %s\n' "$(sample_line "analyze$n")"
	set_targets "analyze$n" 10
	printf '  sample, shipped: %s\n' "$(sample_line "analyze$n")"
	hb_psql -d postgres -c "DROP DATABASE analyze$n"
done
