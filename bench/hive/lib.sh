# shellcheck shell=bash
# bench/hive/lib.sh — sourced by bench/hive/run-all and the bench_*.sh
# scripts beside it: a throwaway PostgreSQL cluster (scripts/pgtmp), the hive's
# programs on non-default loopback ports, beanstalkd, and cleanup of all of
# it on exit (trap). Each bench_*.sh defines its phase_<name> function.
#
# Environment:
#   KF_HBENCH_PORT_BASE  first of seven loopback ports: ingest, events, rpc,
#                        beanstalkd, commands, monitor, gateway HTTP (default
#                        17600)
#   KF_HBENCH_GATEWAY    monitor or events: run keyforge-gateway beside the
#                        broker (bench_jobs.sh), reading that socket, and count
#                        its CPU; unset (default): no gateway, as in the
#                        figures of docs/performance.md before "The gateway's
#                        share"
#   KF_HBENCH_KEEP=1     keep the work folder (logs) in /tmp after exit
#   KEYFORGE_LOG         log filter of the programs (default info, as shipped)
#   KF_HBENCH_CHRT       a command the programs and beanstalkd run under, e.g.
#                        "chrt -b 0" (SCHED_BATCH); unquoted, split on spaces
#   KF_HBENCH_CGROUP=0   leave the programs and PostgreSQL in the caller's CPU
#                        cgroup, where the kernel's autogroups make each
#                        session a scheduling group of its own; by default
#                        (1) they all run in one group of their own
#                        (scripts/cpugroup, hb_cpu_group)
#   KF_HBENCH_VCPU=1     run bench_vcpu beside each open-loop run of
#                        bench_jobs.sh and say how many CPU dips fell into it
#                        (hb_vcpu_start; docs/performance.md "The machine's
#                        CPU"); tail_probe.sh always does, unless KF_TAIL_VCPU=0
# Figures and commands: docs/performance.md.

HB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HB_PGTMP="$HB_ROOT/scripts/pgtmp"

hb_say() { printf '\n== %s\n' "$*"; }
hb_die() { printf 'bench/hive: error: %s\n' "$*" >&2; exit 1; }
hb_load() { cut -d' ' -f1-3 /proc/loadavg; }

