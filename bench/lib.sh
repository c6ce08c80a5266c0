# bench/lib.sh - shared by bench/run.sh and bench/profile.sh; sourced, not run.
#
# The caller sets BUILD, HERE (this directory), SECS, WARMUP, PROXY_CPU,
# WRK_CPU, MAXCONN (HAProxy maxconn, canaryd spec.limits.maxConnections)
# and NGINX_CONNS (nginx worker_connections) before calling anything here.
# Sourcing it creates the temporary directory TMP, installs the traps that
# stop every process started with spawn and remove TMP on exit, and sets
# NCPU, PIN, UP1_CPU, UP2_CPU. BENCH_KEEP=1 keeps TMP.

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
CANARYD="$BUILD/canaryd"
# prefix for the canaryd command line (profile.sh: valgrind); WAIT_TRIES:
# readiness checks 0.1 s apart before a process counts as not started
CANARYD_WRAP=${CANARYD_WRAP:-}
WAIT_TRIES=${WAIT_TRIES:-100}

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

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
# a signal ends the shell without running the EXIT trap unless trapped;
# PIPE too (`sh bench/run.sh | head`)
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# Runs "$@" pinned to the cores $1 (or unpinned when $1 is empty or pinning
# is off), in the background, logging to $TMP/$2.log; sets LAST_PID.
# With BENCH_NICE (a niceness, e.g. -10: root only below 0), it runs at
# that priority: on a machine shared with other work, the measured
# processes are then the ones the scheduler serves first.
spawn() {
	cpu=$1 log=$2
	shift 2
	if [ -n "${BENCH_NICE:-}" ]; then
		set -- nice -n "$BENCH_NICE" "$@"
	fi
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
		p=$((20000 + r % 12000))
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

# Waits (up to WAIT_TRIES / 10 s) until GET http://127.0.0.1:$1$2 answers 200; $3 is
# the pid that must stay alive meanwhile.
wait_http() {
	i=0
	while [ $i -lt "$WAIT_TRIES" ]; do
		kill -0 "$3" 2>/dev/null || return 1
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1$2" 2>/dev/null)
		[ "$code" = 200 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Waits (up to WAIT_TRIES / 10 s) until something listens on 127.0.0.1:$1, without
# sending it anything (the idle phase measures a proxy that saw no
# traffic); $2 is the pid that must stay alive meanwhile.
wait_listen() {
	i=0
	while [ $i -lt "$WAIT_TRIES" ]; do
		kill -0 "$2" 2>/dev/null || return 1
		[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Fills a template: @TMP@ @PORT@ @UP1@ @UP2@ @USER@ @MAXCONN@
# @WORKER_CONNECTIONS@.
render() {
	user_line=""
	[ "$(id -u)" -eq 0 ] && user_line="user root;"
	sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$2|g" -e "s|@UP1@|$UP1|g" \
	    -e "s|@UP2@|$UP2|g" -e "s|@USER@|$user_line|g" \
	    -e "s|@MAXCONN@|$MAXCONN|g" -e "s|@WORKER_CONNECTIONS@|$NGINX_CONNS|g" "$1"
}

# The nginx worker of master $1 (the process that does the work).
nginx_worker() {
	i=0 kids=""
	# the master forks its worker just after it starts listening
	while [ $i -lt 50 ]; do
		kids=$(cat /proc/"$1"/task/*/children 2>/dev/null)
		[ -n "$kids" ] || kids=$(pgrep -P "$1" 2>/dev/null)
		[ -n "$kids" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	set -- $kids
	echo "${1:-}"
}

# A field of /proc/$1/status in kB (VmRSS, VmHWM, Threads...), or "".
proc_field() {
	awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status" 2>/dev/null
}

# How many sockets listen on 127.0.0.1:$1 (SO_REUSEPORT workers: one each).
listeners() {
	ss -Htln "sport = :$1" 2>/dev/null | wc -l | tr -d ' '
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

# Waits for process $1 started by spawn to end by itself and forgets it
# (so that the cleanup never signals a reused pid).
wait_done() {
	wait "$1" 2>/dev/null
	rest=""
	for p in $PIDS; do [ "$p" = "$1" ] || rest="$rest $p"; done
	PIDS=$rest
}

# CPU time (user + system, all threads) process $1 has used, in clock
# ticks; "" when it is gone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# Runs wrk with $3 connections against port $2, after a warm-up, and sets
# WRK_LINE to its "BENCH ..." line ("" when it failed); $1 names the run.
# With $4 (a pid: the proxy's process that does the work), the line also
# gets cpu_us=, that process's CPU time (user + system) per request in
# microseconds over the measured run: the proxy's cost per request, which
# does not depend on how the scheduler shared the cores with the rest.
run_wrk() {
	name=$1 port=$2 conns=$3 cpu_pid=${4:-}
	url="http://127.0.0.1:$port/"
	# wrk runs in the background so that a signal stops the benchmark at
	# once (a shell runs its traps only between foreground commands)
	if [ "$WARMUP" -gt 0 ]; then
		spawn "$WRK_CPU" "wrk-$name-warmup" wrk -t1 -c"$conns" -d"${WARMUP}s" "$url"
		wait_done "$LAST_PID"
	fi
	note "measuring $name for ${SECS}s ($conns connections)"
	t0=""
	[ -n "$cpu_pid" ] && t0=$(cpu_ticks "$cpu_pid")
	spawn "$WRK_CPU" "wrk-$name" wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$TMP/report.lua" "$url"
	wait_done "$LAST_PID"
	t1=""
	[ -n "$t0" ] && t1=$(cpu_ticks "$cpu_pid")
	WRK_LINE=$(grep '^BENCH ' "$TMP/wrk-$name.log" | sed 's/^BENCH //')
	if [ -n "$WRK_LINE" ] && [ -n "$t1" ]; then
		WRK_LINE="$WRK_LINE $(echo "$WRK_LINE" | awk -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" '{
			for (i = 1; i <= NF; i++) if ($i ~ /^requests=/) n = substr($i, 10) + 0
			if (n > 0) printf "cpu_us=%.2f", (t1 - t0) * 1e6 / hz / n }')"
	fi
	if [ -z "$WRK_LINE" ]; then
		note "wrk failed against $name:"
		sed 's/^/  /' "$TMP/wrk-$name.log" >&2
	fi
}

# ---- the proxies --------------------------------------------------------
# start_NAME CPUS PROBE [WORKERS] starts one proxy pinned to CPUS, waits
# until it is ready (PROBE: "http" sends it a request, "tcp" only waits for
# its listening socket) and sets P_PID (what to stop), P_MEM_PID (whose
# memory is measured: for nginx its worker), P_PORT, P_ADMIN (canaryd); or
# returns 1 after printing why, having stopped what it started.

P_PID="" P_MEM_PID="" P_PORT="" P_ADMIN=""

ready() {
	if [ "$1" = http ]; then wait_http "$P_PORT" / "$P_PID"; else wait_listen "$P_PORT" "$P_PID"; fi
}

start_haproxy() {
	[ -x "$HAPROXY" ] || { note "haproxy is not installed"; return 1; }
	P_PORT=$(free_port)
	render "$HERE/haproxy.cfg.in" "$P_PORT" >"$TMP/haproxy.cfg"
	spawn "$1" haproxy "$HAPROXY" -db -f "$TMP/haproxy.cfg"
	P_PID=$LAST_PID P_MEM_PID=$LAST_PID
	if ! ready "$2"; then
		note "haproxy did not start:"; sed 's/^/  /' "$TMP/haproxy.log" >&2
		stop "$P_PID"
		return 1
	fi
}

start_nginx() {
	P_PORT=$(free_port)
	mkdir -p "$TMP/nginx-proxy.tmp"
	render "$HERE/nginx.conf.in" "$P_PORT" >"$TMP/nginx-proxy.conf"
	spawn "$1" nginx-proxy "$NGINX" -p "$TMP" -e "$TMP/nginx-proxy.error.log" -c "$TMP/nginx-proxy.conf"
	P_PID=$LAST_PID
	if ! ready "$2"; then
		note "nginx did not start:"; cat "$TMP/nginx-proxy.log" "$TMP/nginx-proxy.error.log" >&2 2>/dev/null
		stop "$P_PID"
		return 1
	fi
	P_MEM_PID=$(nginx_worker "$P_PID")
}

start_canaryd() {
	[ -x "$CANARYD" ] || { note "'$CANARYD' is not built"; return 1; }
	P_PORT=$(free_port)
	P_ADMIN=$(free_port)
	rm -rf "$TMP/canaryd-data"
	mkdir -p "$TMP/canaryd-data"
	workers_line=""
	[ -n "${3:-}" ] && workers_line="  workers: $3"
	cat >"$TMP/canaryd.yaml" <<EOF
apiVersion: canaryd/v1
kind: Canary
metadata: {name: bench}
spec:
  router: builtin
  listen: 127.0.0.1:$P_PORT
$workers_line
  limits: {maxConnections: $MAXCONN}
  stable: {revision: v1, endpoints: [127.0.0.1:$UP1]}
  canary: {revision: v2, endpoints: [127.0.0.1:$UP2]}
  analysis: {interval: 1h, threshold: 1, maxWeight: 10, stepWeight: 10, metrics: [{name: request-success-rate, thresholdRange: {min: 0}, interval: 1m}]}
EOF
	spawn "$1" canaryd $CANARYD_WRAP "$CANARYD" -c "$TMP/canaryd.yaml" --admin "127.0.0.1:$P_ADMIN" \
		--data-dir "$TMP/canaryd-data" --log-level warn
	P_PID=$LAST_PID P_MEM_PID=$LAST_PID
	if ! wait_http "$P_ADMIN" /healthz "$P_PID" || ! ready "$2"; then
		note "canaryd did not start:"; sed 's/^/  /' "$TMP/canaryd.log" >&2
		stop "$P_PID"
		return 1
	fi
	# the split must be 90/10: wait for the rollout's first step, or set
	# it by hand (which also pauses the analysis); admin API only
	i=0 weight=""
	while [ $i -lt 30 ]; do
		weight=$(curl -s --max-time 1 "http://127.0.0.1:$P_ADMIN/api/v1/canaries/bench" |
			sed -n 's/.*"canaryWeight"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
		[ "$weight" = 10 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	if [ "$weight" != 10 ]; then
		note "canary weight is '${weight:-unknown}', setting it to 10"
		curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d '{"weight": 10}' \
			"http://127.0.0.1:$P_ADMIN/api/v1/canaries/bench/weight" >/dev/null
	fi
}

# The share of requests canaryd's own counters put on the canary, in
# percent ("" when unknown).
canary_share() {
	curl -s --max-time 5 "http://127.0.0.1:$P_ADMIN/metrics" | awk '
		/^canaryd_requests_total\{/ && /canary="bench"/ {
			n = $NF + 0; total += n
			if ($0 ~ /target="canary"/) canary += n
		}
		END { if (total > 0) printf "%.1f", 100 * canary / total }'
}

# Starts the two nginx upstreams (one worker each, `return 200 "ok\n"`)
# on free ports UP1 (stable) and UP2 (canary), or dies.
start_upstreams() {
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
events { worker_connections $NGINX_CONNS; }
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
        listen 127.0.0.1:$port backlog=4096;
        location / { return 200 "ok\n"; }
    }
}
EOF
	eval cpu=\$UP${u}_CPU
	spawn "$cpu" "nginx-up$u" "$NGINX" -p "$TMP" -e "$TMP/nginx-up$u.error.log" -c "$TMP/nginx-up$u.conf"
	wait_http "$port" / "$LAST_PID" || { cat "$TMP/nginx-up$u.log" "$TMP/nginx-up$u.error.log" >&2 2>/dev/null; die "upstream nginx on port $port did not start"; }
done
}
