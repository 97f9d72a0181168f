#!/usr/bin/env bash
# Verification-speed benchmark: builds the server and the load generator, starts a fresh
# server in a temporary directory, runs bench/loadgen against it, stops the server with
# SIGTERM and checks that it exited cleanly.
#
# Usage: bench/run.sh [loadgen options...]      e.g. bench/run.sh --duration 10 --rounds 5
#
# Environment:
#   PIN=1 (default)  server on CPU $SERVER_CPUS, load generator on CPU $LOADGEN_CPUS (taskset)
#   PIN=0            no pinning: both share every CPU (see bench/README.md for why pinning is
#                    the default)
#   SERVER_CPUS=0 LOADGEN_CPUS=1   the CPU lists for PIN=1
#   PORT=<n>         port to listen on [default: a free one from 17070]
#   SERVER_RUST_LOG  RUST_LOG of the server [default: warn]
#   SKIP_BUILD=1     use the binaries already in target/release
#   SERVER_BIN=path  benchmark this keywarden binary instead of target/release/keywarden (for
#                    A/B comparisons of server changes); only the load generator is built
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

PIN=${PIN:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
LOADGEN_CPUS=${LOADGEN_CPUS:-1}
SERVER_RUST_LOG=${SERVER_RUST_LOG:-warn}

server_bin=${SERVER_BIN:-$repo/target/release/keywarden}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    if [[ -n ${SERVER_BIN:-} ]]; then
        cargo build --release -p keywarden-loadgen
    else
        cargo build --release -p keywarden -p keywarden-loadgen
    fi
fi
server_bin=$(realpath "$server_bin")
loadgen_bin=$repo/target/release/keywarden-loadgen

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z ${PORT:-} ]]; then
    PORT=17070
    while port_in_use "$PORT"; do PORT=$((PORT + 1)); done
elif port_in_use "$PORT"; then
    echo "error: port $PORT is already in use" >&2
    exit 1
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/keywarden-bench.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# A fresh bootstrap root key (>= 24 characters) for this run only.
root_key="bench_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

server_cmd=("$server_bin" serve --listen "127.0.0.1:$PORT" --log-format json)
loadgen_cmd=("$loadgen_bin")
if [[ $PIN == 1 ]]; then
    server_cmd=(taskset -c "$SERVER_CPUS" "${server_cmd[@]}")
    loadgen_cmd=(taskset -c "$LOADGEN_CPUS" "${loadgen_cmd[@]}")
fi

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
if [[ -n ${SERVER_BIN:-} ]]; then
    echo "== server binary: $server_bin (given with SERVER_BIN)"
else
    echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes under crates/)')"
fi
if [[ $PIN == 1 ]]; then
    echo "== pinning: server on CPU $SERVER_CPUS, load generator on CPU $LOADGEN_CPUS"
else
    echo "== pinning: none"
fi
echo "== server: ${server_cmd[*]} (RUST_LOG=$SERVER_RUST_LOG, in $workdir)"

# The server's store (sqlite://keywarden.db by default) lands in the fresh directory. `exec`
# keeps the pid: the subshell becomes taskset, which becomes the server.
(
    cd "$workdir"
    export RUST_LOG=$SERVER_RUST_LOG KEYWARDEN_BOOTSTRAP_ROOT_KEY=$root_key
    exec "${server_cmd[@]}" 2>"$workdir/server.log"
) &
server_pid=$!

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/v2/liveness" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: the server exited during startup:" >&2
        cat "$workdir/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$PORT/v2/liveness" >/dev/null; then
    echo "error: the server did not answer liveness within 10 s" >&2
    exit 1
fi

loadgen_status=0
KEYWARDEN_ROOT_KEY=$root_key "${loadgen_cmd[@]}" \
    --url "http://127.0.0.1:$PORT" --server-pid "$server_pid" "$@" || loadgen_status=$?

kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
if [[ -s $workdir/server.log ]]; then
    echo "== server log (RUST_LOG=$SERVER_RUST_LOG):"
    tail -n 20 "$workdir/server.log"
fi
if [[ $server_status != 0 ]]; then
    echo "!!! the server exited with status $server_status after SIGTERM (expected 0)" >&2
    exit 1
fi
echo "== server stopped cleanly after SIGTERM (exit 0)"
if [[ $loadgen_status != 0 ]]; then
    echo "!!! the load generator failed (exit $loadgen_status)" >&2
fi
exit "$loadgen_status"
