#!/bin/sh
# bench/mirror.sh BUILD_DIR - what mirroring (analysis.mirror) costs the
# client path of canaryd's built-in proxy.
#
# Starts a fast stable upstream (nginx, `return 200 "ok\n"`, one worker), a
# fast canary (another) and a slow canary (canaryd-upstream, every answer
# BENCH_CANARY_LATENCY_MS late), then measures canaryd at weight 0 (a
# rollout in iterations mode, every request to stable) with one worker, in
# three configurations, interleaved within each round:
#   off          no mirror (the slow canary is the canary)
#   mirror-slow  mirror: true (100 %) to the slow canary
#   mirror-fast  mirror: true (100 %) to the fast canary
# The proxy is pinned to one core and the load generator to another.
#
# 1. Closed loop (wrk, BENCH_CONNECTIONS kept-alive connections),
#    BENCH_ROUNDS rounds. wrk sends a connection's next request when the
#    last is answered, so it saturates the proxy's core: the "off" rows'
#    requests a second are the proxy's saturated throughput, and there the
#    CPU a copy costs shows as fewer requests a second and a higher p99.
# 2. Open loop (bench/loadgen, BENCH_OL_CONNECTIONS connections), at
#    BENCH_LOADS per cent (20 50 70) of that saturated throughput (the
#    median of this run's "off" wrk rounds), BENCH_ROUNDS rounds, the three
#    configurations interleaved at each load. loadgen sends on a fixed
#    schedule and counts each latency from the request's due time (wrk2's
#    coordinated-omission correction), so these rows are the client's
#    latency below saturation, which is where a proxy runs in production,
#    and they answer "does a slow canary slow the client": p50, p99, p99.9,
#    and their ratio to "off" at the same load.
#
# Every row also has the proxy's CPU time per client request (user +
# system of its process, /proc/PID/stat, over the measured run including
# its warm-up; ticks of 1/CLK_TCK s) and what became of the copies
# (canaryd_mirror_requests_total: sent, and skipped at a bound). Figures
# are medians over the rounds (the lower middle one for an even count);
# errors are summed (wrk: socket errors and non-2xx answers; loadgen: its
# errors and non-2xx answers, and apart, "unsent": requests it had not sent
# by the run's end because the proxy was behind the schedule). A copy's cost is "cpu us/req" of mirror-fast minus
# that of off (every request is copied).
#
# Assumptions, and what the figure does not say: loopback only, tiny
# answers ("ok\n"), GET requests without bodies (a copy of a body costs a
# memcpy of it more); one proxy worker; the canary's 50 ms with 256 copies
# in flight at most (MIRROR_BUSY_MAX) means that above ~5000 requests a
# second the slow canary gets ~5000 copies a second and the rest are
# skipped ("limit" in the copies column), which is the bound working, not a
# loss to the client. On a shared machine (other builds running) the
# latencies are noisy: compare rows of the same run, over several rounds.
# Stops everything it started.
#
# Environment: BENCH_SECONDS per measured run (5), BENCH_WARMUP (1),
# BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_OL_CONNECTIONS (50),
# BENCH_LOADS ("20 50 70"; "" skips the open loop), BENCH_CANARY_LATENCY_MS
# (50), BENCH_PROXY_CPU (0), BENCH_WRK_CPU (1, also loadgen's),
# BENCH_UPSTREAM_CPUS (see bench/run.sh), BENCH_NICE (a niceness for
# everything it starts, see bench/lib.sh), BENCH_RT (a SCHED_FIFO priority,
# 1..99, root only: the open-loop runs, proxy, upstreams and loadgen, run
# real-time, so that other work on a shared machine does not add its
# scheduling delays to the latencies; they use well under a core each, and
# the closed-loop runs, which would hold a core, are left as they are;
# the two canaries then run SCHED_IDLE: they stand for a service on other
# machines, and on a 2-core box a canary answering every request would
# otherwise take its CPU from stable's upstream and the load generator,
# on the client's path, which canaryd does not do),
# BENCH_KEEP=1 keeps the temporary directory.
set -u

