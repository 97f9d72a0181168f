#!/usr/bin/env bash
# Instructions per request, counted by callgrind: deterministic where wall-clock benchmarks on
# a shared VM are not, and it counts every thread of the server (background writers too).
#
# Usage: bench/callgrind.sh MODE [COUNT] [KEYS] [VAR=value ...]
#   MODE    verify (keys.verifyKey with KEYS keys in turn) or liveness
#   COUNT   requests in the measured window [40000]
#   KEYS    keys created and verified in turn [3000]
#   VAR=value  environment for the server, e.g. KEYWARDEN_RECORD_VERIFICATIONS=false
#
# Environment: SERVER_BIN (default target/release/keywarden, built unless SKIP_BUILD=1),
# OUT_DIR (where callgrind's files are kept; default a temporary directory).
# Prints the instructions of the window and per request; `callgrind_annotate --inclusive=yes`
# on the kept file shows where they go.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=${1:?usage: bench/callgrind.sh verify|liveness [COUNT] [KEYS] [VAR=value ...]}
shift
count=40000 keys=3000
if [[ $# -gt 0 && $1 != *=* ]]; then count=$1; shift; fi
if [[ $# -gt 0 && $1 != *=* ]]; then keys=$1; shift; fi

for tool in valgrind callgrind_control python3 curl; do
    command -v "$tool" >/dev/null || { echo "error: bench/callgrind.sh needs $tool" >&2; exit 1; }
done
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release -p keywarden
fi
server=$(realpath "${SERVER_BIN:-target/release/keywarden}")
out=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/keywarden-callgrind.XXXXXX")}
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d "${TMPDIR:-/tmp}/keywarden-callgrind-store.XXXXXX")
trap 'rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
root="kw_root_callgrind_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(
    cd "$work"
    exec env "$@" KEYWARDEN_BOOTSTRAP_ROOT_KEY="$root" RUST_LOG=warn \
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$out/callgrind.%p.out" \
        "$server" serve --listen "127.0.0.1:$port"
) >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/v2/liveness" >/dev/null && break
    sleep 1
done
python3 bench/callgrind/drive.py "$port" "$root" "$count" "$keys" "$pid" "$mode"
kill -TERM "$pid"
wait "$pid" || { echo "error: the server did not exit cleanly; see $out/server.log" >&2; exit 1; }
window=$(ls "$out"/callgrind."$pid".out.1)
total=$(sed -n 's/^summary: //p' "$window")
echo "$mode (${*:-default settings}): $total instructions for $count requests, $((total / count)) per request"
echo "profile: $window"
