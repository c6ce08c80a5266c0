#!/bin/sh
# bench/run.sh BUILD_DIR - canaryd's built-in proxy against HAProxy and nginx.
#
# Starts two nginx upstreams on loopback (one worker each, `return 200
# "ok\n"`), then runs four phases, each proxy back to back and freshly
# started for each phase, every proxy splitting traffic 90/10 over the two
# upstreams with one worker/thread:
#   low      wrk with BENCH_CONNECTIONS (50) kept-alive connections against
#            the first upstream directly (the limit), HAProxy (nbthread 1),
#            nginx (worker_processes 1) and canaryd
#   high     the same with BENCH_HIGH_CONNECTIONS (1000)
#   idle     each proxy's VmRSS right after start-up, then with
#            BENCH_IDLE_CONNECTIONS (10000) idle keep-alive client
#            connections open (bench/idle_conns.py: one GET each, then held)
#   workers  canaryd with `workers: 1` and `workers: 2` at BENCH_CONNECTIONS
# Each proxy is pinned to one core and wrk to another. Prints the tables,
# canaryd's ratios to its peers and a verdict per target of issue 3, and
# writes every figure to bench/last-run.json (bench/report.py). Stops
# everything it started.
#
# Environment: BENCH_SECONDS per measured run (10), BENCH_CONNECTIONS (50),
# BENCH_HIGH_CONNECTIONS (1000), BENCH_IDLE_CONNECTIONS (10000),
# BENCH_WARMUP seconds before each measured run (2), BENCH_ROUNDS (3: each
# load table is measured that many times, interleaved; the report gives
# the medians), BENCH_PHASES (the
# phases to run, "low high idle workers"), BENCH_PROXY_CPU (0),
# BENCH_WRK_CPU (1), BENCH_UPSTREAM_CPUS (cores for the two upstreams;
# default 2,3 when the machine has 4 cores or more, else unpinned),
# BENCH_WORKERS2_CPUS (cores for the 2-worker canaryd, a comma list;
# default the proxy's core plus a free one), BENCH_JSON (bench/last-run.json), BENCH_KEEP=1
# keeps the temporary directory (configurations, logs, wrk output).
set -u

BUILD=${1:-build}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-50}
HIGH_CONNS=${BENCH_HIGH_CONNECTIONS:-1000}
IDLE_CONNS=${BENCH_IDLE_CONNECTIONS:-10000}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
PHASES=${BENCH_PHASES:-low high idle workers}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
JSON=${BENCH_JSON:-$HERE/last-run.json}

. "$HERE/lib.sh"

for tool in wrk ss curl awk python3; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (run 'make setup')"
done
[ -x "$NGINX" ] || die "'nginx' is not installed (run 'make setup'); it serves the upstreams"
for n in "$SECS" "$CONNS" "$HIGH_CONNS" "$IDLE_CONNS" "$WARMUP" "$ROUNDS"; do
	case $n in '' | *[!0-9]*) die "'$n' is not a whole number (BENCH_SECONDS, BENCH_*CONNECTIONS, BENCH_WARMUP, BENCH_ROUNDS)" ;; esac
done
[ "$SECS" -ge 1 ] || die "BENCH_SECONDS must be at least 1"
[ "$ROUNDS" -ge 1 ] || die "BENCH_ROUNDS must be at least 1"

# Every proxy, wrk and the idle client inherit this: 1000 and 10 000
# connections need more descriptors than the usual 1024. Only the soft
# limit can be raised here (to the hard one).
hard=$(ulimit -H -n)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || note "cannot raise the open-files limit to $hard"
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
if [ "$IDLE_CONNS" -gt $((NOFILE - 512)) ]; then
	note "open-files limit is $NOFILE: $((NOFILE - 512)) idle connections instead of $IDLE_CONNS"
	IDLE_CONNS=$((NOFILE - 512))
fi
if [ "$HIGH_CONNS" -gt $((NOFILE / 2 - 64)) ]; then
	note "open-files limit is $NOFILE: $((NOFILE / 2 - 64)) connections instead of $HIGH_CONNS"
	HIGH_CONNS=$((NOFILE / 2 - 64))
fi
# room for every client connection plus the upstream side
MAXCONN=$((IDLE_CONNS + 2000))
[ "$MAXCONN" -ge $((HIGH_CONNS * 2 + 100)) ] || MAXCONN=$((HIGH_CONNS * 2 + 100))
NGINX_CONNS=$MAXCONN
[ "$NGINX_CONNS" -le "$NOFILE" ] || NGINX_CONNS=$NOFILE

