#!/usr/bin/env bash
# test_tls.sh — the hive over mutual TLS, end to end (TAP).
#
# DESIGN.md §1: remote workers and operators reach the broker over
# tls+tcp:// with mutual TLS, certificates from files (docs/bus.md §7). A
# throwaway CA signs the broker's certificate (DNS broker.hive), a worker's
# and an operator's; a second CA signs an impostor's. The broker listens on
# tls+tcp:// only, all five sockets, on loopback ports; a worker, keyforgectl
# and a gateway reach it with KEYFORGE_TLS_* from the environment, as the
# docs say. Checked: a job runs to success on the TLS worker and its result
# is stored; heartbeats arrive (the worker is alive); the log stream follows
# over TLS; the gateway's /metrics counts the job from the TLS monitor socket.
# Refused, each with keyforgectl's "unreachable" exit status 4 and nothing
# done: no client certificate, a certificate of another CA, plain tcp:// to a
# TLS port, a wrong server name, a client that trusts another CA. A worker with the impostor's certificate never
# registers. The broker refuses to start on tls+tcp:// without certificates
# (exit 1, a clear message), and is still serving at the end.
#
# Environment (set by meson): KF_BUILD_ROOT, KF_SOURCE_ROOT. Exit 77 (skip)
# when a program or openssl is missing. About 20 s.
set -uo pipefail

BUILD="${KF_BUILD_ROOT:?KF_BUILD_ROOT is not set}"
SRC="${KF_SOURCE_ROOT:?KF_SOURCE_ROOT is not set}"
CTL="$BUILD/admin/keyforgectl"
BROKER="$BUILD/broker/keyforge-broker"
WORKER="$BUILD/worker/keyforge-worker"
GATEWAY="$BUILD/gateway/keyforge-gateway"
LAYOUT_TOOL="$BUILD/layout/keyforge-layout"
PGTMP="$SRC/scripts/pgtmp"

for bin in "$CTL" "$BROKER" "$WORKER" "$GATEWAY" "$LAYOUT_TOOL"; do
	if [ ! -x "$bin" ]; then
		echo "1..0 # SKIP $(basename "$bin") is not built"
		exit 77
	fi
done
for cmd in openssl jq curl; do
	command -v "$cmd" >/dev/null || { echo "1..0 # SKIP $cmd is not installed"; exit 77; }
done

TMP="$(mktemp -d /tmp/kf-tls-test-XXXXXX)"
chmod 755 "$TMP" # pgtmp's server runs as postgres when we are root
unset KEYFORGE_RPC KEYFORGE_EVENTS KEYFORGE_INGEST KEYFORGE_COMMANDS KEYFORGE_MONITOR \
	KEYFORGE_HTTP KEYFORGE_TOKEN_FILE KEYFORGE_DB KEYFORGE_TLS_CERT KEYFORGE_TLS_KEY \
	KEYFORGE_TLS_CA KEYFORGE_TLS_SERVER_NAME

# shellcheck source=SCRIPTDIR/../lib/hive_test.sh
. "$SRC/tests/lib/hive_test.sh"

PIDS=""
PGDIR=""
cleanup() {
	local pid
	# (wait: bash reports each job it reaps as "Killed" on stderr, not here)
	for pid in $PIDS; do { kill -KILL "$pid" && wait "$pid"; } 2>/dev/null; done
	[ -n "$PGDIR" ] && "$PGTMP" stop "$PGDIR" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---- certificates ------------------------------------------------------------------------

# new_ca NAME; new_cert CA NAME DNS: EC P-256, as docs/bus.md §7 shows.
new_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$TMP/$1.key" -out "$TMP/$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null
}
new_cert() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$TMP/$2.key" -out "$TMP/$2.csr" -subj "/CN=$3" 2>/dev/null &&
		printf 'subjectAltName=DNS:%s\n' "$3" >"$TMP/$2.ext" &&
		openssl x509 -req -in "$TMP/$2.csr" -CA "$TMP/$1.pem" -CAkey "$TMP/$1.key" \
			-CAcreateserial -out "$TMP/$2.pem" -days 2 -extfile "$TMP/$2.ext" 2>/dev/null
}
if new_ca ca && new_ca rogue-ca && new_cert ca broker broker.hive &&
	new_cert ca worker worker.hive && new_cert ca operator operator.hive &&
	new_cert rogue-ca impostor worker.hive; then
	ok "certificates: a CA for broker, worker and operator; another CA for an impostor"