# hb_probe_args RATE SLOTS JOBS "$@": the arguments of the open-loop probes,
# BUILD_DIR [RATE] [SLOTS] [JOBS], the first three being their defaults.
# Without BUILD_DIR prints the script's usage (its lines 2-3) and exits 2;
# sets RATE, SLOTS and JOBS, each a positive number.
hb_probe_args() {
	local v
	RATE="$1" SLOTS="$2" JOBS="$3"
	shift 3
	[ $# -ge 1 ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
	RATE="${2:-$RATE}" SLOTS="${3:-$SLOTS}" JOBS="${4:-$JOBS}"
	for v in "$RATE" "$SLOTS" "$JOBS"; do
		[[ "$v" =~ ^[1-9][0-9]*$ ]] || hb_die "RATE, SLOTS and JOBS are positive numbers"
	done
}

# ---- setup and cleanup ---------------------------------------------------------------

# hb_init BUILD_DIR: checks the programs, makes the work folder, installs the
# cleanup trap, checks the ports.
hb_init() {
	[ $# -ge 1 ] || hb_die "usage: $0 BUILD_DIR"
	HB_BUILD="$(cd "$1" 2>/dev/null && pwd)" || hb_die "no build directory '$1'"
	HB_BROKER="$HB_BUILD/broker/keyforge-broker"
	HB_WORKER="$HB_BUILD/worker/keyforge-worker"
	HB_CTL="$HB_BUILD/admin/keyforgectl"
	HB_BENCH="$HB_BUILD/bench"
	local f
	for f in "$HB_BROKER" "$HB_WORKER" "$HB_CTL" "$HB_BUILD/layout/keyforge-layout" \
		"$HB_BENCH/bench_jobs" "$HB_BENCH/bench_heartbeats" "$HB_BENCH/bench_requeue" \
		"$HB_BENCH/bench_beanstalkd" "$HB_BENCH/bench_vcpu"; do
		[ -x "$f" ] || hb_die "'$f' is not built (ninja -C $HB_BUILD)"
	done
	command -v jq >/dev/null || hb_die "jq is needed (apt-get install jq)"
	"$HB_ROOT/scripts/default-corpus" "$HB_BUILD" >/dev/null || hb_die "no default corpus"

	HB_PORT_BASE="${KF_HBENCH_PORT_BASE:-17600}"
	HB_INGEST="tcp://127.0.0.1:$HB_PORT_BASE"
	HB_EVENTS="tcp://127.0.0.1:$((HB_PORT_BASE + 1))"
	HB_RPC="tcp://127.0.0.1:$((HB_PORT_BASE + 2))"
	# shellcheck disable=SC2034 # used by bench_jobs.sh
	HB_BS_PORT=$((HB_PORT_BASE + 3))
	HB_COMMANDS="tcp://127.0.0.1:$((HB_PORT_BASE + 4))"
	HB_MONITOR="tcp://127.0.0.1:$((HB_PORT_BASE + 5))"
	HB_GATEWAY_HTTP="127.0.0.1:$((HB_PORT_BASE + 6))"
	case "${KF_HBENCH_GATEWAY:-}" in
		"") ;;
		monitor|events) [ -x "$HB_BUILD/gateway/keyforge-gateway" ] ||
			hb_die "'$HB_BUILD/gateway/keyforge-gateway' is not built (ninja -C $HB_BUILD)" ;;
		*) hb_die "KF_HBENCH_GATEWAY must be monitor or events, not '$KF_HBENCH_GATEWAY'" ;;
	esac
	for f in 0 1 2 3 4 5 6; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$((HB_PORT_BASE + f))") 2>/dev/null; then
			hb_die "port $((HB_PORT_BASE + f)) on 127.0.0.1 is taken; set KF_HBENCH_PORT_BASE"
		fi
	done

	# /tmp, and searchable by the postgres user that pgtmp runs the server as.
	HB_WORK="$(mktemp -d /tmp/kfhb-XXXXXX)"
	chmod 0755 "$HB_WORK"
	mkdir -p "$HB_WORK/logs" "$HB_WORK/starts"
	: >"$HB_WORK/pids"
	HB_TOKEN="$HB_WORK/token"
	trap hb_cleanup EXIT
	trap 'exit 130' INT TERM
	export KEYFORGE_LOG="${KEYFORGE_LOG:-info}" KEYFORGE_LOG_FORMAT=human NO_COLOR=1
	hb_cpu_group
}

# hb_cpu_group: moves this script, and so everything it starts from now on
# (PostgreSQL included), into one CPU cgroup of its own, HB_CGROUP, so that
# the broker's --thread-nice ranks its threads against the workers',
# PostgreSQL's and the generator's (scripts/cpugroup says why). Says on
# stderr which it is: the figures differ (docs/performance.md).
hb_cpu_group() {
	HB_CGROUP=""
	[[ "${KF_HBENCH_CGROUP:-1}" =~ ^[01]$ ]] || hb_die "KF_HBENCH_CGROUP is 0 or 1"
	if [ "${KF_HBENCH_CGROUP:-1}" = 0 ]; then
		echo "bench/hive: no CPU group of its own (KF_HBENCH_CGROUP=0)" >&2
		return 0
	fi
	if HB_CGROUP="$("$HB_ROOT/scripts/cpugroup" make "keyforge-bench-$HB_PORT_BASE" $$ 2>"$HB_WORK/logs/cpugroup.log")"; then
		echo "bench/hive: CPU group $HB_CGROUP" >&2
	else
		echo "bench/hive: no CPU group of its own: $(tail -n 1 "$HB_WORK/logs/cpugroup.log")" >&2
		HB_CGROUP=""
	fi
}

# A process's start time (clock ticks since boot, /proc/PID/stat field 22):
# with the pid, it names one process for good.
hb_start_time() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# True when pid runs one of the programs this script started: the same
# process, not a later one that got its pid (pids wrap within minutes
# here, and tests start keyforge programs too).
hb_ours() {
	local exe
	kill -0 "$1" 2>/dev/null || return 1
	[ -f "$HB_WORK/starts/$1" ] && [ "$(hb_start_time "$1")" = "$(cat "$HB_WORK/starts/$1")" ] ||
		return 1
	exe="$(readlink "/proc/$1/exe" 2>/dev/null || true)"
	case "$exe" in
		"$HB_BUILD"/*|*/beanstalkd) return 0 ;;
		*) return 1 ;;
	esac
}

