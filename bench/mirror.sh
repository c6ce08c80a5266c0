#!/bin/sh
# bench/mirror.sh BUILD_DIR - what mirroring (analysis.mirror) costs the
# client path of canaryd's built-in proxy.
#
# Starts a fast stable upstream (nginx, `return 200 "ok\n"`, one worker), a
# fast canary (another) and a slow canary (canaryd-upstream, every answer
# BENCH_CANARY_LATENCY_MS late), then measures, in the same run and
# interleaved over BENCH_ROUNDS rounds, canaryd at weight 0 (a rollout in
# iterations mode, every request to stable) with one worker:
#   off          no mirror (the slow canary is the canary)
#   mirror-slow  mirror: true (100 %) to the slow canary
#   mirror-fast  mirror: true (100 %) to the fast canary
# wrk with BENCH_CONNECTIONS (50) kept-alive connections; the proxy pinned
# to one core and wrk to another. Prints one table: requests a second, p50
# and p99 of the client's latency, the proxy's CPU time per client request
# (user + system, its own process), and what became of the copies
# (canaryd_mirror_requests_total: sent, and skipped at a bound). Medians
# over the rounds (the lower middle one for an even count). wrk is a
# closed loop: at 50 connections the proxy's core is saturated, so CPU a
# copy costs shows as fewer requests a second and a higher p99; below
# saturation the client's latency does not wait on the canary at all.
# Stops everything it started.
#
# Environment: BENCH_SECONDS per measured run (5), BENCH_WARMUP (1),
# BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_CANARY_LATENCY_MS (50),
# BENCH_PROXY_CPU (0), BENCH_WRK_CPU (1), BENCH_UPSTREAM_CPUS (see
# bench/run.sh), BENCH_KEEP=1 keeps the temporary directory.
set -u

BUILD=${1:-build}
SECS=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-50}
LATENCY=${BENCH_CANARY_LATENCY_MS:-50}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
MAXCONN=10000
NGINX_CONNS=4096
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/lib.sh"

for tool in wrk ss curl awk; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (run 'make setup')"
done
[ -x "$NGINX" ] || die "'nginx' is not installed (run 'make setup'); it serves the upstreams"
[ -x "$BUILD/canaryd-upstream" ] || die "'$BUILD/canaryd-upstream' is not built"
for n in "$SECS" "$WARMUP" "$ROUNDS" "$CONNS" "$LATENCY"; do
	case $n in '' | *[!0-9]*) die "'$n' is not a whole number (BENCH_*)" ;; esac
done
[ "$SECS" -ge 1 ] && [ "$ROUNDS" -ge 1 ] || die "BENCH_SECONDS and BENCH_ROUNDS must be at least 1"

start_upstreams   # UP1: stable, UP2: the fast canary
SLOW=$(free_port)
spawn "$UP2_CPU" slow-canary "$BUILD/canaryd-upstream" --listen "127.0.0.1:$SLOW" \
	--name slow --latency-ms "$LATENCY"
wait_http "$SLOW" / "$LAST_PID" || die "the slow canary did not start"

# start_mirror CONFIG: canaryd at weight 0 for CONFIG (off, mirror-slow,
# mirror-fast), pinned to PROXY_CPU; sets P_PID, P_PORT, P_ADMIN.
start_mirror() {
	P_PORT=$(free_port)
	P_ADMIN=$(free_port)
	rm -rf "$TMP/canaryd-data"
	mkdir -p "$TMP/canaryd-data"
	canary=$SLOW mirror=false
	case $1 in
	mirror-slow) mirror=true ;;
	mirror-fast) mirror=true canary=$UP2 ;;
	esac
	cat >"$TMP/canaryd.yaml" <<EOF
apiVersion: canaryd/v1
kind: Canary
metadata: {name: bench}
spec:
  router: builtin
  listen: 127.0.0.1:$P_PORT
  limits: {maxConnections: $MAXCONN}
  stable: {revision: v1, endpoints: [127.0.0.1:$UP1]}
  canary: {revision: v2, endpoints: [127.0.0.1:$canary]}
  outlierDetection: {consecutiveErrors: 0}
  analysis: {interval: 1h, threshold: 1, iterations: 1000, mirror: $mirror, metrics: [{name: request-success-rate, thresholdRange: {min: 0}, interval: 1m}]}
EOF
	spawn "$PROXY_CPU" "canaryd-$1" "$CANARYD" -c "$TMP/canaryd.yaml" --admin "127.0.0.1:$P_ADMIN" \
		--data-dir "$TMP/canaryd-data" --log-level error
	P_PID=$LAST_PID
	if ! wait_http "$P_ADMIN" /healthz "$P_PID" || ! wait_http "$P_PORT" / "$P_PID"; then
		note "canaryd did not start:"; sed 's/^/  /' "$TMP/canaryd-$1.log" >&2
		stop "$P_PID"
		return 1
	fi
}

# The copies' fates from canaryd's /metrics: "sent/skipped".
copies() {
	curl -s --max-time 5 "http://127.0.0.1:$P_ADMIN/metrics" | awk '
		/^canaryd_mirror_requests_total\{/ {
			if ($0 ~ /result="sent"/) sent += $NF; else skipped += $NF; any = 1
		}
		END { if (any) printf "%d/%d", sent, skipped; else printf "-" }'
}

CONFIGS="off mirror-slow mirror-fast"
: >"$TMP/results"
r=1
while [ $r -le "$ROUNDS" ]; do
	for cfg in $CONFIGS; do
		start_mirror "$cfg" || continue
		run_wrk "$cfg" "$P_PORT" "$CONNS" "$P_PID"
		[ -n "$WRK_LINE" ] && echo "$cfg $WRK_LINE copies=$(copies)" >>"$TMP/results"
		stop "$P_PID"
	done
	r=$((r + 1))
done

echo
echo "mirroring's cost on the client path: canaryd at weight 0, 1 worker, $CONNS connections,"
echo "${SECS}s x $ROUNDS rounds (medians); the slow canary answers after ${LATENCY} ms"
echo
awk -v cfgs="$CONFIGS" '
	function med(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n ? a[int((n + 1) / 2)] : ""
	}
	{
		c = $1
		for (i = 2; i <= NF; i++) {
			split($i, kv, "=")
			v[c, kv[1]] = v[c, kv[1]] " " kv[2]
		}
		errs[c] += 0
		split($0, _, "errors="); split(_[2], e, " "); errs[c] += e[1]
		split($0, _, "non2xx="); split(_[2], e, " "); errs[c] += e[1]
		last[c] = $NF
	}
	END {
		printf "%-12s %10s %9s %9s %14s %8s  %s\n", "config", "req/s", "p50 ms", "p99 ms",
		       "cpu us/req", "errors", "copies sent/skipped (last round)"
		n = split(cfgs, cs, " ")
		for (k = 1; k <= n; k++) {
			c = cs[k]
			if (!((c, "rps") in v)) { printf "%-12s (no result)\n", c; continue }
			sub(/^copies=/, "", last[c])
			printf "%-12s %10.0f %9.2f %9.2f %14.1f %8d  %s\n", c, med(v[c, "rps"]),
			       med(v[c, "p50"]) / 1000, med(v[c, "p99"]) / 1000, med(v[c, "cpu_us"]),
			       errs[c], last[c]
		}
	}' "$TMP/results"
