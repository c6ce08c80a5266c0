#!/bin/sh
# bench/profile.sh [BUILD_DIR] - where canaryd's proxy spends its time.
#
# Starts the benchmark's two nginx upstreams and canaryd (one canary at
# weight 10, pinned to BENCH_PROXY_CPU), loads it with wrk
# (PROFILE_CONNECTIONS kept-alive connections, wrk on BENCH_WRK_CPU) and
# profiles canaryd meanwhile:
#   perf       `perf record -g -p PID` for PROFILE_SECONDS (10), when perf
#              works here; with the hardware cycles event when the machine
#              exposes it (`perf stat -e instructions true` counts), else
#              with the cpu-clock software event (virtual machines)
#   callgrind  otherwise: canaryd runs under `valgrind --tool=callgrind` and
#              wrk loads it for PROFILE_SECONDS (3; callgrind is ~50x
#              slower), then canaryd is stopped so callgrind writes its data
# Prints the top PROFILE_TOP (30) functions by self cost and writes the
# whole report to bench/profile-last.txt (PROFILE_OUT). PROFILE_TOOL=perf
# or callgrind forces one. Stops everything it started.
set -u

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
PROXY_CPU=${BENCH_PROXY_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
CONNS=${PROFILE_CONNECTIONS:-50}
TOP=${PROFILE_TOP:-30}
OUT=${PROFILE_OUT:-$HERE/profile-last.txt}
TOOL=${PROFILE_TOOL:-auto}
WARMUP=${BENCH_WARMUP:-2}
MAXCONN=12000
NGINX_CONNS=4096

. "$HERE/lib.sh"

for tool in wrk ss curl awk; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (run 'make setup')"
done
[ -x "$NGINX" ] || die "'nginx' is not installed (run 'make setup'); it serves the upstreams"
[ -x "$CANARYD" ] || die "'$CANARYD' is not built (run 'make all')"

# perf that records here: "cycles" when hardware counters count, else
# "cpu-clock" when the software clock does, else "" (not usable)
perf_event() {
	command -v perf >/dev/null 2>&1 || return 0
	if perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9][0-9]*,'; then
		echo cycles
	elif perf stat -x, -e cpu-clock true 2>&1 | grep -q '^[0-9.][0-9.]*,'; then
		echo cpu-clock
	fi
}

EVENT=""
case $TOOL in
auto | perf)
	EVENT=$(perf_event)
	if [ -n "$EVENT" ]; then
		TOOL=perf
	elif [ "$TOOL" = perf ]; then
		die "perf does not work here (install it with 'apt-get install linux-perf'; in a container, perf_event_open may be forbidden)"
	else
		command -v perf >/dev/null 2>&1 || note "perf is not installed ('apt-get install linux-perf'); using callgrind"
		command -v perf >/dev/null 2>&1 && note "perf cannot record here; using callgrind"
		TOOL=callgrind
	fi
	;;
callgrind) ;;
*) die "PROFILE_TOOL must be perf, callgrind or auto, not '$TOOL'" ;;
esac
if [ "$TOOL" = callgrind ]; then
	command -v valgrind >/dev/null 2>&1 || die "neither perf nor valgrind works here (apt-get install linux-perf valgrind)"
	command -v callgrind_annotate >/dev/null 2>&1 || die "'callgrind_annotate' is missing (it comes with valgrind)"
	SECS=${PROFILE_SECONDS:-3}
	WARMUP=0
	# callgrind makes canaryd start slowly: allow 60 s instead of 10
	WAIT_TRIES=600
	CANARYD_WRAP="valgrind --tool=callgrind --callgrind-out-file=$TMP/callgrind.out"
else
	SECS=${PROFILE_SECONDS:-10}
fi
case $SECS in '' | *[!0-9]*) die "PROFILE_SECONDS must be a whole number, not '$SECS'" ;; esac

start_upstreams
start_canaryd "$PROXY_CPU" http || die "canaryd did not start"
pid=$P_PID
note "profiling canaryd (pid $pid) with $TOOL${EVENT:+ ($EVENT)} for ${SECS}s under $CONNS connections"

