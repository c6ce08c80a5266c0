#!/bin/sh
# Prints issue 10's table: every traffic row under the sequential judge, the
# threshold judge, Flagger's rules and Argo Rollouts' rules, offline
# (canaryctl simulate), with the expectation beside each canaryd
# cell. See docs/simulate.md.
#
#   sh bench/analysis.sh [BUILD_DIR]        # 400 runs a cell (RUNS=N to change)
#   RUNS=20 sh bench/analysis.sh            # a quick look (CI smoke)
#   JOBS=2 (parallel simulations), JSON=FILE (every cell's summary as JSON)
set -e
here=$(dirname "$0")
build=${1:-${BUILD:-build}}
set -- --build "$build" --runs "${RUNS:-400}" --jobs "${JOBS:-2}"
[ -n "$JSON" ] && set -- "$@" --json "$JSON"
exec python3 "$here/analysis.py" "$@"
