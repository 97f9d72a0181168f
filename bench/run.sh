#!/usr/bin/env bash
# Verification-speed benchmark: builds the server and the load generator, starts a fresh
# server (in a temporary directory, on a fresh store), runs bench/loadgen against it, stops the
# server with SIGTERM and checks that it exited cleanly.
#
# Usage: bench/run.sh [loadgen options...]      e.g. bench/run.sh --duration 10 --rounds 5
#
# Environment:
#   BACKEND=sqlite (default)  the server keeps its state in a SQLite file in the temporary
#                             directory and its rate limits in process
#   BACKEND=postgres-redis    the server runs as a cluster node: state in a fresh schema
#                             kwbench_<random> of $POSTGRES_URL (created with psql, dropped at
#                             the end), rate limits in $REDIS_URL under a fresh key prefix
#                             (its keys deleted at the end); the CPU time of the PostgreSQL
#                             postmaster and its children and of redis-server is reported as
#                             the services' (svc µs), when they run on this machine
#   POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test  REDIS_URL=redis://127.0.0.1:6379
#   SERVICE_PIDS=pid,...      the services' main processes [default: asked from PostgreSQL
#                             (postmaster.pid in its data directory) and Redis (INFO server)]
#   PIN=1 (default)  server on CPU $SERVER_CPUS, load generator on CPU $LOADGEN_CPUS (taskset)
#   PIN=0            no pinning: both share every CPU (see bench/README.md for why pinning is
#                    the default)
#   SERVER_CPUS=0 LOADGEN_CPUS=1   the CPU lists for PIN=1
#   PORT=<n>         port to listen on [default: a free one from 17070]
#   SERVER_RUST_LOG  RUST_LOG of the server [default: warn]
#   SKIP_BUILD=1     use the binaries already in target/release
#   SERVER_BIN=path  benchmark this keywarden binary instead of target/release/keywarden (for
#                    A/B comparisons of server changes); only the load generator is built
#   SERVER_ENV="KEYWARDEN_X=1 KEYWARDEN_Y=2"   extra environment of the server (settings to
#                    compare, as bench/events.sh does); space-separated NAME=value pairs
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

PIN=${PIN:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
LOADGEN_CPUS=${LOADGEN_CPUS:-1}
SERVER_RUST_LOG=${SERVER_RUST_LOG:-warn}
BACKEND=${BACKEND:-sqlite}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
case $BACKEND in
sqlite) ;;
postgres-redis)
    for tool in psql redis-cli; do
        if ! command -v "$tool" >/dev/null; then
            echo "error: BACKEND=postgres-redis needs $tool" >&2
            exit 1
        fi
    done
    ;;
*)
    echo "error: BACKEND must be sqlite or postgres-redis, not '$BACKEND'" >&2
    exit 1
    ;;
esac

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
schema=
redis_prefix=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $schema ]]; then
        psql "$POSTGRES_URL" -qX -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $schema CASCADE" \
            >/dev/null 2>&1 || echo "warning: could not drop schema $schema" >&2
    fi
    if [[ -n $redis_prefix ]]; then
        # Counters expire by themselves, but a benchmark leaves thousands; delete them now.
        redis-cli -u "$REDIS_URL" --scan --pattern "$redis_prefix:*" |
            xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 ||
            echo "warning: could not delete the Redis keys $redis_prefix:*" >&2
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT
# Interrupted or killed: exit, so that the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh bootstrap root key (>= 24 characters) for this run only.
root_key="bench_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

server_cmd=("$server_bin" serve --listen "127.0.0.1:$PORT" --log-format json)
loadgen_cmd=("$loadgen_bin")
server_env=()
if [[ $BACKEND == postgres-redis ]]; then
    # Lower-case letters and digits only: a schema name that needs no quoting.
    run_id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
    schema=kwbench_$run_id
    psql "$POSTGRES_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null
    redis_prefix=kwbench_$run_id
    separator='?'
    [[ $POSTGRES_URL == *'?'* ]] && separator='&'
    server_cmd+=(--database "$POSTGRES_URL${separator}options=-c%20search_path%3D$schema"
        --redis "$REDIS_URL" --redis-fault-mode local)
    server_env=(KEYWARDEN_REDIS_PREFIX="$redis_prefix")
    if [[ -z ${SERVICE_PIDS:-} ]]; then
        # Only services on this machine can be measured; others are left out.
        pids=()
        pg_dir=$(psql "$POSTGRES_URL" -qAtX -c "SHOW data_directory" 2>/dev/null || true)
        if [[ -n $pg_dir && -r $pg_dir/postmaster.pid ]]; then
            pids+=("$(head -n 1 "$pg_dir/postmaster.pid")")
        fi
        pids+=("$(redis-cli -u "$REDIS_URL" info server 2>/dev/null | tr -d '\r' |
            sed -n 's/^process_id://p')")
        SERVICE_PIDS=
        for pid in "${pids[@]}"; do
            if [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]]; then
                SERVICE_PIDS+=${SERVICE_PIDS:+,}$pid
            fi
        done
    fi
    if [[ -n $SERVICE_PIDS ]]; then
        loadgen_cmd+=(--service-pid "$SERVICE_PIDS")
    fi
fi
if [[ -n ${SERVER_ENV:-} ]]; then
    read -ra extra_env <<<"$SERVER_ENV"
    server_env+=("${extra_env[@]}")
fi
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
    echo "== pinning: server on CPU $SERVER_CPUS, load generator on CPU $LOADGEN_CPUS$([[ $BACKEND == sqlite ]] || echo '; PostgreSQL and Redis not pinned (system services)')"
else
    echo "== pinning: none"
fi
echo "== backend: $BACKEND${schema:+ (PostgreSQL schema $schema, Redis key prefix $redis_prefix, service pids ${SERVICE_PIDS:-none})}"
echo "== server: ${server_cmd[*]} (RUST_LOG=$SERVER_RUST_LOG, in $workdir)${SERVER_ENV:+, with $SERVER_ENV}"

# The server's store (sqlite://keywarden.db by default) lands in the fresh directory. `exec`
# keeps the pid: the subshell becomes taskset, which becomes the server.
(
    cd "$workdir"
    export RUST_LOG=$SERVER_RUST_LOG KEYWARDEN_BOOTSTRAP_ROOT_KEY=$root_key "${server_env[@]}"
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

# Redis's own count of batch-script runs (EVALSHA) and their time, as "calls usec", from
# INFO commandstats; read before and after the load, not reset, so other users of that Redis
# keep their statistics (and add to these, if they run scripts meanwhile).
redis_scripts() {
    redis-cli -u "$REDIS_URL" info commandstats 2>/dev/null | tr -d '\r' |
        sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2/p'
}
if [[ $BACKEND == postgres-redis ]]; then
    scripts_before=$(redis_scripts)
fi

loadgen_status=0
KEYWARDEN_ROOT_KEY=$root_key "${loadgen_cmd[@]}" \
    --url "http://127.0.0.1:$PORT" --server-pid "$server_pid" "$@" || loadgen_status=$?

if [[ $BACKEND == postgres-redis ]]; then
    read -r calls_before usec_before <<<"${scripts_before:-0 0}"
    read -r calls_after usec_after <<<"$(redis_scripts)"
    runs=$((${calls_after:-0} - ${calls_before:-0}))
    if ((runs > 0)); then
        echo "== Redis: $runs batch-script runs (EVALSHA) during the load, $(awk -v u=$((usec_after - usec_before)) -v n="$runs" 'BEGIN { printf "%.1f", u / n }') µs each (Redis's INFO commandstats; every phase together)"
    fi
fi

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
