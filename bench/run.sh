#!/bin/sh
# bench/run.sh BUILD_DIR - canaryd's built-in proxy against HAProxy and nginx.
#
# Starts two nginx upstreams on loopback (one worker each, `return 200
# "ok\n"`), then, one after the other, HAProxy (nbthread 1), nginx
# (worker_processes 1) and canaryd, each splitting traffic 90/10 over the
# two upstreams, and also measures the first upstream directly as the
# limit. Each proxy is pinned to one core and wrk to another; wrk keeps
# BENCH_CONNECTIONS (50) connections alive for BENCH_SECONDS (10) seconds.
# Prints a table: requests/s, p50, p99, p99.9, the proxy's peak RSS, and
# canaryd's ratios to HAProxy and nginx. Stops everything it started.
#
# Environment: BENCH_SECONDS (10), BENCH_CONNECTIONS (50), BENCH_WARMUP
# seconds before each measured run (2), BENCH_PROXY_CPU (0), BENCH_WRK_CPU
# (1), BENCH_UPSTREAM_CPUS (cores for the two upstreams; default 2,3 when
# the machine has 4 cores or more, else unpinned), BENCH_KEEP=1 keeps the
# temporary directory (configs, logs, wrk output).
set -u

BUILD=${1:-build}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-50}
WARMUP=${BENCH_WARMUP:-2}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

for tool in wrk ss curl awk; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (run 'make setup')"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$NGINX" ] || die "'nginx' is not installed (run 'make setup'); it serves the upstreams"

NCPU=$(nproc 2>/dev/null || echo 1)
PIN=""
if command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge 2 ]; then
	PIN=1
else
	note "fewer than 2 cores or no taskset: nothing is pinned, results are noisy"
fi
if [ -z "${BENCH_UPSTREAM_CPUS+x}" ]; then
	if [ "$NCPU" -ge 4 ]; then BENCH_UPSTREAM_CPUS=2,3
	elif [ "$NCPU" -ge 3 ]; then BENCH_UPSTREAM_CPUS=2,2
	else BENCH_UPSTREAM_CPUS=""
	fi
fi
UP1_CPU=$(echo "$BENCH_UPSTREAM_CPUS" | cut -d, -f1)
UP2_CPU=$(echo "$BENCH_UPSTREAM_CPUS" | cut -s -d, -f2)
[ -n "$UP2_CPU" ] || UP2_CPU=$UP1_CPU

TMP=$(mktemp -d "${TMPDIR:-/tmp}/canaryd-bench.XXXXXX") || die "cannot create a temporary directory"
PIDS=""