BUILD=${1:-build}
SECS=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-50}
OL_CONNS=${BENCH_OL_CONNECTIONS:-50}
LOADS=${BENCH_LOADS-20 50 70}
RT=${BENCH_RT:-}
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
LOADGEN=$BUILD/bench/loadgen
[ -z "$LOADS" ] || [ -x "$LOADGEN" ] || die "'$LOADGEN' is not built (make all)"
[ -z "$RT" ] || command -v chrt >/dev/null 2>&1 || die "BENCH_RT needs 'chrt' (util-linux)"
for n in "$SECS" "$WARMUP" "$ROUNDS" "$CONNS" "$OL_CONNS" "$LATENCY" $LOADS $RT; do
	case $n in '' | *[!0-9]*) die "'$n' is not a whole number (BENCH_*)" ;; esac
done
[ "$SECS" -ge 1 ] && [ "$ROUNDS" -ge 1 ] || die "BENCH_SECONDS and BENCH_ROUNDS must be at least 1"
for n in $LOADS; do
	[ "$n" -ge 1 ] && [ "$n" -le 100 ] || die "load '$n' is not a per cent of saturation in 1..100 (BENCH_LOADS)"
done

start_upstreams   # UP1: stable, UP2: the fast canary
UP_PIDS=$PIDS     # their nginx masters
# shellcheck disable=SC2086
set -- $PIDS
STABLE_PIDS=$1 CANARY_PIDS=$2
SLOW=$(free_port)
spawn "$UP2_CPU" slow-canary "$BUILD/canaryd-upstream" --listen "127.0.0.1:$SLOW" \
	--name slow --latency-ms "$LATENCY"
wait_http "$SLOW" / "$LAST_PID" || die "the slow canary did not start"
UP_PIDS="$UP_PIDS $LAST_PID"
CANARY_PIDS="$CANARY_PIDS $LAST_PID"

# rt POLICY PRIO PIDS: sets the scheduling policy (-f: SCHED_FIFO, -i:
# SCHED_IDLE, -o: back to normal; PRIO 0 for the last two) of each process
# of PIDS, every thread, and of its children (nginx's worker).
rt() {
	policy=$1 prio=$2
	shift 2
	for pid in "$@"; do
		for t in $pid $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
			chrt -a "$policy" -p "$prio" "$t" >/dev/null 2>&1 ||
				note "cannot set 'chrt $policy $prio' on pid $t"
		done
	done
}

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

# Runs loadgen at $3 requests a second against port $2, pinned to
# WRK_CPU, and sets OL_LINE to its "LOADGEN ..." line plus cpu_us= (process
# $4's CPU time per request sent, warm-up included); "" when it failed.
run_loadgen() {
	name=$1 port=$2 rate=$3 cpu_pid=$4
	note "measuring $name at $rate req/s for ${SECS}s (+${WARMUP}s warm-up, $OL_CONNS connections)"
	rtcmd=""
	if [ -n "$RT" ]; then
		rt -f "$RT" $STABLE_PIDS "$cpu_pid"
		rt -i 0 $CANARY_PIDS
		rtcmd="chrt -f $RT"
	fi
	t0=$(cpu_ticks "$cpu_pid")
	spawn "$WRK_CPU" "loadgen-$name" $rtcmd "$LOADGEN" -c "$OL_CONNS" -r "$rate" -d "$SECS" \
		-w "$WARMUP" "127.0.0.1:$port"
	wait_done "$LAST_PID"
	t1=$(cpu_ticks "$cpu_pid")
	[ -z "$RT" ] || rt -o 0 $UP_PIDS
	OL_LINE=$(grep '^LOADGEN ' "$TMP/loadgen-$name.log" | sed 's/^LOADGEN //')
	if [ -z "$OL_LINE" ]; then
		note "loadgen failed against $name:"
		sed 's/^/  /' "$TMP/loadgen-$name.log" >&2
		return
	fi
	[ -n "$t0" ] && [ -n "$t1" ] && OL_LINE="$OL_LINE $(echo "$OL_LINE" | awk -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" '{
		for (i = 1; i <= NF; i++) if ($i ~ /^sent=/) n = substr($i, 6) + 0
		if (n > 0) printf "cpu_us=%.2f", (t1 - t0) * 1e6 / hz / n }')"
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

