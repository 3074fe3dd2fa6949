# bench/common.sh - sourced first by the benchmark scripts: strict mode and the
# repository root as working directory (scripts/lib.sh), the real services of
# scripts/services.sh and a Release build in build-bench/, whose programs the
# scripts run.
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
b=build-bench

# bench_args NAME=DEFAULT... -- "$@": the script's positional arguments, in
# the order of its usage line, each NAME set to its argument or its DEFAULT.
bench_args() {
    local spec=()
    while [ "$1" != -- ]; do
        spec+=("$1")
        shift
    done
    shift
    local s
    for s in "${spec[@]}"; do
        printf -v "${s%%=*}" '%s' "${1-${s#*=}}"
        [ $# -eq 0 ] || shift
    done
}

bench_setup() {
    bash scripts/install-deps.sh
    bash scripts/services.sh up >&2
    cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$b" -j2 >/dev/null
}

# A scratch folder in $tmp; the background processes of the run go in the
# array pids, a private Redis's pid in rpid: all of them are killed, and the
# folder removed, when the script exits.
bench_scratch() {
    tmp="$(mktemp -d)"
    pids=()
    rpid=""
    trap bench_cleanup EXIT
}
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}

# Wait (30 s at most) until the generator PID, writing $tmp/gen.out and
# $tmp/gen.err, has created its topic (or produced, or exited): consumers
# started before would find no topic.
wait_topic() { # wait_topic PID
    for _ in $(seq 1 300); do
        grep -q "created topic\|produced:" "$tmp/gen.err" "$tmp/gen.out" 2>/dev/null && break
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1 # polling for the generator's first lines
    done
}

# A private redis-server on PORT with its data in DIR (no persistence: a
# benchmark's Redis measures the work, not the disk); its pid in $rpid.
private_redis() { # private_redis PORT DIR
    mkdir -p "$2"
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$2" \
        --daemonize no >"$2/redis.log" 2>&1 &
    rpid=$!
    for _ in $(seq 1 100); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && break
        sleep 0.05 # polling for the server to answer
    done
}

# The smallest, over key groups, of the offsets GROUP stored in the Redis(es)
# on PORTS (a cluster's masters): every event below it is in every key group.
stored_offsets_at() { # stored_offsets_at GROUP PORT...
    local group=$1 p
    shift
    for p in "$@"; do
        redis-cli -p "$p" --scan --pattern "kpi:{$group*}:offsets" 2>/dev/null |
            while read -r k; do
                redis-cli -p "$p" hvals "$k" | awk '{ s += $1 } END { print s + 0 }'
            done
    done | sort -n | awk 'NR == 1 { m = $1 } END { print m + 0 }'
}

# call_usec PORT: Redis's time in the sink's flushes (INFO commandstats):
# the hot path's EXECs (each holds one script call), the script calls made
# outside a transaction (their share of FCALL's time, by count), and the
# reads before the transactions (WATCH, the step-2 HMGETs, HGETALLs and
# TYPEs, the sketches read back; sinks/redis/hot.c).  Writes are counted
# only through the EXEC or FCALL that holds them; the script's own reads
# inside a call are counted again on their lines, so this is an upper
# bound.  Before the tenth session it left the reads out: a third to a
# half of the total in a steady stream (bench/RESULTS.md).
call_usec() {
    redis-cli -p "$1" info commandstats | awk -F'[:,=]' '
        /^cmdstat_exec:/ { ec = $3; eu = $5 }
        /^cmdstat_fcall:/ { sc = $3; su = $5 }
        /^cmdstat_(watch|unwatch|multi|function\|list|hmget|hgetall|hget|get|mget|type|smembers|pttl|exists|pfcount):/ { ru += $5 }
        END { out = sc > ec ? su * (sc - ec) / sc : 0; printf "%.0f\n", eu + out + ru }'
}