# The 2-worker canaryd's cores: the proxy's core plus the first core that
# neither wrk nor an upstream uses; failing that, one an upstream uses;
# failing that (2 cores), wrk's own. WORKERS2_SHARED says what it shares.
WORKERS2_SHARED=""
if [ -n "${BENCH_WORKERS2_CPUS:-}" ]; then
	WORKERS2_CPUS=$BENCH_WORKERS2_CPUS
	case ",$WORKERS2_CPUS," in
	*",$WRK_CPU,"*) WORKERS2_SHARED="BENCH_WORKERS2_CPUS: wrk and the proxy share core $WRK_CPU" ;;
	esac
else
	second="" c=0
	while [ $c -lt "$NCPU" ]; do
		case ",$PROXY_CPU,$WRK_CPU,$BENCH_UPSTREAM_CPUS," in *",$c,"*) ;; *) second=$c; break ;; esac
		c=$((c + 1))
	done
	if [ -z "$second" ]; then
		c=0
		while [ $c -lt "$NCPU" ]; do
			case ",$PROXY_CPU,$WRK_CPU," in *",$c,"*) ;; *) second=$c; break ;; esac
			c=$((c + 1))
		done
		[ -n "$second" ] && WORKERS2_SHARED="core $second also runs an upstream"
	fi
	if [ -z "$second" ]; then
		second=$WRK_CPU
		WORKERS2_SHARED="only $NCPU cores: wrk and the proxy share core $WRK_CPU"
	fi
	WORKERS2_CPUS="$PROXY_CPU,$second"
fi

# All figures go here, one line each, "KIND ROW key=value..."; bench/report.py
# turns them into the tables, the verdicts and bench/last-run.json.
RESULTS="$TMP/results"
: >"$RESULTS"
record() { echo "$*" >>"$RESULTS"; }

# ---- phases -------------------------------------------------------------

# One load table: direct, haproxy, nginx, canaryd with $1 connections,
# ROUNDS times over, the rows interleaved (direct, haproxy, nginx, canaryd,
# direct, haproxy, ...) so that a slow spell of the machine hits every row
# alike; the report takes each figure's median over the rounds.
phase_load() {
	conns=$1
	round=1
	while [ "$round" -le "$ROUNDS" ]; do
		run_wrk "direct-c$conns-r$round" "$UP1" "$conns"
		if [ -n "$WRK_LINE" ]; then
			record "load $conns direct round=$round $WRK_LINE"
		else
			record "load $conns direct round=$round status=failed"
		fi
		for proxy in haproxy nginx canaryd; do
			if ! "start_$proxy" "$PROXY_CPU" http; then
				record "load $conns $proxy round=$round status=failed"
				continue
			fi
			run_wrk "$proxy-c$conns-r$round" "$P_PORT" "$conns" "$P_MEM_PID"
			if [ -z "$WRK_LINE" ]; then
				record "load $conns $proxy round=$round status=failed"
			else
				extra=""
				if [ "$proxy" = canaryd ]; then
					share=$(canary_share)
					[ -n "$share" ] && extra="canary_share=$share" && note "canaryd sent $share% of requests to the canary"
				fi
				record "load $conns $proxy round=$round $WRK_LINE hwm_kb=$(proc_field "$P_MEM_PID" VmHWM) $extra"
			fi
			stop "$P_PID"
		done
		round=$((round + 1))
	done
}

# Idle memory: each proxy's VmRSS after start-up, then with IDLE_CONNS idle
# keep-alive connections (one GET each) held open by bench/idle_conns.py.
phase_idle() {
	for proxy in haproxy nginx canaryd; do
		if ! "start_$proxy" "$PROXY_CPU" tcp; then
			record "idle 0 $proxy status=failed"
			continue
		fi
		sleep 1
		start_kb=$(proc_field "$P_MEM_PID" VmRSS)
		start_anon_kb=$(proc_field "$P_MEM_PID" RssAnon)
		master=""
		[ "$proxy" = nginx ] && master="master_start_kb=$(proc_field "$P_PID" VmRSS)"
		note "opening $IDLE_CONNS idle connections to $proxy"
		spawn "$WRK_CPU" "idle-$proxy" python3 "$HERE/idle_conns.py" "$P_PORT" \
			--count "$IDLE_CONNS" --open-timeout 90 --hold 60
		client=$LAST_PID
		# bounded: the client gives up opening after 90 s
		i=0
		while [ $i -lt 1000 ] && kill -0 "$client" 2>/dev/null &&
			! grep -qs '^IDLE ready' "$TMP/idle-$proxy.log"; do
			sleep 0.1
			i=$((i + 1))
		done
		ready_line=$(grep -s '^IDLE ready' "$TMP/idle-$proxy.log" | sed 's/^IDLE ready //')
		if [ -z "$ready_line" ]; then
			note "idle client failed against $proxy:"; sed 's/^/  /' "$TMP/idle-$proxy.log" >&2
			stop "$client"
			record "idle $IDLE_CONNS $proxy start_kb=$start_kb status=failed"
			stop "$P_PID"
			continue
		fi
		# let the proxy settle (lazy frees, timers) before reading its size
		sleep 1
		idle_kb=$(proc_field "$P_MEM_PID" VmRSS)
		idle_anon_kb=$(proc_field "$P_MEM_PID" RssAnon)
		hwm_kb=$(proc_field "$P_MEM_PID" VmHWM)
		[ "$proxy" = nginx ] && master="$master master_idle_kb=$(proc_field "$P_PID" VmRSS)"
		stop "$client"
		done_line=$(grep '^IDLE done' "$TMP/idle-$proxy.log" | sed 's/^IDLE done //')
		record "idle $IDLE_CONNS $proxy start_kb=$start_kb idle_kb=$idle_kb start_anon_kb=$start_anon_kb idle_anon_kb=$idle_anon_kb hwm_kb=$hwm_kb $ready_line $done_line $master"
		stop "$P_PID"
	done
}