# the median of an awk-readable list of numbers on stdin
median() {
	sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

SAT=$(awk '$1 == "off" { for (i = 2; i <= NF; i++) if ($i ~ /^rps=/) print substr($i, 5) }' \
	"$TMP/results" | median)
: >"$TMP/ol-results"
if [ -n "$LOADS" ] && [ -n "$SAT" ]; then
	r=1
	while [ $r -le "$ROUNDS" ]; do
		for load in $LOADS; do
			rate=$(awk -v s="$SAT" -v l="$load" 'BEGIN { printf "%d", s * l / 100 }')
			for cfg in $CONFIGS; do
				start_mirror "$cfg" || continue
				run_loadgen "$cfg-$load" "$P_PORT" "$rate" "$P_PID"
				[ -n "$OL_LINE" ] && echo "$load $cfg $OL_LINE copies=$(copies)" >>"$TMP/ol-results"
				stop "$P_PID"
			done
		done
		r=$((r + 1))
	done
elif [ -n "$LOADS" ]; then
	note "no saturated throughput from the wrk rounds: the open loop is skipped"
fi

echo
echo "mirroring's cost on the client path: canaryd at weight 0, 1 worker; the slow canary"
echo "answers after ${LATENCY} ms; medians over $ROUNDS rounds of ${SECS}s (+${WARMUP}s warm-up)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo
echo "closed loop (wrk, $CONNS connections: the proxy's core saturated)"
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

[ -s "$TMP/ol-results" ] || exit 0
echo
echo "open loop (bench/loadgen, $OL_CONNS connections, latency from each request's due time),"
echo "at per cents of the saturated throughput above (off: ${SAT} req/s)"
awk -v cfgs="$CONFIGS" -v loads="$LOADS" '
	function med(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n ? a[int((n + 1) / 2)] : ""
	}
	{
		k = $1 SUBSEP $2
		for (i = 3; i <= NF; i++) {
			split($i, kv, "=")
			v[k, kv[1]] = v[k, kv[1]] " " kv[2]
			if (kv[1] == "errors" || kv[1] == "non2xx")
				errs[k] += kv[2]
			if (kv[1] == "unsent")
				unsent[k] += kv[2]
		}
		last[k] = $NF
	}
	END {
		printf "%-5s %-12s %9s %8s %8s %8s %11s %7s %7s %8s %8s %8s  %s\n", "load", "config",
		       "req/s", "p50 ms", "p99 ms", "p99.9ms", "cpu us/req", "errors", "unsent",
		       "p99/off", "p999/off", "cpu-off", "copies sent/skipped (last round)"
		nl = split(loads, ls, " "); nc = split(cfgs, cs, " ")
		for (a = 1; a <= nl; a++) {
			o = ls[a] SUBSEP "off"
			for (b = 1; b <= nc; b++) {
				k = ls[a] SUBSEP cs[b]
				if (!((k, "rate") in v)) { printf "%-5s %-12s (no result)\n", ls[a] "%", cs[b]; continue }
				p99 = med(v[k, "p99"]); p999 = med(v[k, "p999"]); cpu = med(v[k, "cpu_us"])
				r99 = r999 = dc = "-"
				if ((o, "rate") in v) {
					if (med(v[o, "p99"]) > 0) r99 = sprintf("%.2f", p99 / med(v[o, "p99"]))
					if (med(v[o, "p999"]) > 0) r999 = sprintf("%.2f", p999 / med(v[o, "p999"]))
					dc = sprintf("%+.1f", cpu - med(v[o, "cpu_us"]))
				}
				l = last[k]; sub(/^copies=/, "", l)
				printf "%-5s %-12s %9.0f %8.3f %8.3f %8.3f %11.1f %7d %7d %8s %8s %8s  %s\n",
				       ls[a] "%", cs[b], med(v[k, "rate"]), med(v[k, "p50"]) / 1000,
				       p99 / 1000, p999 / 1000, cpu, errs[k], unsent[k], r99, r999, dc, l
			}
		}
	}' "$TMP/ol-results"
