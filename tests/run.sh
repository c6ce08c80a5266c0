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
trap 'rm -f "$log"' EXIT
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
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			name="$build/$(basename "$t")"
			timeout 300 "$t" >"$log" 2>&1
			rc=$?
			p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
			f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
			p=${p:-0}
			f=${f:-0}
			if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
			if [ "$f" -gt 0 ]; then cat "$log"; fi
			echo "unit  $name: $p passed, $f failed"
			add "$p" "$f" "$name"
		done
	fi
	if [ "$mode" != unit ]; then
		# CANARYD_E2E_FILES: a subset of the end-to-end files (make test-tsan)
		for t in ${CANARYD_E2E_FILES:-tests/e2e/test_*.py tests/adversarial/test_*.py tests/chaos/test_*.py}; do
			[ -f "$t" ] || continue
			name="$build/$(basename "$t" .py)"
			timeout 900 python3 "$t" >"$log" 2>&1
			rc=$?
			line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)
			p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
			f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
			p=${p:-0}
			f=${f:-0}
			if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
			if [ "$f" -gt 0 ]; then cat "$log"; else grep -E '^(PASS|FAIL)' "$log" | sed 's/^/    /'; fi
			echo "e2e   $name: $p passed, $f failed"
			add "$p" "$f" "$name"
		done
	fi
done
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