cleanup() {
	for p in $PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $PIDS; do
		# bounded: 50 x 0.1 s, then SIGKILL
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=""
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		note "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" pinned to core $1 (or unpinned when $1 is empty or pinning is
# off), in the background, logging to $TMP/$2.log; sets LAST_PID.
spawn() {
	cpu=$1 log=$2
	shift 2
	if [ -n "$PIN" ] && [ -n "$cpu" ]; then
		taskset -c "$cpu" "$@" >"$TMP/$log.log" 2>&1 &
	else
		"$@" >"$TMP/$log.log" 2>&1 &
	fi
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

# Stops one process started by spawn.
stop() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	rest=""
	for p in $PIDS; do [ "$p" = "$1" ] || rest="$rest $p"; done
	PIDS=$rest
}

# A loopback TCP port nobody listens on and we have not handed out yet.
USED_PORTS=""
free_port() {
	n=0
	while [ $n -lt 200 ]; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((20000 + r % 40000))
		n=$((n + 1))
		case " $USED_PORTS " in *" $p "*) continue ;; esac
		if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
			USED_PORTS="$USED_PORTS $p"
			echo "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}

# Waits (up to 10 s) until GET http://127.0.0.1:$1$2 answers 200; $3 is
# the pid that must stay alive meanwhile.
wait_http() {
	i=0
	while [ $i -lt 100 ]; do
		kill -0 "$3" 2>/dev/null || return 1
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1$2" 2>/dev/null)
		[ "$code" = 200 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Fills a template: @TMP@ @PORT@ @UP1@ @UP2@ @USER@.
render() {
	user_line=""
	[ "$(id -u)" -eq 0 ] && user_line="user root;"
	sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$2|g" -e "s|@UP1@|$UP1|g" \
	    -e "s|@UP2@|$UP2|g" -e "s|@USER@|$user_line|g" "$1"
}

# The nginx worker of master $1 (the process that does the work).
nginx_worker() {
	kids=$(cat /proc/"$1"/task/*/children 2>/dev/null)
	[ -n "$kids" ] || kids=$(pgrep -P "$1" 2>/dev/null)
	set -- $kids
	echo "${1:-}"
}

# Peak resident set of pid $1, in MiB ("-" when unknown).
peak_rss() {
	awk '/^VmHWM:/ { printf "%.1f MiB", $2 / 1024; found = 1 } END { if (!found) printf "-" }' \
		"/proc/$1/status" 2>/dev/null || echo "-"
}

cat >"$TMP/report.lua" <<'EOF'
-- prints one machine-readable line; latencies in microseconds
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("BENCH rps=%.1f p50=%d p99=%d p999=%d errors=%d non2xx=%d requests=%d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
		e.connect + e.read + e.write + e.timeout, e.status, summary.requests))
end
EOF

# Runs wrk against port $2 for the row named $1, after a warm-up; $3 is
# the pid whose peak RSS goes in the table ("" for none).
RESULTS="$TMP/results"
: >"$RESULTS"
measure() {
	name=$1 port=$2 rss_pid=$3
	url="http://127.0.0.1:$port/"
	wrk_pin=""
	[ -n "$PIN" ] && wrk_pin="taskset -c $WRK_CPU"
	# wrk runs in the background so that a signal stops the benchmark at
	# once (a shell runs its traps only between foreground commands)
	if [ "$WARMUP" -gt 0 ] 2>/dev/null; then
		$wrk_pin wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >"$TMP/wrk-$name-warmup.out" 2>&1 &
		PIDS="$PIDS $!"
		wait $!
	fi
	note "measuring $name for ${SECS}s ($CONNS connections)"
	$wrk_pin wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$TMP/report.lua" "$url" \
		>"$TMP/wrk-$name.out" 2>&1 &
	PIDS="$PIDS $!"
	wait $!
	line=$(grep '^BENCH ' "$TMP/wrk-$name.out")
	if [ -z "$line" ]; then
		note "wrk failed against $name:"
		sed 's/^/  /' "$TMP/wrk-$name.out" >&2
		echo "$name failed" >>"$RESULTS"
		return
	fi
	rss="-"
	[ -n "$rss_pid" ] && rss=$(peak_rss "$rss_pid")
	echo "$name $line rss=$rss" | sed 's/ MiB/MiB/' >>"$RESULTS"
}

# ---- upstreams ----------------------------------------------------------
UP1=$(free_port)
UP2=$(free_port)
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
for u in 1 2; do
	eval port=\$UP$u
	mkdir -p "$TMP/nginx-up$u.tmp"
	cat >"$TMP/nginx-up$u.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $TMP/nginx-up$u.pid;
error_log $TMP/nginx-up$u.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-up$u.tmp/body;
    proxy_temp_path $TMP/nginx-up$u.tmp/proxy;
    fastcgi_temp_path $TMP/nginx-up$u.tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx-up$u.tmp/uwsgi;
    scgi_temp_path $TMP/nginx-up$u.tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "ok\n"; }
    }
}
EOF
	eval cpu=\$UP${u}_CPU
	spawn "$cpu" "nginx-up$u" "$NGINX" -p "$TMP" -e "$TMP/nginx-up$u.error.log" -c "$TMP/nginx-up$u.conf"
	wait_http "$port" / "$LAST_PID" || { cat "$TMP/nginx-up$u.log" "$TMP/nginx-up$u.error.log" >&2 2>/dev/null; die "upstream nginx on port $port did not start"; }
done
note "upstreams: nginx on 127.0.0.1:$UP1 (stable) and 127.0.0.1:$UP2 (canary); cores: proxy $PROXY_CPU, wrk $WRK_CPU, upstreams ${BENCH_UPSTREAM_CPUS:-unpinned}"

# ---- direct: the limit ------------------------------------------------------
measure direct "$UP1" ""

# ---- HAProxy ----------------------------------------------------------------
if [ -x "$HAPROXY" ]; then
	PORT=$(free_port)
	render "$HERE/haproxy.cfg.in" "$PORT" >"$TMP/haproxy.cfg"
	spawn "$PROXY_CPU" haproxy "$HAPROXY" -db -f "$TMP/haproxy.cfg"
	pid=$LAST_PID
	if wait_http "$PORT" / "$pid"; then
		measure haproxy "$PORT" "$pid"
	else
		note "haproxy did not start:"; sed 's/^/  /' "$TMP/haproxy.log" >&2
		echo "haproxy failed" >>"$RESULTS"
	fi
	stop "$pid"
else
	note "haproxy is not installed: row skipped"
	echo "haproxy missing" >>"$RESULTS"
fi

# ---- nginx ------------------------------------------------------------------
PORT=$(free_port)
mkdir -p "$TMP/nginx-proxy.tmp"
render "$HERE/nginx.conf.in" "$PORT" >"$TMP/nginx-proxy.conf"
spawn "$PROXY_CPU" nginx-proxy "$NGINX" -p "$TMP" -e "$TMP/nginx-proxy.error.log" -c "$TMP/nginx-proxy.conf"
pid=$LAST_PID
if wait_http "$PORT" / "$pid"; then
	measure nginx "$PORT" "$(nginx_worker "$pid")"
else
	note "nginx did not start:"; cat "$TMP/nginx-proxy.log" "$TMP/nginx-proxy.error.log" >&2 2>/dev/null
	echo "nginx failed" >>"$RESULTS"
fi
stop "$pid"

# ---- canaryd ----------------------------------------------------------------
CANARYD="$BUILD/canaryd"
if [ -x "$CANARYD" ]; then
	PORT=$(free_port)
	ADMIN=$(free_port)
	mkdir -p "$TMP/canaryd-data"
	cat >"$TMP/canaryd.yaml" <<EOF
apiVersion: canaryd/v1
kind: Canary
metadata: {name: bench}
spec:
  router: builtin
  listen: 127.0.0.1:$PORT
  stable: {revision: v1, endpoints: [127.0.0.1:$UP1]}
  canary: {revision: v2, endpoints: [127.0.0.1:$UP2]}
  analysis: {interval: 1h, threshold: 1, maxWeight: 10, stepWeight: 10, metrics: [{name: request-success-rate, thresholdRange: {min: 0}, interval: 1m}]}
EOF
	spawn "$PROXY_CPU" canaryd "$CANARYD" -c "$TMP/canaryd.yaml" --admin "127.0.0.1:$ADMIN" \
		--data-dir "$TMP/canaryd-data" --log-level warn
	pid=$LAST_PID
	if wait_http "$ADMIN" /healthz "$pid" && wait_http "$PORT" / "$pid"; then
		# the split must be 90/10: wait for the rollout's first step, or
		# set it by hand (which also pauses the analysis)
		i=0 weight=""
		while [ $i -lt 30 ]; do
			weight=$(curl -s --max-time 1 "http://127.0.0.1:$ADMIN/api/v1/canaries/bench" |
				sed -n 's/.*"canaryWeight"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
			[ "$weight" = 10 ] && break
			sleep 0.1
			i=$((i + 1))
		done
		if [ "$weight" != 10 ]; then
			note "canary weight is '${weight:-unknown}', setting it to 10"
			curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d '{"weight": 10}' \
				"http://127.0.0.1:$ADMIN/api/v1/canaries/bench/weight" >/dev/null
		fi
		measure canaryd "$PORT" "$pid"
		# what share the canary really got, from canaryd's own counters
		curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk '
			/^canaryd_requests_total\{/ && /canary="bench"/ {
				n = $NF + 0; total += n
				if ($0 ~ /target="canary"/) canary += n
			}
			END { if (total > 0) printf "bench: canaryd sent %.1f%% of %d requests to the canary\n", 100 * canary / total, total > "/dev/stderr" }'
	else
		note "canaryd did not start:"; sed 's/^/  /' "$TMP/canaryd.log" >&2
		echo "canaryd failed" >>"$RESULTS"
	fi
	stop "$pid"
else
	note "'$CANARYD' is not built: row skipped"
	echo "canaryd missing" >>"$RESULTS"
fi

# ---- report -----------------------------------------------------------------
echo
echo "canaryd benchmark: ${SECS}s, $CONNS keep-alive connections, 90/10 split over two nginx upstreams"
echo "(wrk on core $WRK_CPU, proxy on core $PROXY_CPU, $NCPU cores; $(uname -r))"
echo
awk '
function field(line, key,    re, s) {
	re = " " key "=[^ ]*"
	if (match(line, re)) { s = substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 2); return s }
	return ""
}
function ms(us) { return us == "" ? "-" : sprintf("%.2f ms", us / 1000) }
BEGIN {
	printf "| %-8s | %12s | %9s | %9s | %9s | %10s | %8s |\n", "proxy", "requests/s", "p50", "p99", "p99.9", "peak RSS", "errors"
	printf "|----------|--------------|-----------|-----------|-----------|------------|----------|\n"
}
$2 != "BENCH" {
	printf "| %-8s | %12s | %9s | %9s | %9s | %10s | %8s |\n", $1, $2, "-", "-", "-", "-", "-"
	next
}
{
	name = $1; line = $0
	rps[name] = field(line, "rps"); p99[name] = field(line, "p99")
	errs = field(line, "errors") + field(line, "non2xx")
	rss = field(line, "rss"); sub(/MiB$/, " MiB", rss)
	printf "| %-8s | %12.0f | %9s | %9s | %9s | %10s | %8d |\n", name, rps[name], ms(field(line, "p50")), ms(p99[name]), ms(field(line, "p999")), rss, errs
}
END {
	print ""
	if (!("canaryd" in rps)) { print "canaryd ratios: no canaryd row"; exit }
	n = split("haproxy nginx", others, " ")
	for (i = 1; i <= n; i++) {
		o = others[i]
		if (!(o in rps) || rps[o] == 0 || p99[o] == 0) { printf "canaryd / %-7s: no %s row\n", o, o; continue }
		printf "canaryd / %-7s: requests/s %.2fx, p99 %.2fx\n", o, rps["canaryd"] / rps[o], p99["canaryd"] / p99[o]
	}
}' "$RESULTS"
