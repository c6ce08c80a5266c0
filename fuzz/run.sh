#!/bin/sh
# Builds every libFuzzer target (fuzz/fuzz_*.c) with ASan+UBSan and runs it.
#
#   sh fuzz/run.sh [SECONDS]   the CI run (make fuzz): each target SECONDS
#                              (default 30) from its seed corpus, in a scratch
#                              directory so that the repo does not grow
#   sh fuzz/run.sh --long      make fuzz-long: each target for its share of
#                              at least 10 million executions in all (table
#                              below), with a small -timeout and
#                              -report_slow_units; the corpus it grows is
#                              kept in build-fuzz/corpus/NAME for the next run
#   sh fuzz/run.sh --build     build only
#
# The targets are built first (2 at a time), then run FUZZ_JOBS at a time
# (the number of cores by default): each libFuzzer run is one process on
# one core, so two cores run two targets for the same time and the same
# executions each, in half the wall time. A run's lines come out in the
# targets' order whatever order they finished in.
#
# A target NAME has fuzz/fuzz_NAME.c, seeds in fuzz/corpus/NAME/ and a
# dictionary fuzz/dict/NAME.dict (both optional). A crash, a leak, a hang
# (-timeout) or a memory blow-up (-rss_limit_mb) fails the run; the input is
# kept in build-fuzz/artifacts/ (replay: build-fuzz/fuzz_NAME FILE). Every run
# ends with one line per target: executions, time, coverage (cov = edges,
# ft = features), corpus size, slow inputs (over 1 s in --long; and the
# slowest input's time) and crashes found.
set -e
mode=ci
SECONDS_EACH=30
case "$1" in
--long) mode=long ;;
--build) mode=build ;;
# internal: one target NAME, built already (the runs started below)
--one) mode=one ;;
"") ;;
*) SECONDS_EACH=$1 ;;
esac
cd "$(dirname "$0")/.."
out=build-fuzz
mkdir -p "$out/obj" "$out/artifacts"
CC=${FUZZ_CC:-clang}
PKGS="libuv yaml-0.1 jansson sqlite3 libcurl libcrypto"
# shellcheck disable=SC2046
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# src/ and its layer folders, as the Makefile has them
INC=$(find src -maxdepth 1 -mindepth 1 -type d | sort | sed 's/^/-I/' | tr '\n' ' ')
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $SAN -Isrc $INC $PKG_CFLAGS"
HARNESS_WARN="-Wall -Wextra -Wshadow -Werror -Wno-unused-parameter"