# hb_stop PID...: SIGTERM, then SIGKILL after 10 s.
hb_stop() {
	local pid i alive
	for pid in "$@"; do
		if hb_ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
	done
	for ((i = 0; i < 100; i++)); do
		alive=0
		for pid in "$@"; do
			hb_ours "$pid" && alive=1
		done
		[ "$alive" = 0 ] && return 0
		sleep 0.1
	done
	for pid in "$@"; do
		if hb_ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	done
	return 0
}

hb_cleanup() {
	local rc=$?
	trap - EXIT
	set +e
	if [ -n "${HB_WORK:-}" ] && [ -f "$HB_WORK/pids" ]; then
		hb_stop_all
	fi
	if [ -n "${HB_PGDIR:-}" ]; then
		"$HB_PGTMP" stop "$HB_PGDIR" >/dev/null 2>&1
	fi
	if [ -n "${HB_CGROUP:-}" ]; then
		"$HB_ROOT/scripts/cpugroup" remove "$HB_CGROUP" >&2
	fi
	if [ -n "${HB_WORK:-}" ]; then
		if [ "${KF_HBENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
			echo "bench/hive: logs kept in $HB_WORK/logs" >&2
		else
			rm -rf "$HB_WORK"
		fi
	fi
	exit "$rc"
}

# hb_spawn NAME CMD...: starts CMD in its own session (under
# $KF_HBENCH_CHRT), logs to NAME.log, records its pid; sets HB_PID.
hb_spawn() {
	local name="$1"
	shift
	# shellcheck disable=SC2086 # a command and its flags
	setsid ${KF_HBENCH_CHRT:-} "$@" </dev/null >>"$HB_WORK/logs/$name.log" 2>&1 &
	HB_PID=$!
	disown "$HB_PID" # no "Killed" notice when a benchmark kills it
	echo "$HB_PID" >>"$HB_WORK/pids"
	hb_start_time "$HB_PID" >"$HB_WORK/starts/$HB_PID"
}

# ---- PostgreSQL -----------------------------------------------------------------------------

hb_pg_start() {
	HB_PGDIR="$HB_WORK/pg"
	"$HB_PGTMP" start "$HB_PGDIR" >"$HB_WORK/pg.conninfo" 2>"$HB_WORK/logs/pgtmp.log" \
		|| { cat "$HB_WORK/logs/pgtmp.log" >&2; hb_die "PostgreSQL did not start"; }
}

hb_psql() {
	PGOPTIONS='-c client_min_messages=warning' \
		"$HB_PGTMP" psql "$HB_PGDIR" -X -q -v ON_ERROR_STOP=1 "$@"
}

# hb_db NAME: a fresh database; prints its connection string.
hb_db() {
	hb_psql -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
	sed "s/dbname=[^ ]*/dbname=$1/" "$HB_WORK/pg.conninfo"
}

# hb_insert_jobs DB N: N finished jobs in the schema of sql/, each with its
# attempt: parameters and result as keyforge-worker reports them for a
# zero-step job, counted in job_final_counts; then both tables analyzed.
# For bench_memory.sh and analyze_cost.sh.
hb_insert_jobs() {
	hb_psql -d "$1" -v n="$2" <<'SQL'
BEGIN;
INSERT INTO jobs (state, priority, attempt, max_attempts, attempt_limit, worker_id, lease_token,
                  progress, best_cost, created_at, started_at, finished_at, submit_key,
                  params, result)
SELECT 'succeeded', 0, 1, 3, 3, 'sim-' || lpad((g % 200)::text, 4, '0'), g * 7919,
       1, 100 + (g % 1000) / 100.0,
       now() - interval '3 hours' + g * interval '100 ms',
       now() - interval '3 hours' + g * interval '100 ms' + interval '20 ms',
       now() - interval '3 hours' + g * interval '100 ms' + interval '2 s',
       'bench:' || g,
       jsonb_build_object('seed', g, 'board', 'ansi', 'steps', 1000000, 'corpus', 'default',
           'weights', '{}'::jsonb, 'priority', 0, 'restarts', 1, 'start_temp', 0,
           'deadline_ms', 0, 'max_attempts', 3,
           'start_layout', 'qwertyuiopasdfghjkl;zxcvbnm,./'),
       '{"score": 117.034831596565, "stats": {"lsb": 4.714884990664367, "sfb": 6.389857588898353,
         "sfs": 10.310835677706995, "sft": 0.4429576296364894, "inroll": 18.645313639467968,
         "alt_sfs": 5.286198988811575, "onehand": 2.4126657071823634,
         "outroll": 15.610944551839927, "home_row": 32.525845115844106,
         "redirect": 12.077797970677889, "scissors": 0.9615018607824364,
         "alternate": 19.702129000477154, "left_hand": 57.12570421617531,
         "sfb_trigram": 11.948859229763158, "bad_redirect": 1.4209949569196683},
         "steps": 1000000, "layout": "qwertyuiopasdfghjkl;zxcvbnm,./", "elapsed_ms": 2000,
         "finger_usage": [8.05, 8.40, 19.06, 21.61, 19.14, 8.95, 12.56, 2.22, 0, 0],
         "steps_per_sec": 500000}'::jsonb
  FROM generate_series(1, :n) AS g;
INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, started_at, finished_at)
SELECT id, 1, worker_id, 'succeeded', started_at, finished_at FROM jobs;
-- The final-state counts are kept by the hive's functions (sql/008), which
-- these INSERTs bypass: count them from a scan.
DO $$ BEGIN PERFORM kf_job_final_recount(); END $$;
COMMIT;
ANALYZE jobs;
ANALYZE job_attempts;
SQL
}

# The server processes (postmaster and its children), comma-separated
# "pg<pid>=<pid>" flags for bench_jobs --cpu.
hb_pg_cpu_flags() {
	local pm p
	pm="$(head -n 1 "$HB_PGDIR/data/postmaster.pid")"
	for p in "$pm" $(pgrep -P "$pm"); do
		printf -- '--cpu pg%s=%s ' "$p" "$p"
	done
}

# ---- the hive's programs ------------------------------------------------------------------

hb_ctl() { "$HB_CTL" --rpc "$HB_RPC" --events "$HB_EVENTS" --token-file "$HB_TOKEN" "$@"; }

# hb_broker_start CONNINFO [FLAGS...]: sets HB_BROKER_PID; waits until it
# answers and its database is migrated.
hb_broker_start() {
	local db="$1" i try
	shift
	# A broker that is sent SIGTERM while it starts is started again (twice
	# at most): on this shared machine pids wrap within minutes (pid_max
	# 32768) and a stale-pid kill from someone else's test has hit ours.
	for ((try = 1; try <= 3; try++)); do
		hb_spawn broker "$HB_BROKER" --db "$db" --ingest "$HB_INGEST" --events "$HB_EVENTS" \
			--rpc "$HB_RPC" --commands "$HB_COMMANDS" --monitor "$HB_MONITOR" \
			--token-file "$HB_TOKEN" "$@"
		HB_BROKER_PID=$HB_PID
		for ((i = 0; i < 150; i++)); do
			hb_ours "$HB_BROKER_PID" || break
			hb_ctl --timeout 1s list --limit 1 >/dev/null 2>&1 && return 0
			sleep 0.2
		done
		tail -n 3 "$HB_WORK/logs/broker.log" >&2
		hb_ours "$HB_BROKER_PID" && hb_die "the broker did not become ready within 30 s"
		grep -q 'shutting down signal=' <(tail -n 3 "$HB_WORK/logs/broker.log") ||
			hb_die "the broker exited"
		echo "bench/hive: the broker (pid $HB_BROKER_PID) was signalled while starting; again" >&2
	done
	hb_die "the broker was signalled at every start"
}

# hb_gateway_start CONNINFO: keyforge-gateway on the socket KF_HBENCH_GATEWAY
# names (monitor or events), when it is set; waits for /health/live. Sets
# HB_GATEWAY_PID (empty without a gateway).
hb_gateway_start() {
	local url="$HB_MONITOR" i
	HB_GATEWAY_PID=""
	[ -n "${KF_HBENCH_GATEWAY:-}" ] || return 0
	[ "$KF_HBENCH_GATEWAY" = monitor ] || url="$HB_EVENTS"
	hb_spawn gateway "$HB_BUILD/gateway/keyforge-gateway" --http "$HB_GATEWAY_HTTP" \
		--monitor "$url" --db "$1"
	HB_GATEWAY_PID=$HB_PID
	for ((i = 0; i < 100; i++)); do
		curl -fs "http://$HB_GATEWAY_HTTP/health/live" >/dev/null 2>&1 && return 0
		hb_ours "$HB_GATEWAY_PID" || break
		sleep 0.1
	done
	tail -n 3 "$HB_WORK/logs/gateway.log" >&2
	hb_die "the gateway did not start"
}

