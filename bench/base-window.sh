#!/usr/bin/env bash
# bench/base-window.sh - what the 30d/1d window (the "active base" fallback
# of docs/kpis.md) costs in Redis memory, next to the default windows.
#
#   bash bench/base-window.sh [EVENTS] [SITES]     (default 2000000 events, 1000 sites)
#   KPI_BASE_BENCH_BIN=build-asan bash bench/base-window.sh   (programs of another build;
#                                      the services must be up)
#
# One topic of EVENTS events (kpistream-gen, a `site` dimension of SITES
# values as in bench/scale.sh, so the `site` set has SITES values), read
# twice by kpistream --exit-on-eof, each time into an empty private
# redis-server: with the default windows, then with 30d/1d added.  Prints
# Redis's used_memory and its keys after each run, and the difference per
# grouping-set value.  Event time spans EVENTS / 20 000 s (the generator's
# unpaced event rate), so every window holds everything: the 30-day window
# costs what one more long window costs (its bucket sketches, up to 12 KB
# each once dense, and its ws sketch), per value and per day it covers.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args events=2000000 sites=1000 -- "$@"
rport="${KPI_BASE_BENCH_REDIS_PORT:-6392}"
if [ -n "${KPI_BASE_BENCH_BIN:-}" ]; then
    b="$KPI_BASE_BENCH_BIN" # Redis's memory does not depend on the engine's build
else
    bench_setup
fi

tmp="$(mktemp -d)"
rpid=""
cleanup() {
    [ -n "$rpid" ] && kill "$rpid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

topic="basewin-$events-$sites-$(date +%s)"
"$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$events" --partitions 8 \
    --subscribers 1000000 --sites "$sites" --event-rate 20000 --seed 5 >"$tmp/gen.out" 2>"$tmp/gen.err"

declare -A mem keys
for windows in "1m/5s,1h/1m,24h/1h" "1m/5s,1h/1m,24h/1h,30d/1d"; do
    rm -rf "$tmp/redis"
    private_redis "$rport" "$tmp/redis"
    "$b/kpistream" --exit-on-eof -X "kafka.bootstrap.servers=$brokers" -X "kafka.topics=$topic" \
        -X "kafka.group.id=$topic" -X "redis.url=redis://127.0.0.1:$rport" -X http.port=0 \
        -X alerts.enabled=false -X dimensions.fields=region,plan,segment,site \
        -X dimensions.sets=region,region+plan,segment,site -X "windows.list=$windows" \
        >"$tmp/kpi.out" 2>"$tmp/kpi.err"
    mem[$windows]=$(redis-cli -p "$rport" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
    keys[$windows]=$(redis-cli -p "$rport" dbsize)
    kill "$rpid"
    wait "$rpid" 2>/dev/null || true
    rpid=""
done
values=$((1 + 8 + 48 + 5 + sites))
a="1m/5s,1h/1m,24h/1h"
c="1m/5s,1h/1m,24h/1h,30d/1d"
awk -v e="$events" -v s="$sites" -v v="$values" -v ma="${mem[$a]}" -v mc="${mem[$c]}" \
    -v ka="${keys[$a]}" -v kc="${keys[$c]}" 'BEGIN {
    printf "events %d, sites %d, grouping-set values %d\n", e, s, v
    printf "%-28s %12s %8s\n", "windows", "Redis MiB", "keys"
    printf "%-28s %12.1f %8d\n", "1m/5s,1h/1m,24h/1h", ma / 1048576, ka
    printf "%-28s %12.1f %8d\n", "+ 30d/1d", mc / 1048576, kc
    printf "30d/1d adds %.1f MiB (%+.0f %%), %.1f KiB per value\n", (mc - ma) / 1048576,
        100 * (mc - ma) / ma, (mc - ma) / 1024 / v }'
