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
# A second table then gives the CPU per value of such batched commands, B
# values per command, from a script and from a plain pipeline (below,
# "Batched commands").  Figures, not verdicts.
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

# Batched commands (a schema 3 cost model): Redis main-thread CPU per VALUE
# when one command carries B values, sent from inside one script (lua: the
# commands' arguments travel in ARGV and each command is
# redis.call(cmd, unpack(ARGV, i, j))) and from a plain pipeline
# (pipe: the same commands as RESP through redis-cli --pipe, no script).
# N values per run (rounded down to a multiple of B); each (shape, B, via)
# starts from an empty Redis (FLUSHALL, not measured) and runs twice: "new"
# creates the keys and fields, "again" rewrites them with other numbers
# (a steady-state flush).  Shapes:
#   hset_field       one HSET of B fields into one hash: field "cell-<v>",
#                    value a packed counter string (19 integers, ~120 bytes),
#                    i.e. a per-(window, bucket, set) bucket hash
#   hmget_field      one HMGET of B fields from such a hash (filled first,
#                    not measured)
#   mset_json        one MSET of B keys, each a ~600-byte JSON string (a
#                    per-value reader key written in bulk; MSET drops TTLs)
#   set_px_json      one SET key json PX 600000 per value (B = 1)
#   mset_hll         one MSET of B keys, each a ~200-byte sketch-like blob
#   zadd_batch       one ZADD of B score/member pairs
#   hset30_pervalue  one HSET of 30 fields per value (B = 1; the rolling
#                    hash write of schema 2); from a script the 30 fields
#                    come from one 60-argument table and only the keys from
#                    ARGV, as the flush script computes them
batch='
local cmd, a = ARGV[1], tonumber(ARGV[2])
local c = 0
if cmd == "HSET30" then
    local t = {}
    for i = 3, 62 do t[#t + 1] = ARGV[i] end
    for i = 63, #ARGV do
        redis.call("HSET", ARGV[i], unpack(t))
        c = c + 1
    end
else
    for i = 3, #ARGV, a do
        redis.call(cmd, unpack(ARGV, i, i + a - 1))
        c = c + 1
    end
end
return c'
bsha=$(redis-cli -p "$rport" script load "$batch")
# gen SHAPE B VIA RUN: the RESP of one run on stdout.  Values are "cell-<v>",
# v = 1..N; RUN changes the numbers written, so "again" rewrites every value.
gen() {
    LC_ALL=C awk -v shape="$1" -v b="$2" -v via="$3" -v run="$4" -v n="$n" -v sha="$bsha" '
    function arg(s) { printf "$%d\r\n%s\r\n", length(s), s }
    function counters(v, k, s) {
        s = (v * 7 + run) % 100000
        for (k = 1; k < 19; k++) s = s "," (v * 7919 + k * 104729 + run * 13) % 1000000
        return s
    }
    function json(v, k, s) {
        s = "{\"value\":\"cell-" v "\",\"window\":\"24h_1h\",\"at\":" sprintf("%.0f", 1764700000000 + run)
        for (k = 0; k < 30; k++) s = s sprintf(",\"kpi_%02d\":%d.%03d", k, (v * 31 + k * 977 + run) % 1000000, k)
        return s "}"
    }
    function blob(v) { return "HYLL" substr(pool, (v * 7 + run) % 200 + 1, 196) }
    function cmdargs(c, j, v, k) { # the arguments of command c (1-based) after its name
        if (shape == "hset_field" || shape == "hmget_field" || shape == "zadd_batch")
            arg("f3:" shape ":" b ":" c)
        for (j = 1; j <= b; j++) {
            v = (c - 1) * b + j
            if (shape == "hset_field") { arg("cell-" v); arg(counters(v)) }
            else if (shape == "hmget_field") arg("cell-" v)
            else if (shape == "mset_json") { arg("f3:j:cell-" v); arg(json(v)) }
            else if (shape == "set_px_json") { arg("f3:j:cell-" v); arg(json(v)); arg("PX"); arg("600000") }
            else if (shape == "mset_hll") { arg("f3:s:cell-" v); arg(blob(v)) }
            else if (shape == "zadd_batch") { arg((v * 7 + run) % 1000003); arg("cell-" v) }
            else if (shape == "hset30_pervalue") {
                arg("f3:r:cell-" v)
                if (via == "pipe") for (k = 0; k < 30; k++) { arg("f" k); arg(tmpl[k]) }
            }
        }
    }
    BEGIN {
        if (shape == "set_px_json" || shape == "hset30_pervalue") b = 1 # one value per command
        srand(7)
        for (k = 0; k < 400; k++) pool = pool sprintf("%c", 33 + int(rand() * 94))
        for (k = 0; k < 30; k++) tmpl[k] = (k * 104729 + run * 17) % 100000000
        name["hset_field"] = "HSET"; name["hmget_field"] = "HMGET"; name["mset_json"] = "MSET"
        name["set_px_json"] = "SET"; name["mset_hll"] = "MSET"; name["zadd_batch"] = "ZADD"
        name["hset30_pervalue"] = "HSET"
        per["hset_field"] = 1 + 2 * b; per["hmget_field"] = 1 + b; per["mset_json"] = 2 * b
        per["set_px_json"] = 4; per["mset_hll"] = 2 * b; per["zadd_batch"] = 1 + 2 * b
        per["hset30_pervalue"] = 61
        ncmd = int(n / b)
        if (via == "lua") {
            if (shape == "hset30_pervalue") {
                printf "*%d\r\n", 5 + 60 + ncmd
                arg("EVALSHA"); arg(sha); arg("0"); arg("HSET30"); arg("61")
                for (k = 0; k < 30; k++) { arg("f" k); arg(tmpl[k]) }
            } else {
                printf "*%d\r\n", 5 + ncmd * per[shape]
                arg("EVALSHA"); arg(sha); arg("0"); arg(name[shape]); arg(per[shape])
            }
            for (c = 1; c <= ncmd; c++) cmdargs(c)
        } else
            for (c = 1; c <= ncmd; c++) {
                printf "*%d\r\n", 1 + per[shape]
                arg(name[shape])
                cmdargs(c)
            }
    }'
}
# send FILE: pipe it to Redis; fails unless every reply is a success
send() {
    redis-cli -p "$rport" --pipe <"$1" >"$tmp/pipe.out" 2>&1
    grep -q "errors: 0," "$tmp/pipe.out" || { cat "$tmp/pipe.out" >&2; exit 1; }
}
echo
printf '%-16s %5s %-5s %7s %9s %13s %13s\n' shape B via values commands "us/value new" "us/value again"
for sb in hset_field:100 hset_field:1000 hmget_field:100 hmget_field:1000 mset_json:100 \
    mset_json:1000 set_px_json:1 mset_hll:100 mset_hll:1000 zadd_batch:100 zadd_batch:1000 \
    hset30_pervalue:1; do
    shape=${sb%:*} bb=${sb#*:}
    for via in lua pipe; do
        redis-cli -p "$rport" flushall >/dev/null
        if [ "$shape" = hmget_field ]; then
            gen hset_field "$bb" pipe 0 >"$tmp/fill.resp"
            send "$tmp/fill.resp"
        fi
        us=()
        for run in 1 2; do
            gen "$shape" "$bb" "$via" "$run" >"$tmp/run.resp"
            c0=$(cpu_ms)
            send "$tmp/run.resp"
            c1=$(cpu_ms)
            us+=("$(awk -v n="$(((n / bb) * bb))" -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }')")
        done
        # the keys are there: one per command for the hashes and sets, one per value otherwise
        keys=$(redis-cli -p "$rport" dbsize)
        case "$shape" in hset_field | hmget_field | zadd_batch) want=$((n / bb)) ;; *) want=$(((n / bb) * bb)) ;; esac
        [ "$keys" = "$want" ] || { echo "redis-floor: $shape B=$bb $via: $keys keys, want $want" >&2; exit 1; }
        printf '%-16s %5d %-5s %7d %9d %13s %13s\n' "$shape" "$bb" "$via" "$(((n / bb) * bb))" "$((n / bb))" "${us[0]}" "${us[1]}"
    done
done
redis-cli -p "$rport" flushall >/dev/null
