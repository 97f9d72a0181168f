#!/usr/bin/env bash
# Usage-recording benchmark: what recording verification events costs the hot path.
# Runs bench/run.sh against a fresh server with recording on (the default) and one with
# KEYWARDEN_RECORD_VERIFICATIONS=false, alternating on/off for $PASSES passes, each with the
# phases liveness and verify-valid, and prints verify-valid's throughput against the liveness
# of the same server (which cancels most of the machine's drift between servers), its server
# CPU per request, and the on/off ratios.
#
# Usage: bench/events.sh [loadgen options...]   e.g. bench/events.sh --rounds 3 --duration 5
#
# Environment (besides everything bench/run.sh reads: PIN, BACKEND, SKIP_BUILD, ...):
#   PASSES=2        on/off pairs to run
#   RESULTS_DIR=path   keep each run's output and summary there [default: a temporary
#                      directory, removed]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PASSES=${PASSES:-2}

if ! command -v jq >/dev/null; then
    echo "error: bench/events.sh needs jq" >&2
    exit 1
fi

if [[ -n ${RESULTS_DIR:-} ]]; then
    mkdir -p "$RESULTS_DIR"
    results=$(realpath "$RESULTS_DIR")
    keep=1
else
    results=$(mktemp -d "${TMPDIR:-/tmp}/keywarden-events.XXXXXX")
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
    cargo build --release -p keywarden -p keywarden-loadgen
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'): $PASSES on/off passes, loadgen options: $*"
status=0
for pass in $(seq 1 "$PASSES"); do
    for mode in on off; do
        record=true
        [[ $mode == off ]] && record=false
        echo
        echo "=================== pass $pass, recording $mode ==================="
        run_status=0
        SERVER_ENV="KEYWARDEN_RECORD_VERIFICATIONS=$record" SKIP_BUILD=1 bench/run.sh "$@" \
            --phases liveness,verify-valid --summary-json "$results/$mode-$pass.json" 2>&1 |
            tee "$results/$mode-$pass.log" || run_status=${PIPESTATUS[0]}
        if [[ $run_status != 0 ]]; then
            echo "!!! pass $pass, recording $mode failed (exit $run_status)" >&2
            status=$run_status
        fi
    done
done

# verify-valid of one summary: throughput, vs liveness, server µs per request.
figures() {
    jq -r '.phases[] | select(.phase == "verify-valid")
        | "\(.throughput) \(.vs_liveness // "null") \(.server_us // "null")"' "$1"
}

echo
echo "=================== recording on vs off ($(date -u '+%Y-%m-%d %H:%M:%S UTC')) ==================="
printf '%-6s %-4s %12s %12s %12s\n' pass mode "req/s" "vs liveness" "server µs"
sum_on=0 sum_off=0 us_on=0 us_off=0 n=0
for pass in $(seq 1 "$PASSES"); do
    [[ -s $results/on-$pass.json && -s $results/off-$pass.json ]] || continue
    read -r rps_on live_on cpu_on < <(figures "$results/on-$pass.json")
    read -r rps_off live_off cpu_off < <(figures "$results/off-$pass.json")
    printf '%-6s %-4s %12.0f %12s %12s\n' "$pass" on "$rps_on" "$live_on" "$cpu_on"
    printf '%-6s %-4s %12.0f %12s %12s\n' "$pass" off "$rps_off" "$live_off" "$cpu_off"
    if [[ $live_on != null && $live_off != null ]]; then
        sum_on=$(jq -n "$sum_on + $live_on") sum_off=$(jq -n "$sum_off + $live_off")
        n=$((n + 1))
    fi
    if [[ $cpu_on != null && $cpu_off != null ]]; then
        us_on=$(jq -n "$us_on + $cpu_on") us_off=$(jq -n "$us_off + $cpu_off")
    fi
done
if [[ $n -gt 0 ]]; then
    jq -rn --argjson on "$sum_on" --argjson off "$sum_off" \
        '"verify-valid throughput (vs liveness), recording on / off: \($on / $off * 1000 | round / 1000)"'
    if [[ $us_off != 0 ]]; then
        jq -rn --argjson on "$us_on" --argjson off "$us_off" \
            '"server CPU per verification, recording on / off: \($on / $off * 1000 | round / 1000)"'
    fi
else
    echo "no complete pass to compare"
    status=${status/#0/1}
fi
if [[ $keep == 1 ]]; then
    echo "== logs and summaries kept in $results"
fi
exit "$status"