# canaryd with workers: 1 and workers: 2, both at CONNS connections. A
# build that refuses the key, or accepts it and still runs one loop (one
# listening socket, no more threads than with 1), gets "n/a" rows.
phase_workers() {
	threads1=""
	for w in 1 2; do
		cpus=$PROXY_CPU
		[ "$w" = 2 ] && cpus=$WORKERS2_CPUS
		if ! start_canaryd "$cpus" http "$w"; then
			if grep -qi 'workers' "$TMP/canaryd.log" 2>/dev/null; then
				record "workers $w canaryd status=unsupported reason=refused"
			else
				record "workers $w canaryd status=failed"
			fi
			continue
		fi
		threads=$(proc_field "$P_PID" Threads)
		nlisten=$(listeners "$P_PORT")
		if [ "$w" = 1 ]; then
			threads1=$threads
		elif [ "${nlisten:-0}" -lt 2 ] && [ "${threads:-0}" -le "${threads1:-0}" ]; then
			note "canaryd accepted 'workers: 2' but runs $threads threads (${threads1:-?} with 1) and $nlisten listening socket(s): not supported by this build"
			record "workers 2 canaryd status=unsupported reason=ignored threads=$threads listeners=$nlisten"
			stop "$P_PID"
			continue
		fi
		run_wrk "canaryd-w$w" "$P_PORT" "$CONNS" "$P_MEM_PID"
		if [ -n "$WRK_LINE" ]; then
			record "workers $w canaryd $WRK_LINE hwm_kb=$(proc_field "$P_MEM_PID" VmHWM) threads=$threads listeners=$nlisten cpus=$cpus"
		else
			record "workers $w canaryd status=failed"
		fi
		stop "$P_PID"
	done
}

# ---- upstreams ----------------------------------------------------------
start_upstreams

record "meta secs=$SECS warmup=$WARMUP rounds=$ROUNDS conns=$CONNS high_conns=$HIGH_CONNS idle_conns=$IDLE_CONNS ncpu=$NCPU proxy_cpu=$PROXY_CPU wrk_cpu=$WRK_CPU upstream_cpus=${BENCH_UPSTREAM_CPUS:-unpinned} workers2_cpus=$WORKERS2_CPUS pinned=${PIN:-0} nofile=$NOFILE haproxy_maxconn=$MAXCONN nginx_worker_connections=$NGINX_CONNS"
record "text kernel $(uname -r)"
# other work on the machine skews every figure; the report warns about it
record "text loadavg_start $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
record "text cpu_model $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
record "text workers2_shared $WORKERS2_SHARED"
record "text phases $PHASES"
record "text haproxy_version $("$HAPROXY" -v 2>/dev/null | awk 'NR == 1 { print $3 }')"
record "text nginx_version $("$NGINX" -v 2>&1 | sed -n 's|.*nginx/||p')"
if [ -x "$CANARYD" ]; then
	record "text canaryd_binary $CANARYD $(date -u -r "$CANARYD" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null) sha256:$(sha256sum "$CANARYD" 2>/dev/null | cut -c1-12)"
fi
record "text wrk_version $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"

for phase in $PHASES; do
	case $phase in
	low) phase_load "$CONNS" ;;
	high) phase_load "$HIGH_CONNS" ;;
	idle) phase_idle ;;
	workers) phase_workers ;;
	*) die "unknown phase '$phase' in BENCH_PHASES (low high idle workers)" ;;
	esac
done

record "text loadavg_end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"

# ---- report -----------------------------------------------------------------
[ "${BENCH_KEEP:-0}" = 1 ] && cp "$RESULTS" "$TMP/results.txt"
python3 "$HERE/report.py" "$RESULTS" "$JSON"
