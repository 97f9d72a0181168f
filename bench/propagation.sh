#!/usr/bin/env bash
# Revocation propagation: starts two cluster nodes (A and B) on a fresh PostgreSQL schema and
# Redis key prefix, runs keywarden-propagation against them (create keys on A, cache them on
# B, delete each on A and time until B answers NOT_FOUND), stops both nodes with SIGTERM and
# fails unless both exit with status 0. Drops the schema and deletes the Redis keys at the
# end, also on failure.
#
# Usage: bench/propagation.sh [keywarden-propagation options...]   e.g. --keys 500
#
# Environment:
#   POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test  REDIS_URL=redis://127.0.0.1:6379
#   PIN=0 (default)  no pinning; PIN=1: node A on CPU $NODE_A_CPUS, node B on CPU
#                    $NODE_B_CPUS (the probe and the services float)
#   NODE_A_CPUS=0 NODE_B_CPUS=1
#   SERVER_RUST_LOG  RUST_LOG of the nodes [default: warn]
#   SKIP_BUILD=1     use the binaries already in target/release
#   SERVER_BIN=path  run this keywarden binary instead of target/release/keywarden
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PIN=${PIN:-0}
NODE_A_CPUS=${NODE_A_CPUS:-0}
NODE_B_CPUS=${NODE_B_CPUS:-1}
SERVER_RUST_LOG=${SERVER_RUST_LOG:-warn}
for tool in psql redis-cli curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is needed" >&2
        exit 1
    fi
done

server_bin=${SERVER_BIN:-$repo/target/release/keywarden}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    if [[ -n ${SERVER_BIN:-} ]]; then
        cargo build --release -p keywarden-loadgen
    else
        cargo build --release -p keywarden -p keywarden-loadgen
    fi
fi
server_bin=$(realpath "$server_bin")
probe_bin=$repo/target/release/keywarden-propagation

workdir=$(mktemp -d "${TMPDIR:-/tmp}/keywarden-propagation.XXXXXX")
run_id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
schema=
redis_prefix=kwbench_$run_id
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n $schema ]]; then
        psql "$POSTGRES_URL" -qX -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $schema CASCADE" \
            >/dev/null 2>&1 || echo "warning: could not drop schema $schema" >&2
    fi
    redis-cli -u "$REDIS_URL" --scan --pattern "$redis_prefix:*" |
        xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 ||
        echo "warning: could not delete the Redis keys $redis_prefix:*" >&2
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Lower-case letters and digits only: a schema name that needs no quoting.
psql "$POSTGRES_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE SCHEMA kwbench_$run_id" >/dev/null
schema=kwbench_$run_id
separator='?'
[[ $POSTGRES_URL == *'?'* ]] && separator='&'
database_url="$POSTGRES_URL${separator}options=-c%20search_path%3D$schema"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local port=$1
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

root_key="bench_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# Starts node $1 on port $2 (pinned to CPUs $3 with PIN=1) and waits until it is healthy; its
# pid goes into pids. Only the first node bootstraps the workspace: the second finds it.
start_node() {
    local name=$1 port=$2 cpus=$3
    local cmd=("$server_bin" serve --listen "127.0.0.1:$port" --log-format json
        --database "$database_url" --redis "$REDIS_URL" --redis-fault-mode local)
    if [[ $PIN == 1 ]]; then
        cmd=(taskset -c "$cpus" "${cmd[@]}")
    fi
    mkdir -p "$workdir/$name"
    echo "== node $name: ${cmd[*]}"
    (
        cd "$workdir/$name"
        export RUST_LOG=$SERVER_RUST_LOG KEYWARDEN_REDIS_PREFIX=$redis_prefix \
            KEYWARDEN_BOOTSTRAP_ROOT_KEY=$root_key
        exec "${cmd[@]}" 2>"$workdir/$name/server.log"
    ) &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/v2/health" 2>/dev/null | grep -q '"status":"ok"'; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: node $name exited during startup:" >&2
            cat "$workdir/$name/server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "error: node $name was not healthy within 10 s:" >&2
    curl -sS "http://127.0.0.1:$port/v2/health" >&2 || true
    exit 1
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes under crates/)')"
echo "== cluster: PostgreSQL schema $schema, Redis key prefix $redis_prefix, RUST_LOG=$SERVER_RUST_LOG"
port_a=$(free_port 17170)
start_node A "$port_a" "$NODE_A_CPUS"
port_b=$(free_port $((port_a + 1)))
start_node B "$port_b" "$NODE_B_CPUS"

probe_status=0
KEYWARDEN_ROOT_KEY=$root_key "$probe_bin" \
    --node-a "http://127.0.0.1:$port_a" --node-b "http://127.0.0.1:$port_b" "$@" ||
    probe_status=$?

failed=0
for i in "${!pids[@]}"; do
    name=$([[ $i == 0 ]] && echo A || echo B)
    kill -TERM "${pids[$i]}"
    node_status=0
    wait "${pids[$i]}" || node_status=$?
    # Reaped: the pid may be reused, so cleanup must not signal it.
    pids[i]=
    if [[ -s $workdir/$name/server.log ]]; then
        echo "== node $name log (RUST_LOG=$SERVER_RUST_LOG):"
        tail -n 20 "$workdir/$name/server.log"
    fi
    if [[ $node_status != 0 ]]; then
        echo "!!! node $name exited with status $node_status after SIGTERM (expected 0)" >&2
        failed=1
    else
        echo "== node $name stopped cleanly after SIGTERM (exit 0)"
    fi
done
if [[ $failed != 0 ]]; then
    exit 1
fi
if [[ $probe_status != 0 ]]; then
    echo "!!! the propagation probe failed (exit $probe_status)" >&2
fi
exit "$probe_status"
