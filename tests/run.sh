#!/bin/sh
# Runs the unit tests (cmocka) and the end-to-end tests (tests/e2e/, the
# adversarial HTTP matrix tests/adversarial/ and the chaos tests tests/chaos/:
# test_*.py, real processes on loopback) for each build directory given, and closes with
# one line 'N passed, N failed' over everything.
#   sh tests/run.sh [--unit-only|--e2e-only] BUILD_DIR...
mode=all
case "$1" in --unit-only) mode=unit; shift;; --e2e-only) mode=e2e; shift;; esac
[ $# -gt 0 ] || set -- build
total_pass=0
total_fail=0
failed_names=""
log=$(mktemp)
queue=$(mktemp)
outdir=$(mktemp -d)
trap 'rm -rf "$log" "$queue" "$queue.n" "$outdir"' EXIT
# seconds since $1 (a `date +%s.%N`), one decimal: the time each file
# takes, printed on its line (where CI's minutes go)
since() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
add() { # <passed> <failed> <what>
	total_pass=$((total_pass + $1))
	total_fail=$((total_fail + $2))
	[ "$2" -gt 0 ] && failed_names="$failed_names $3"
	return 0
}
for build in "$@"; do
	slow=1
	case "$build" in *san*) slow=3;; esac
	export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1"
	export CANARYD_BUILD="$build" CANARYD_SLOW="$slow"
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	if [ "$mode" != e2e ]; then
		u0=$(date +%s.%N)
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			# CANARYD_UNIT_SKIP: names left out of this run (make
			# test-tsan: the pure, single-threaded core)
			case " $CANARYD_UNIT_SKIP " in *" $(basename "$t") "*) continue ;; esac
			name="$build/$(basename "$t")"
			t0=$(date +%s.%N)
			timeout 300 "$t" >"$log" 2>&1
			rc=$?
			p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
			f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
			p=${p:-0}
			f=${f:-0}
			if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
			if [ "$f" -gt 0 ]; then cat "$log"; fi
			echo "unit  $name: $p passed, $f failed ($(since "$t0") s)"
			add "$p" "$f" "$name"
		done
		echo "unit  $build: all in $(since "$u0") s"
	fi
	[ "$mode" != unit ] || continue
	# the end-to-end files of this build, run after the loop;
	# CANARYD_E2E_FILES: a subset of them (make test-tsan)
	for t in ${CANARYD_E2E_FILES:-tests/adversarial/test_*.py tests/chaos/test_*.py tests/e2e/test_*.py}; do
		[ -f "$t" ] && echo "$build $slow $t" >>"$queue"
	done
done

# The end-to-end files spend most of their time waiting on real processes,
# timers and sockets, not on the CPU: they run CANARYD_TEST_JOBS at a time
# (3 by default; 1 runs them one by one), each with its own log, and are
# reported in the order queued. Every file is bounded by timeout.
if [ -s "$queue" ]; then
	jobs=${CANARYD_TEST_JOBS:-3}
	# sanitizer builds first: their files are the longest
	{ grep ' 3 ' "$queue"; grep -v ' 3 ' "$queue"; } | awk '{print NR, $0}' >"$queue.n"
	# shellcheck disable=SC2016
	# each line is "N BUILD SLOW FILE": sh -c gets them as $0..$3. A file
	# takes a free slot (a lock held while it runs, shared by every run of
	# this script on the machine) and its ports from that slot's range
	# (harness.free_port: 2000 ports from 12000 + 2000 * slot, below the
	# kernel's ephemeral ports), so that files running side by side never
	# pick the same port
	e0=$(date +%s.%N)
	CANARYD_OUT="$outdir" CANARYD_SLOTS="${TMPDIR:-/tmp}/canaryd-test-slot" \
	xargs -P "$jobs" -L 1 sh -c '
		slot=0
		while [ $slot -lt 10 ]; do
			# command: a file it may not open (another user'"'"'s) is
			# the next slot, not the end of this shell
			{ command exec 9>>"$CANARYD_SLOTS$slot"; } 2>/dev/null && flock -n 9 && break
			slot=$((slot + 1))
		done
		[ $slot -lt 10 ] && export CANARYD_PORT_BASE=$((12000 + 2000 * slot))
		t0=$(date +%s.%N)
		CANARYD_BUILD=$1 CANARYD_SLOW=$2 timeout 900 python3 "$3" >"$CANARYD_OUT/$0.log" 2>&1
		echo $? >"$CANARYD_OUT/$0.rc"
		awk -v a="$t0" -v b="$(date +%s.%N)" "BEGIN { printf \"%.1f\", b - a }" >"$CANARYD_OUT/$0.time"' <"$queue.n" || true
	e2e_time=$(since "$e0")
	while read -r n build slow t; do
		name="$build/$(basename "$t" .py)"
		rc=$(cat "$outdir/$n.rc" 2>/dev/null || echo 1)
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$outdir/$n.log" | tail -n1)
		p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
		f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
		p=${p:-0}
		f=${f:-0}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		if [ "$f" -gt 0 ]; then cat "$outdir/$n.log"; else grep -E '^(PASS|FAIL)' "$outdir/$n.log" | sed 's/^/    /'; fi
		echo "e2e   $name: $p passed, $f failed ($(cat "$outdir/$n.time" 2>/dev/null || echo ?) s)"
		add "$p" "$f" "$name"
	done <"$queue.n"
	echo "e2e   $(wc -l <"$queue.n") files, $jobs at a time: all in $e2e_time s"
fi
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
