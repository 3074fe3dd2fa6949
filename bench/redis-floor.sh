#!/usr/bin/env bash
# bench/redis-floor.sh - the floor under any per-value Lua write path: what
# one redis.call costs Redis from inside a script, on this machine, next to
# the flush script's cost per (window, bucket, value) cell.
#
#   bash bench/redis-floor.sh [N]          (default 10 000 calls per shape)
#
# A private redis-server (no persistence) runs one script per shape, each
# making N calls on N distinct keys, and prints Redis's main-thread CPU
# (INFO cpu, used_cpu_{sys,user}_main_thread: other load on the machine
# changes it little) per call:
#   loop      the Lua loop and key-name concatenation alone, no call
#   hmget5    HMGET of 5 fields of a hash
#   hset5     HSET of 5 fields
#   hincrby   one HINCRBY (a counter's increment)
#   bitfield5 one BITFIELD with 5 saturating INCRBYs (5 counters in one call)
#   set200    SET of a 200-byte string (a small sparse sketch)
# The flush script makes about five such calls per cell (docs/redis-schema.md,
# "Cost"), so 5 x hset5 is a floor for it: the issue's goal of 5 us per cell
# needs batched commands (many values per call), not a faster script.
# Figures, not verdicts.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args n=10000 -- "$@"
rport="${KPI_FLOOR_REDIS_PORT:-6393}"
bench_scratch
private_redis "$rport" "$tmp/redis"

script='
local n, shape = tonumber(ARGV[1]), ARGV[2]
local x = 0
local blob = string.rep("x", 200)
for i = 1, n do
    local k = "floor:" .. shape .. ":" .. i
    if shape == "loop" then x = x + #k
    elseif shape == "hmget5" then redis.call("HMGET", k, "a", "b", "c", "d", "e")
    elseif shape == "hset5" then redis.call("HSET", k, "a", i, "b", i, "c", i, "d", i, "e", i)
    elseif shape == "hincrby" then redis.call("HINCRBY", k, "a", 3)
    elseif shape == "bitfield5" then
        redis.call("BITFIELD", k, "OVERFLOW", "SAT", "INCRBY", "i64", "#0", 5, "INCRBY", "i64",
                   "#1", 5, "INCRBY", "i64", "#2", 5, "INCRBY", "i64", "#3", 5, "INCRBY", "i64", "#4", 5)
    elseif shape == "set200" then redis.call("SET", k, blob)
    end
end
return x'
sha=$(redis-cli -p "$rport" script load "$script")
cpu_ms() {
    redis-cli -p "$rport" info cpu | awk -F: '/^used_cpu_(sys|user)_main_thread:/ { s += $2 } END { printf "%.3f", s * 1000 }'
}
printf '%-10s %12s %14s\n' shape calls "CPU us/call"
for shape in loop hmget5 hset5 hincrby bitfield5 set200; do
    # twice: the first run of a shape also creates its keys' dict entries
    for run in 1 2; do
        c0=$(cpu_ms)
        redis-cli -p "$rport" evalsha "$sha" 0 "$n" "$shape" >/dev/null
        c1=$(cpu_ms)
        [ "$run" = 2 ] && awk -v s="$shape" -v n="$n" -v a="$c0" -v b="$c1" \
            'BEGIN { printf "%-10s %12d %14.2f\n", s, n, (b - a) * 1000 / n }'
    done
done
