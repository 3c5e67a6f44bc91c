#!/usr/bin/env bash
# bench/hive/slot_cycle.sh BUILD_DIR [JOBS] — where one slot's time goes.
# JOBS zero-step jobs (default 3000) are queued first; then ONE
# keyforge-worker with one slot drains them alone, logging at debug. Each
# job's cycle is cut at four instants, two from the worker's log and two
# from PostgreSQL's clock_timestamp() (same machine, same clock):
#   claimed   the claim statement ran (jobs.started_at)
#   started   the worker began the job ("job started")
#   reported  the worker sent its report ("job completed", just before)
#   recorded  the report statement ran (jobs.finished_at)
# and prints the medians of: claimed → started (commit, answer to the
# worker), started → reported (the job), reported → recorded (the request to
# the database statement), recorded → next claimed (the rest of the
# transaction: the claim of the next job rides with the report). The debug
# log costs the worker a little: compare the drain rate with
# KEYFORGE_LOG=info (printed too). Figures: docs/performance.md.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
JOBS="${2:-3000}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ && "$JOBS" -ge 300 ]] || hb_die "JOBS is a number >= 300"

# drain NAME LOGLEVEL: queue JOBS jobs, drain them with one worker; prints
# "jobs/s" over the jobs after the first 100 (warm-up).
drain() {
	local name="$1" level="$2" db bp n w
	db="$(hb_db "$name")"
	hb_broker_start "$db"
	"$HB_BENCH/bench_jobs" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" \
		--jobs "$JOBS" --inflight 64 --timeout 300 >"$HB_WORK/$name.bench" 2>&1 &
	bp=$!
	for ((n = 0; n < 600; n++)); do
		[ "$(hb_psql -d "$name" -At -c "SELECT count(*) FROM jobs")" -ge "$JOBS" ] && break
		sleep 0.1
	done
	KEYFORGE_LOG="$level" hb_worker_start "$name"
	w=$HB_PID
	wait "$bp" || hb_die "bench_jobs failed: $(tail -n 3 "$HB_WORK/$name.bench")"
	hb_stop "$w"
	hb_stop "$HB_BROKER_PID"
	hb_psql -d "$name" -At -c "
		SELECT round(count(*) / extract(epoch FROM max(finished_at) - min(started_at)))
		  FROM (SELECT started_at, finished_at FROM jobs WHERE state = 'succeeded'
		         ORDER BY id OFFSET 100) AS j"
}

hb_init "$1"
hb_pg_start
echo "slot_cycle: $JOBS zero-step jobs queued, then one worker x 1 slot, load $(hb_load)"
echo "  jobs/s, worker at info   $(drain cycinfo info)"
echo "  jobs/s, worker at debug  $(drain cycdebug debug)"

# Seconds of the day (UTC) of each instant, per job: id claimed started
# reported recorded.
hb_psql -d cycdebug -At -F' ' -c "
	SELECT id, extract(epoch FROM started_at)::numeric % 86400,
	       extract(epoch FROM finished_at)::numeric % 86400
	  FROM jobs WHERE state = 'succeeded' ORDER BY id OFFSET 100" >"$HB_WORK/db.times"
awk '
	function sec(ts,   t) { t = substr(ts, 12, 15); split(t, h, ":");
		return h[1] * 3600 + h[2] * 60 + h[3] }
	/job started/ && match($0, /job_id=[0-9]+/) {
		printf "%s s %.6f\n", substr($0, RSTART + 7, RLENGTH - 7), sec($1) }
	/job completed/ && match($0, /job_id=[0-9]+/) {
		printf "%s r %.6f\n", substr($0, RSTART + 7, RLENGTH - 7), sec($1) }' \
	"$HB_WORK/logs/worker-cycdebug.log" >"$HB_WORK/worker.times"
# Per job: the four intervals and the whole cycle, in microseconds.
awk '
	NR == FNR { claimed[$1] = $2; recorded[$1] = $3; ids[++n] = $1; next }
	$2 == "s" { started[$1] = $3 }
	$2 == "r" { reported[$1] = $3 }
	END {
		for (i = 1; i < n; i++) {
			id = ids[i]; nx = ids[i + 1]
			if ((id in started) && (id in reported) && (nx in claimed))
				printf "%.0f %.0f %.0f %.0f %.0f\n",
					(started[id] - claimed[id]) * 1e6, (reported[id] - started[id]) * 1e6,
					(recorded[id] - reported[id]) * 1e6, (claimed[nx] - recorded[id]) * 1e6,
					(claimed[nx] - claimed[id]) * 1e6
		}
	}' "$HB_WORK/db.times" "$HB_WORK/worker.times" >"$HB_WORK/cycles"
k="$(wc -l <"$HB_WORK/cycles")"
[ "$k" -gt 0 ] || hb_die "no job with all four instants (see $HB_WORK/logs)"
median() { cut -d' ' -f"$1" "$HB_WORK/cycles" | sort -n | sed -n "$(((k + 1) / 2))p"; }
echo "  medians over $k jobs (worker at debug):"
printf '    claimed -> started      %6s us  commit, answer to the worker\n' "$(median 1)"
printf '    started -> reported     %6s us  the job\n' "$(median 2)"
printf '    reported -> recorded    %6s us  the request, to its statement\n' "$(median 3)"
printf '    recorded -> next claim  %6s us  the rest of the statement and the claim\n' "$(median 4)"
printf '    whole cycle             %6s us\n' "$(median 5)"
hb_stop_all