else
	not_ok "certificates (openssl)"
	echo "1..$N"
	exit 1
fi

# tls_env NAME [CA]: TLS_ENV, the environment of a program holding NAME's
# certificate and trusting CA (default: the hive's), for `env`: a program
# started in the background through env keeps env's pid, which cleanup kills.
tls_env() {
	TLS_ENV=(KEYFORGE_TLS_CERT="$TMP/$1.pem" KEYFORGE_TLS_KEY="$TMP/$1.key"
		KEYFORGE_TLS_CA="$TMP/${2:-ca}.pem" KEYFORGE_TLS_SERVER_NAME=broker.hive)
}

# ---- the broker on tls+tcp:// ---------------------------------------------------------------

hive_corpus
hive_ports
TLS="tls+tcp://127.0.0.1"
INGEST="$TLS:$BASE" EVENTS="$TLS:$((BASE + 1))" RPC="$TLS:$((BASE + 2))"
COMMANDS="$TLS:$((BASE + 3))" MONITOR="$TLS:$((BASE + 4))" HTTP="127.0.0.1:$((BASE + 5))"
ADDRS=(--ingest "$INGEST" --events "$EVENTS" --rpc "$RPC" --commands "$COMMANDS"
	--monitor "$MONITOR")

PGDIR="$TMP/pg"
if ! DB="$("$PGTMP" start "$PGDIR" 2>"$TMP/pgtmp.log")"; then
	not_ok "PostgreSQL (scripts/pgtmp start)" "$(tail -n 5 "$TMP/pgtmp.log")"
	echo "1..$N"
	exit 1
fi

timeout 10 "$BROKER" --db "$DB" "${ADDRS[@]}" --token-file "$TMP/token" >"$TMP/nocert.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "needs certificates" "$TMP/nocert.out"; then
	ok "broker on tls+tcp:// without certificates: exit 1, '$(grep -o "address '[^']*' needs certificates" "$TMP/nocert.out" | head -n 1)'"
else
	not_ok "broker without certificates" "exit $rc (want 1)" "$(tail -n 3 "$TMP/nocert.out")"
fi

tls_env broker
env "${TLS_ENV[@]}" "$BROKER" --db "$DB" "${ADDRS[@]}" --token-file "$TMP/token" \
	>"$TMP/broker.log" 2>&1 &
BROKER_PID=$!
PIDS+=" $BROKER_PID"
tls_env worker
env "${TLS_ENV[@]}" "$WORKER" --id tls-w1 --rpc "$RPC" --ingest "$INGEST" \
	--commands "$COMMANDS" >"$TMP/worker.log" 2>&1 &
PIDS+=" $!"
tls_env broker # the gateway is on the broker's host: its certificate will do
env "${TLS_ENV[@]}" "$GATEWAY" --http "$HTTP" --monitor "$MONITOR" --db "$DB" \
	>"$TMP/gateway.log" 2>&1 &
PIDS+=" $!"

# tctl ARGS...: keyforgectl as the operator, over TLS.
tls_env operator
OPERATOR_ENV=("${TLS_ENV[@]}")
tctl() {
	env "${OPERATOR_ENV[@]}" "$CTL" --rpc "$RPC" --events "$EVENTS" --token-file "$TMP/token" "$@"
}

submit_when_up 20 tctl --corpus "$CORPUS" --steps 200000 --seed 5
JOB="$SUBMITTED"
if [ -n "$JOB" ]; then
	ok "keyforgectl over TLS submits a job ($JOB)"
else
	not_ok "keyforgectl over TLS submits a job" "$(tail -n 5 "$TMP/broker.log")"
fi
# No `timeout` in front: env execs keyforgectl, so $! is the follower's own
# pid and cleanup's SIGKILL ends it (a SIGKILLed timeout would leave its
# child following a broker that is gone, for good).
env "${OPERATOR_ENV[@]}" "$CTL" --rpc "$RPC" --events "$EVENTS" logs --follow \
	>"$TMP/follow.out" 2>&1 &
PIDS+=" $!"
tctl wait "$JOB" --timeout 60 >/dev/null 2>&1
SHOW="$(tctl show "$JOB" --json 2>/dev/null)"
check "the job succeeds on tls-w1, its layout stored ($(jq -r '.state + " " + .worker' <<<"$SHOW" 2>/dev/null))" \
	test "$(jq -r '.state + " " + .worker + " " + (.result.layout | length | tostring)' \
		<<<"$SHOW" 2>/dev/null)" = "succeeded tls-w1 30"
