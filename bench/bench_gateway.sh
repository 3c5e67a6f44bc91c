#!/usr/bin/env bash
# bench_gateway.sh [BUILD_DIR] — /metrics requests per second and latency of
# keyforge-gateway against prometheus-pushgateway holding the same series
# (issue 6; figures and command in docs/gateway.md "Benchmark").
#
#   ninja -C BUILD bench-gateway          (builds what it needs, then runs this)
#   bench/bench_gateway.sh BUILD          (the same, by hand)
#
# Setup, all on loopback in a temporary folder:
#   - kf-gw-pub --simulate 100: 100 sources ("workers") publishing a full
#     metric update every second (10 series each, one a 16-bucket histogram);
#   - keyforge-gateway subscribed to it: it aggregates them into one set;
#   - prometheus-pushgateway with the same series pushed once per source
#     (job="keyforge", instance="sim-<i>"): it exposes all 100 copies, as a
#     pushgateway does;
#   - wrk, DURATION seconds per run, CONNECTIONS connections, 2 threads,
#     uncompressed and then with "Accept-Encoding: gzip" (what Prometheus
#     sends); the two servers alternate, ROUNDS times.
# Environment: DURATION (10), CONNECTIONS (16), ROUNDS (2), SOURCES (100).
# Prints one line per run and the ratios. Needs wrk, curl and
# prometheus-pushgateway (Debian packages wrk, curl, prometheus-pushgateway).
set -euo pipefail

BUILD="${1:-build}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
ROUNDS="${ROUNDS:-2}"
SOURCES="${SOURCES:-100}"
GATEWAY="$BUILD/gateway/keyforge-gateway"
PUB="$BUILD/gateway/kf-gw-pub"
PUSHGW="${PUSHGATEWAY:-$(command -v prometheus-pushgateway || true)}"

die() { echo "bench_gateway: $*" >&2; exit 1; }
[ -x "$GATEWAY" ] && [ -x "$PUB" ] || die "build first: ninja -C $BUILD gateway/keyforge-gateway gateway/kf-gw-pub"
[ -n "$PUSHGW" ] || die "prometheus-pushgateway not found (Debian package prometheus-pushgateway)"
command -v wrk >/dev/null || die "wrk not found (Debian package wrk)"
command -v curl >/dev/null || die "curl not found"

TMP="$(mktemp -d /tmp/kfgw-bench-XXXXXX)"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

EV_PORT=$(free_port); GW_PORT=$(free_port); PG_PORT=$(free_port)
EVENTS="tcp://127.0.0.1:$EV_PORT"

"$PUB" --url "$EVENTS" --listen --simulate "$SOURCES" --interval-ms 1000 >"$TMP/pub.log" 2>&1 &
PIDS+=($!)
KEYFORGE_LOG=warn "$GATEWAY" --http "127.0.0.1:$GW_PORT" --monitor "$EVENTS" \
	--db "host=$TMP dbname=none connect_timeout=1" >"$TMP/gateway.log" 2>&1 &
PIDS+=($!)
"$PUSHGW" --web.listen-address="127.0.0.1:$PG_PORT" --persistence.file="" \
	--log.level=warn >"$TMP/pushgateway.log" 2>&1 &
PIDS+=($!)

# The gateway holds every source; the pushgateway every group.
for _ in $(seq 100); do
	n=$(curl -sf "http://127.0.0.1:$GW_PORT/metrics" | awk '$1 == "keyforge_gateway_sources" { print $2 }' || true)
	[ "${n:-0}" = "$SOURCES" ] && break
	sleep 0.2
done
[ "${n:-0}" = "$SOURCES" ] || die "the gateway holds ${n:-0} of $SOURCES sources ($TMP/gateway.log)"
for i in $(seq 0 $((SOURCES - 1))); do
	"$PUB" --text "$i" | curl -sf --data-binary @- \
		"http://127.0.0.1:$PG_PORT/metrics/job/keyforge/instance/sim-$i" || die "push $i failed"
done

size() { curl -s "$@" | wc -c; }
echo "# sources: $SOURCES, series per source: 10 (one 16-bucket histogram)"
echo "# body bytes: gateway $(size "http://127.0.0.1:$GW_PORT/metrics") (gzip $(size -H 'Accept-Encoding: gzip' "http://127.0.0.1:$GW_PORT/metrics")), pushgateway $(size "http://127.0.0.1:$PG_PORT/metrics") (gzip $(size -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PG_PORT/metrics"))"
echo "# samples: gateway $(curl -s "http://127.0.0.1:$GW_PORT/metrics" | grep -vc '^#'), pushgateway $(curl -s "http://127.0.0.1:$PG_PORT/metrics" | grep -vc '^#')"
echo "# wrk -t2 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS rounds, $(nproc) cores"

# run NAME URL [wrk header args...] -> "rps p50_ms p99_ms"
run() {
	local out rps p50 p99
	out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${@:2}" "$1")
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
	p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
	echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() { # wrk prints 1.23ms, 456.00us, 1.02s
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0;
		else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

declare -A best
printf '%-12s %-6s %5s %12s %9s %9s\n' server enc round req/s p50_ms p99_ms
for round in $(seq "$ROUNDS"); do
	for enc in identity gzip; do
		hdr=()
		[ "$enc" = gzip ] && hdr=(-H "Accept-Encoding: gzip")
		for srv in gateway pushgateway; do
			port=$GW_PORT
			[ "$srv" = pushgateway ] && port=$PG_PORT
			read -r rps p50 p99 < <(run "http://127.0.0.1:$port/metrics" "${hdr[@]}")
			printf '%-12s %-6s %5s %12s %9s %9s\n' "$srv" "$enc" "$round" "$rps" "$p50" "$p99"
			key="$srv.$enc"
			if [ -z "${best[$key]:-}" ] || awk -v a="$rps" -v b="${best[$key]%% *}" 'BEGIN { exit !(a > b) }'; then
				best[$key]="$rps $p99"
			fi
		done
	done
done
for enc in identity gzip; do
	g=${best[gateway.$enc]}; p=${best[pushgateway.$enc]}
	awk -v enc="$enc" -v g="${g%% *}" -v p="${p%% *}" -v gq="${g##* }" -v pq="${p##* }" \
		'BEGIN { printf "ratio %-8s best req/s gateway/pushgateway = %.1fx  (p99 %s ms vs %s ms)\n", enc, g / p, gq, pq }'
done
