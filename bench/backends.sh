#!/usr/bin/env bash
# Scale-out benchmark: runs bench/run.sh once per backend (SQLite, then PostgreSQL + Redis),
# back to back with the same load generator options, and puts the results side by side. Each
# backend's ratios are to the liveness throughput measured against that same server in that
# same run.
#
# Usage: bench/backends.sh [loadgen options...]   e.g. bench/backends.sh --rounds 3 --duration 5
#
# Without --phases, the phases are liveness,verify-valid,verify-limited.
#
# Environment (besides everything bench/run.sh reads: PIN, SERVER_CPUS, LOADGEN_CPUS,
# POSTGRES_URL, REDIS_URL, SERVER_BIN, ...):
#   BACKENDS="sqlite postgres-redis"   the backends, in the order they run
#   RESULTS_DIR=path   keep each backend's output (<backend>.log) and summary
#                      (<backend>.json) there [default: a temporary directory, removed]
#   SKIP_BUILD=1       use the binaries already in target/release
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

BACKENDS=${BACKENDS:-sqlite postgres-redis}

if [[ -n ${RESULTS_DIR:-} ]]; then
    mkdir -p "$RESULTS_DIR"
    results=$(realpath "$RESULTS_DIR")
    keep=1
else
    results=$(mktemp -d "${TMPDIR:-/tmp}/keywarden-backends.XXXXXX")
    keep=0
fi
cleanup() {
    if [[ $keep == 0 ]]; then
        rm -rf "$results"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    if [[ -n ${SERVER_BIN:-} ]]; then
        cargo build --release -p keywarden-loadgen
    else
        cargo build --release -p keywarden -p keywarden-loadgen
    fi
fi

args=("$@")
has_phases=0
for arg in "${args[@]}"; do
    [[ $arg == --phases || $arg == --phases=* ]] && has_phases=1
done
if [[ $has_phases == 0 ]]; then
    args+=(--phases liveness,verify-valid,verify-limited)
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'): backends $BACKENDS, loadgen options: ${args[*]}"
summaries=()
status=0
for backend in $BACKENDS; do
    echo
    echo "=================== BACKEND=$backend ==================="
    run_status=0
    # run.sh's status, not tee's.
    BACKEND=$backend SKIP_BUILD=1 bench/run.sh "${args[@]}" \
        --summary-json "$results/$backend.json" 2>&1 | tee "$results/$backend.log" ||
        run_status=${PIPESTATUS[0]}
    if [[ $run_status != 0 ]]; then
        echo "!!! BACKEND=$backend failed (exit $run_status)" >&2
        status=$run_status
    fi
    if [[ -s $results/$backend.json ]]; then
        summaries+=("$results/$backend.json")
    fi
done

echo
echo "=================== backends side by side ($(date -u '+%Y-%m-%d %H:%M:%S UTC')) ==================="
if [[ ${#summaries[@]} -gt 0 ]]; then
    "$repo/target/release/keywarden-bench-compare" "${summaries[@]}" || status=$?
fi
if [[ $keep == 1 ]]; then
    echo "== logs and summaries kept in $results"
fi
exit "$status"