# Per target: extra libFuzzer flags | executions in --long | time cap in
# --long (s). The executions add up to 13.44 million, about 26 minutes on
# one core of the machine this was measured on (admin, a whole daemon per
# input at ~50 a second, takes most of it); the caps bound a slower one.
# Targets not listed get 200000 executions and 600 s.
target_row() {
	case "$1" in
	request)  echo "-max_len=8192|2000000|900" ;;
	response) echo "-max_len=8192|2000000|900" ;;
	chunked)  echo "-max_len=4096|2000000|900" ;;
	template) echo "-max_len=2048|1500000|900" ;;
	util)     echo "-max_len=256|1500000|600" ;;
	assets)   echo "-max_len=512|1000000|600" ;;
	provider) echo "-max_len=8192|1000000|900" ;;
	datadog)  echo "-max_len=8192|500000|600" ;;
	newrelic) echo "-max_len=8192|500000|600" ;;
	config)   echo "-max_len=65536 -len_control=0|1000000|1200" ;;
	csv)      echo "-max_len=4096|400000|600" ;;
	admin)    echo "-max_len=4096 -close_fd_mask=2|40000|1200" ;;
	render)   echo "-max_len=16384|300000|900" ;;
	haproxy)  echo "-max_len=16384|500000|600" ;;
	haproxy_log) echo "-max_len=2048|500000|600" ;;
	*)        echo "|200000|600" ;;
	esac
}
# One target, built already: runs it and leaves in $out/NAME.res its
# result line, its executions and its status ("ok" or "FAILED"), and on a
# failure the log's tail in $out/NAME.tail. It prints a line when it starts
# and its result line when it ends (short lines: two runs side by side do
# not mix them); it exits 0 whatever the target did (xargs stops on 255).
run_one() { # <fuzz/fuzz_NAME.c>
	name=$(basename "$1" .c)
	short=${name#fuzz_}
	bin="$out/$name"
	rm -f "$out/$name.res" "$out/$name.tail"
	row=$(target_row "$short")
	extra=${row%%|*}
	rest=${row#*|}
	runs=${rest%%|*}
	cap=${rest#*|}
	seeds=fuzz/corpus/$short
	dict=fuzz/dict/$short.dict
	art="$out/artifacts/$short"
	mkdir -p "$art"
	before=$(ls "$art" | wc -l)
	set -- -rss_limit_mb=2048 -artifact_prefix="$art/" -print_final_stats=1
	[ -f "$dict" ] && set -- "$@" -dict="$dict"
	if [ "$mode" = long ]; then
		work="$out/corpus/$short"
		mkdir -p "$work"
		set -- "$@" -runs="$runs" -max_total_time="$cap" -timeout=3 -report_slow_units=1
		echo "fuzz: $name, $runs executions (at most ${cap}s)"
	else
		work=$(mktemp -d)
		set -- "$@" -max_total_time="$SECONDS_EACH" -timeout=10
		echo "fuzz: $name for ${SECONDS_EACH}s"
	fi
	[ -d "$seeds" ] || seeds=""
	log="$out/$name.log"
	t0=$(date +%s)
	# shellcheck disable=SC2086
	if "$bin" "$@" $extra "$work" $seeds >"$log" 2>&1; then
		result=ok
	else
		result=FAILED
		tail -n 40 "$log" >"$out/$name.tail"
	fi
	t1=$(date +%s)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	[ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -n1 | tr -d '#')
	execs=${execs:-0}
	last=$(grep -E 'cov: [0-9]+' "$log" | tail -n1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$work" | wc -l)
	slow=$(grep -c '^Slowest unit:' "$log" || true)
	slowest=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -n1)
	found=$(( $(ls "$art" | wc -l) - before ))
	line=$(printf '%-14s %-6s %9s execs %5ss  cov %5s  ft %6s  corpus %5s  slow %s (slowest %ss)  crashes %s' \
		"$name" "$result" "$execs" "$((t1 - t0))" "${cov:-?}" "${ft:-?}" "$corp" "$slow" \
		"${slowest:-?}" "$found")
	echo "$line"
	[ "$mode" = long ] || rm -rf "$work"
	printf '%s\n%s\n%s\n' "$line" "$execs" "$result" >"$out/$name.res"
}

# sh fuzz/run.sh --one MODE SECONDS fuzz/fuzz_NAME.c: the runs started below
if [ "$mode" = one ]; then
	mode=$2
	SECONDS_EACH=$3
	run_one "$4" || true
	exit 0
fi

jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

# the library, once, instrumented for coverage (rebuilt when any source is newer)
LIB_SRC=$(find src -maxdepth 2 -name '*.c' | sort | grep -v -e '/main\.c$' -e '/canaryctl\.c$')
OBJS=""
stale=""
for f in $LIB_SRC; do
	o="$out/obj/$(basename "$f" .c).o"
	OBJS="$OBJS $o"
	if [ ! -f "$o" ] || [ -n "$(find src -newer "$o" -name '*.[ch]' | head -n1)" ]; then
		stale="$stale $f"
	fi
done
if [ -n "$stale" ]; then
	echo "fuzz: compiling $(echo "$stale" | wc -w | sed 's/ //g') library files"
	# shellcheck disable=SC2086
	printf '%s\n' $stale | xargs -P "$jobs" -I{} sh -c \
		"$CC $CFLAGS -fsanitize=fuzzer-no-link -c {} -o $out/obj/\$(basename {} .c).o"
fi

# every target, linked side by side (rebuilt when any source is newer)
targets=""
stale=""
for f in fuzz/fuzz_*.c; do
	[ -f "$f" ] || continue
	targets="$targets $f"
	bin="$out/$(basename "$f" .c)"
	if [ ! -x "$bin" ] || [ -n "$(find src fuzz -newer "$bin" -name '*.[ch]' | head -n1)" ]; then
		stale="$stale $f"
	fi
done
if [ -n "$stale" ]; then
	echo "fuzz: linking $(echo "$stale" | wc -w | sed 's/ //g') targets"
	# -rdynamic: fuzz/netguard.h's connect() and getaddrinfo() must be
	# the ones libuv and libcurl call
	# shellcheck disable=SC2086
	printf '%s\n' $stale | xargs -P "$jobs" -I{} sh -c \
		"$CC $CFLAGS $HARNESS_WARN -fsanitize=fuzzer -rdynamic {} $OBJS -o $out/\$(basename {} .c) $PKG_LIBS -lm -lpthread -ldl"
fi
[ "$mode" = build ] && exit 0

# the runs, $jobs at a time; then the summary in the targets' order
echo "fuzz: $(echo "$targets" | wc -w | sed 's/ //g') targets, $jobs at a time"
# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "$jobs" -n 1 sh "$0" --one "$mode" "$SECONDS_EACH" || true
status=0
summary=""
total_execs=0
for f in $targets; do
	name=$(basename "$f" .c)
	if [ -f "$out/$name.tail" ]; then
		echo "fuzz: $name failed, the end of $out/$name.log:"
		cat "$out/$name.tail"
	fi
	if [ ! -f "$out/$name.res" ]; then
		summary="$summary$name did not run
"
		status=1
		continue
	fi
	line=$(sed -n 1p "$out/$name.res")
	execs=$(sed -n 2p "$out/$name.res")
	[ "$(sed -n 3p "$out/$name.res")" = ok ] || status=1
	total_execs=$((total_execs + execs))
	summary="$summary$line
"
done
echo "fuzz: summary ($mode)"
printf '%s' "$summary"
echo "fuzz: $total_execs executions in all"
if [ "$mode" = long ] && [ "$total_execs" -lt 10000000 ]; then
	echo "fuzz: fewer than 10 million executions (a target stopped early or hit its time cap)"
	status=1
fi
exit $status