# "--cpu gateway=PID" when a gateway runs, for bench_jobs.
hb_gateway_cpu_flags() {
	[ -z "${HB_GATEWAY_PID:-}" ] || printf -- '--cpu gateway=%s ' "$HB_GATEWAY_PID"
}

# hb_worker_start ID [FLAGS...]: sets HB_PID.
hb_worker_start() {
	local id="$1"
	shift
	hb_spawn "worker-$id" "$HB_WORKER" --id "$id" --ingest "$HB_INGEST" \
		--commands "$HB_COMMANDS" --rpc "$HB_RPC" "$@"
}

# hb_wait_alive N: until the broker counts N alive workers (30 s).
hb_wait_alive() {
	local i n
	for ((i = 0; i < 150; i++)); do
		n="$(hb_ctl --timeout 1s workers --json 2>/dev/null |
			jq '[.workers[] | select(.liveness == "alive")] | length' 2>/dev/null || echo 0)"
		[ "${n:-0}" -ge "$1" ] && return 0
		sleep 0.2
	done
	hb_die "fewer than $1 workers alive after 30 s"
}

# hb_pid_of ID: the pid the broker reports for worker ID.
hb_pid_of() {
	hb_ctl workers --json | jq -r --arg id "$1" '.workers[] | select(.id == $id) | .pid'
}

# Stops everything the current phase started except PostgreSQL: first all
# but the broker (a worker exits once its lease long-poll returns, which
# takes seconds longer when the broker is already gone), then the broker.
hb_stop_all() {
	local pids
	pids="$(grep -vx "${HB_BROKER_PID:-none}" "$HB_WORK/pids" || true)"
	# shellcheck disable=SC2086 # a list of pids
	[ -n "$pids" ] && hb_stop $pids
	[ -n "${HB_BROKER_PID:-}" ] && hb_stop "$HB_BROKER_PID"
	: >"$HB_WORK/pids"
}

# hb_rss PID: "VmRSS VmHWM" in KiB.
hb_rss() {
	awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' "/proc/$1/status"
}

hb_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---- the machine's CPU dips -----------------------------------------------------------

# hb_vcpu_start SECONDS FILE: bench_vcpu in the background for SECONDS, one
# thread busy 5 % of the time at SCHED_FIFO 99 (so that no thread of the hive
# can slow it: what does is outside the machine), its report in FILE. Sets
# HB_VCPU_PID. It runs in the parent of the hive's CPU group (hb_cpu_group):
# it probes the machine, not the hive, and a cgroup v1 group of the cpu
# controller has no real-time budget (cpu.rt_runtime_us 0), so inside it
# SCHED_FIFO is refused. Without the privilege for real-time priority it
# runs at normal priority and says so.
hb_vcpu_start() {
	(
		if [ -n "$HB_CGROUP" ]; then
			echo "$BASHPID" >"$(dirname "$HB_CGROUP")/cgroup.procs" 2>/dev/null ||
				echo "bench/hive: bench_vcpu stays in the CPU group $HB_CGROUP" >&2
		fi
		rt=(chrt -f 99)
		"${rt[@]}" true 2>/dev/null ||
			{ rt=(); echo "bench/hive: bench_vcpu without real-time priority" >&2; }
		exec "${rt[@]}" "$HB_BENCH/bench_vcpu" --seconds "$1" --duty 5 >"$2"
	) &
	HB_VCPU_PID=$!
}

# hb_vcpu_wait: waits for the bench_vcpu of hb_vcpu_start.
hb_vcpu_wait() {
	wait "$HB_VCPU_PID" || hb_die "bench_vcpu failed"
}

# hb_vcpu_dips FILE MIN_MS: the dips of MIN_MS or longer in a bench_vcpu
# report, one per line: wall-clock start (s) and length (ms).
hb_vcpu_dips() {
	awk -v min="$2" '/ from [0-9.]+ \(wall clock/ { v0 = $0; sub(/.* from /, "", v0); sub(/ .*/, "", v0) }
		/ dip at / && $7 >= min { printf "%.3f %.0f\n", v0 + $5, $7 }' "$1"
}

# A RESULT value: hb_field LINE KEY.
hb_field() { sed -n "s/.* $2=\\([^ ]*\\).*/\\1/p" <<<"$1" | tr -d '"'; }