{
	echo "canaryd profile: $TOOL${EVENT:+ -e $EVENT}, ${SECS}s of wrk -t1 -c$CONNS, 90/10 split over two nginx upstreams"
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $NCPU cores, kernel $(uname -r), $CANARYD built $(date -u -r "$CANARYD" +%Y-%m-%dT%H:%M:%SZ)"
	echo
} >"$TMP/profile.txt"

# perf report's table without blank lines, tips and the empty IPC columns
# (cpu-clock samples carry no IPC)
tidy_perf() {
	sed -e '/^$/d' -e '/^# (Tip/d' -e '/^#$/d' -e '/^# To display/d' \
	    -e 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' -e 's/[[:space:]]*IPC[[:space:]]*\[IPC Coverage\][[:space:]]*$//' \
	    -e 's/[[:space:]][[:space:]]*\.\.\.\.*[[:space:]]*$//'
}

if [ "$TOOL" = perf ]; then
	if [ "$WARMUP" -gt 0 ]; then
		spawn "$WRK_CPU" wrk-warmup wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$P_PORT/"
		wait_done "$LAST_PID"
	fi
	# wrk runs 2 s longer than perf records, so every sample is under load
	spawn "$WRK_CPU" wrk wrk -t1 -c"$CONNS" -d"$((SECS + 2))s" --latency "http://127.0.0.1:$P_PORT/"
	wrk_pid=$LAST_PID
	sleep 1
	spawn "" perf perf record -e "$EVENT" -g -p "$pid" -o "$TMP/perf.data" -- sleep "$SECS"
	wait_done "$LAST_PID"
	wait_done "$wrk_pid"
	grep -q 'Captured and wrote' "$TMP/perf.log" || { sed 's/^/  /' "$TMP/perf.log" >&2; die "perf record failed"; }
	stop "$pid"
	{
		grep -E '^ *Latency  |Requests/sec' "$TMP/wrk.log" | sed 's/^ */wrk (under perf): /'
		echo
		echo "share by object (perf report --sort dso):"
		perf report -i "$TMP/perf.data" --no-children --sort dso --stdio -g none \
			--percent-limit 0.5 2>/dev/null | tidy_perf | grep -v '^#'
		echo
		echo "top functions by self cost, whole process with the kernel (perf report --no-children --sort dso,symbol):"
		perf report -i "$TMP/perf.data" --no-children --sort dso,symbol --stdio -g none \
			--percent-limit 0.3 2>/dev/null | tidy_perf
		echo
		echo "top functions by self cost in canaryd's own code (percent of all samples):"
		perf report -i "$TMP/perf.data" --no-children --dsos "$(basename "$CANARYD")" --sort symbol \
			--percentage absolute --stdio -g none --percent-limit 0.05 2>/dev/null | tidy_perf
	} >>"$TMP/profile.txt"
else
	run_wrk profile "$P_PORT" "$CONNS"
	# callgrind writes its data when canaryd exits; SIGTERM drains first
	kill -TERM "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	stop "$pid"
	[ -s "$TMP/callgrind.out" ] || { sed 's/^/  /' "$TMP/canaryd.log" >&2; die "callgrind wrote no data"; }
	{
		echo "$WRK_LINE" | sed 's/^/wrk (under callgrind): /'
		echo
		echo "top functions by self cost (callgrind_annotate --inclusive=no):"
		# the totals and the function table; no preamble, no source listings
		callgrind_annotate --inclusive=no --auto=no --threshold=99.9 "$TMP/callgrind.out" 2>/dev/null |
			awk '/PROGRAM TOTALS/ { on = 1 } on && !/^-+$/ && !/^$/'
	} >>"$TMP/profile.txt"
fi

cp "$TMP/profile.txt" "$OUT" || die "cannot write '$OUT'"
# the head of the report: the header and the first TOP functions
awk -v top="$TOP" '
	/^top functions/ { inlist = 1; n = 0; print; next }
	!inlist { print; next }
	/^#/ || /^-+$/ || /^Ir/ || /^$/ { print; next }
	n < top { print; n++ }' "$OUT"
echo
echo "whole report: $OUT"
