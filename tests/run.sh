#!/bin/sh
# Runs the unit tests (cmocka) and the end-to-end tests (tests/e2e/, the
# adversarial HTTP matrix tests/adversarial/ and the chaos tests tests/chaos/:
# test_*.py, real processes on loopback) for each build directory given, and closes with
# one line 'N passed, N failed' over everything.
#   sh tests/run.sh [--unit-only|--e2e-only] BUILD_DIR...
# Each file's line says its time; the last lines the whole run's.
mode=all
case "$1" in --unit-only) mode=unit; shift;; --e2e-only) mode=e2e; shift;; esac
[ $# -gt 0 ] || set -- build
total_pass=0
total_fail=0
failed_names=""
queue=$(mktemp)
outdir=$(mktemp -d)
trap 'rm -rf "$queue" "$queue.n" "$queue.run" "$outdir"' EXIT
add() { # <passed> <failed> <what>
	total_pass=$((total_pass + $1))
	total_fail=$((total_fail + $2))
	[ "$2" -gt 0 ] && failed_names="$failed_names $3"
	return 0
}
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# the queue, one line per file in the order reported: "KIND BUILD SLOW FILE"
for build in "$@"; do
	slow=1
	case "$build" in *san*) slow=3;; esac
	if [ "$mode" != e2e ]; then
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			# CANARYD_UNIT_SKIP: names left out of this run (make
			# test-tsan: the pure, single-threaded core)
			case " $CANARYD_UNIT_SKIP " in *" $(basename "$t") "*) continue ;; esac
			echo "unit $build $slow $t" >>"$queue"
		done
	fi
	[ "$mode" != unit ] || continue
	# CANARYD_E2E_FILES: a subset of the end-to-end files (make test-tsan)
	for t in ${CANARYD_E2E_FILES:-tests/adversarial/test_*.py tests/chaos/test_*.py tests/e2e/test_*.py}; do
		[ -f "$t" ] && echo "e2e $build $slow $t" >>"$queue"
	done
done
[ -s "$queue" ] || { echo "no tests found in $*"; exit 1; }

# The unit tests run first, CANARYD_UNIT_JOBS at a time (one per core by
# default: they are short and use the CPU), then the end-to-end files,
# CANARYD_TEST_JOBS at a time (3 by default: they spend most of their time
# waiting on real processes, timers and sockets); 1 runs them one by one.
# Each file has its own log; they are reported in the order queued. So
# that the run does not end on one long file started late, the longest
# end-to-end files start first: the list below (the longest first, from
# the times the lines of a run show; update it when a file grows),
# sanitizer builds first, then every other file. Every file is bounded by
# timeout.
E2E_LONGEST="test_mesh_router test_k8s test_rollout test_dns test_haproxy test_render
test_mesh_daemon test_flagger_files test_canaryctl test_simulate test_admin
test_providers_saas test_providers test_mesh_metrics test_db_damage"
jobs=${CANARYD_TEST_JOBS:-3}
unit_jobs=${CANARYD_UNIT_JOBS:-$(nproc 2>/dev/null || echo 1)}
awk '{ print NR, $0 }' "$queue" >"$queue.n"
# "RANK N KIND BUILD SLOW FILE", sorted on RANK (stably), without RANK
awk -v longest="$E2E_LONGEST" '
	BEGIN { n = split(longest, l); for (i = 1; i <= n; i++) rank[l[i]] = i }
	{
		f = $5; sub(/.*\//, "", f); sub(/\.py$/, "", f)
		if ($2 == "e2e" && f in rank) r = rank[f] + ($4 == 3 ? 0 : n)
		else r = 2 * n + ($4 == 3 ? 1 : 2)
		print r, $0
	}' "$queue.n" | sort -s -n -k1,1 | cut -d' ' -f2- >"$queue.run"
r0=$(date +%s.%N)
# shellcheck disable=SC2016
# each line is "N KIND BUILD SLOW FILE": sh -c gets them as $0..$4. A file
# takes a free slot (a lock held while it runs, shared by every run of
# this script on the machine) and its ports from that slot's range
# (harness.free_port: 2000 ports from 12000 + 2000 * slot, below the
# kernel's ephemeral ports), so that files running side by side never
# pick the same port
run_files() { # <at a time>: the lines of stdin
	CANARYD_OUT="$outdir" CANARYD_SLOTS="${TMPDIR:-/tmp}/canaryd-test-slot" \
	xargs -r -P "$1" -L 1 sh -c '
		slot=0
		while [ $slot -lt 10 ]; do
			# command: a file it may not open (another user'"'"'s) is
			# the next slot, not the end of this shell
			{ command exec 9>>"$CANARYD_SLOTS$slot"; } 2>/dev/null && flock -n 9 && break
			slot=$((slot + 1))
		done
		[ $slot -lt 10 ] && export CANARYD_PORT_BASE=$((12000 + 2000 * slot))
		t0=$(date +%s.%N)
		if [ "$1" = unit ]; then
			CANARYD_BUILD=$2 CANARYD_SLOW=$3 timeout 300 "$4" >"$CANARYD_OUT/$0.log" 2>&1
		else
			CANARYD_BUILD=$2 CANARYD_SLOW=$3 timeout 900 python3 "$4" >"$CANARYD_OUT/$0.log" 2>&1
		fi
		echo $? >"$CANARYD_OUT/$0.rc"
		awk -v a="$t0" -v b="$(date +%s.%N)" "BEGIN { printf \"%.1f\", b - a }" >"$CANARYD_OUT/$0.time"' || true
}
grep ' unit ' "$queue.run" | run_files "$unit_jobs"
unit_time=$(awk -v a="$r0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
e0=$(date +%s.%N)
grep ' e2e ' "$queue.run" | run_files "$jobs"
e2e_time=$(awk -v a="$e0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
while read -r n kind build slow t; do
	name="$build/$(basename "$t" .py)"
	log="$outdir/$n.log"
	rc=$(cat "$outdir/$n.rc" 2>/dev/null || echo 1)
	if [ "$kind" = unit ]; then
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
	else
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)
		p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
		f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
	fi
	p=${p:-0}
	f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	if [ "$f" -gt 0 ]; then
		cat "$log"
	elif [ "$kind" = e2e ]; then
		grep -E '^(PASS|FAIL)' "$log" | sed 's/^/    /'
	fi
	printf '%-5s %s: %s passed, %s failed (%s s)\n' "$kind" "$name" "$p" "$f" \
		"$(cat "$outdir/$n.time" 2>/dev/null || echo ?)"
	add "$p" "$f" "$name"
done <"$queue.n"
echo "unit: $(grep -c ' unit ' "$queue.n") files, $unit_jobs at a time: $unit_time s"
echo "e2e: $(grep -c ' e2e ' "$queue.n") files, $jobs at a time: $e2e_time s"
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