LIVE="$(tctl workers --json 2>/dev/null | jq -r '.workers[] | select(.id == "tls-w1") | .liveness')"
check "heartbeats over TLS ingest: tls-w1 is ${LIVE:-unknown}" test "$LIVE" = alive
followed() { grep -qE "job completed job_id=$JOB( |\$)" "$TMP/follow.out"; }
check "keyforgectl logs --follow over TLS events shows 'job completed job_id=$JOB'" \
	wait_until 5000 followed
# (Read whole first: under pipefail, grep -q leaving early fails curl's write.)
counted() {
	local metrics
	metrics="$(curl -s "http://$HTTP/metrics" 2>/dev/null)" &&
		grep -qE '^keyforge_jobs_total\{status="success"\} [1-9]' <<<"$metrics"
}
# The broker sends its counters whole every 5 s, and the gateway's dial
# backs off up to 2 s while the broker starts: 20 s is ample.
if wait_until 20000 counted; then
	ok "the gateway, on the TLS monitor socket, counts the job in keyforge_jobs_total"
else
	not_ok "the gateway, on the TLS monitor socket, counts the job in keyforge_jobs_total" \
		"/metrics: $(curl -s "http://$HTTP/metrics" 2>&1 | grep -E '^keyforge_jobs_total|^keyforge_gateway_' | tr '\n' ' ')" \
		"gateway log: $(tail -n 5 "$TMP/gateway.log" | tr '\n' ' ')"
fi

# ---- refused ---------------------------------------------------------------------------------

# refused DESC CMD...: keyforgectl list within 2 s must fail as unreachable (4).
refused() {
	local desc="$1" rc
	shift
	"$@" --timeout 2s list >"$TMP/refused.out" 2>&1
	rc=$?
	if [ "$rc" = 4 ]; then
		ok "$desc: exit 4 ($(head -n 1 "$TMP/refused.out"))"
	else
		not_ok "$desc: exit 4" "exit $rc" "$(head -n 3 "$TMP/refused.out")"
	fi
}
refused "no client certificate" env KEYFORGE_TLS_CA="$TMP/ca.pem" \
	KEYFORGE_TLS_SERVER_NAME=broker.hive "$CTL" --rpc "$RPC"
tls_env impostor
refused "a client certificate of another CA" env "${TLS_ENV[@]}" "$CTL" --rpc "$RPC"
refused "plain tcp:// to the TLS rpc port" "$CTL" --rpc "tcp://127.0.0.1:$((BASE + 2))"
refused "the broker's name not the expected one" env "${OPERATOR_ENV[@]}" \
	KEYFORGE_TLS_SERVER_NAME=other.hive "$CTL" --rpc "$RPC"
tls_env operator rogue-ca
refused "a broker certificate the client's CA did not sign" env "${TLS_ENV[@]}" \
	"$CTL" --rpc "$RPC"

# An impostor worker: its hello never arrives, it is never listed.
tls_env impostor
env "${TLS_ENV[@]}" "$WORKER" --id impostor --rpc "$RPC" --ingest "$INGEST" \
	--commands "$COMMANDS" >"$TMP/impostor.log" 2>&1 &
PIDS+=" $!"
sleep 3
LISTED="$(tctl workers --json 2>/dev/null | jq -r '[.workers[].id] | join(" ")')"
check "a worker with another CA's certificate is never registered (workers: $LISTED)" \
	test "$LISTED" = tls-w1
check "the impostor worker logged no registration" \
	bash -c "! grep -q 'registered with the broker' '$TMP/impostor.log'"

# ---- still serving ---------------------------------------------------------------------------

J2="$(tctl submit --corpus "$CORPUS" --steps 20000 --seed 6 2>/dev/null)"
tctl wait "$J2" --timeout 30 >/dev/null 2>&1
check "after the refusals the broker still serves: job ${J2:-none} succeeds" \
	test "$(tctl show "$J2" --json 2>/dev/null | jq -r .state)" = succeeded
check "the broker is still running (pid $BROKER_PID)" kill -0 "$BROKER_PID"

echo "1..$N"
[ "$FAILED" = 0 ]
