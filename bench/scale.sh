#!/usr/bin/env bash
# bench/scale.sh - the scaling scenario: grouping-set values and distinct
# subscribers against throughput and memory.
#
#   bash bench/scale.sh [EVENTS]          (default 5000000 per scenario)
#   SCALE_X="engine.max_cells=65536" bash bench/scale.sh   (settings for every run)
#   SCALE_ONLY="100000:1000000:3000000" bash bench/scale.sh
#                     (one scenario only, SITES:SUBSCRIBERS:EVENTS[:ZIPF], zipf 1.1
#                     unless given; EVENTS is then taken from here, not from $1)
#   SCALE_KEEP_LOG=FILE SCALE_KEEP_STATS=FILE   (the last run's kpistream log, and
#                     Redis's INFO commandstats and SLOWLOG, kept for a closer look)
#
# Every scenario adds a `site` dimension (kpistream-gen --sites N: each
# subscriber's home cell site) and a grouping set on it, so the set `site`
# has N values, next to the default sets:
#   dimensions.fields = region,plan,segment,site
#   dimensions.sets   = region,region+plan,segment,site
# Scenarios (sites x subscribers): 10, 1 000 and 10 000 sites at 10^6
# subscribers; 1 000 sites at 10^5 and 10^7 subscribers (the last with 4x
# the events and a flatter activity, --zipf 0.5, so millions of distinct
# subscribers actually appear).  Each runs kpistream --exit-on-eof with the
# default windows against a private redis-server (so its memory is this
# scenario's alone) and prints events/s, kpistream's peak RSS, Redis's
# used memory, the site set's values, the 24h window's distinct
# subscribers, the flushes with their latency (p50/max), and Redis's side
# of them: the flush calls' time per (window, bucket, value) cell written
# (INFO commandstats: the usec of the EXECs of the hot path, which hold its
# script calls, plus the script calls made outside one and, since the tenth
# session, the reads before them, / cells the sink wrote (bench/common.sh,
# call_usec); and Redis's main-thread CPU / cells, which a busy machine distorts far less), the longest single
# command (SLOWLOG, threshold 50 ms: "slow" counts the commands above it) and
# Redis's CPU (used_cpu_sys + used_cpu_user).  Figures, not verdicts.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args events=5000000 -- "$@"
rport="${KPI_SCALE_REDIS_PORT:-6391}"
# SCALE_X="engine.max_cells=65536 ...": -X settings added to every kpistream run
read -r -a xs <<<"${SCALE_X:-}"
extra=()
for x in "${xs[@]}"; do extra+=(-X "$x"); done
bench_setup

bench_scratch

printf '%-7s %-9s %-9s %12s %10s %12s %8s %11s %5s %-22s %9s %9s %8s %5s %9s\n' sites subs events \
    "events/s" "RSS MiB" "Redis MiB" values distinct zipf "flushes (p50/max ms)" "us/cell" \
    "CPU us/c" "max ms" slow "Redis s"
run() { # run SITES SUBSCRIBERS EVENTS ZIPF
    local sites=$1 subs=$2 n=$3 zipf=$4
    local topic="scale-$sites-$subs-$n-$(date +%s)"
    "$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$n" --partitions 8 --subscribers "$subs" \
        --sites "$sites" --zipf "$zipf" --seed 11 >"$tmp/gen.out" 2>"$tmp/gen.err"
    rm -rf "$tmp/redis" && mkdir -p "$tmp/redis"
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp/redis" --daemonize no >"$tmp/redis.log" 2>&1 &
    rpid=$!
    for _ in $(seq 1 100); do
        redis-cli -p "$rport" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    redis-cli -p "$rport" config set slowlog-log-slower-than 50000 >/dev/null
    redis-cli -p "$rport" config set slowlog-max-len 1024 >/dev/null
    redis-cli -p "$rport" config set latency-monitor-threshold 1 >/dev/null
    "$b/kpistream-bench" measure -- "$b/kpistream" --exit-on-eof -X "kafka.bootstrap.servers=$brokers" -X "kafka.topics=$topic" \
        -X "kafka.group.id=$topic" -X "redis.url=redis://127.0.0.1:$rport" -X http.port=0 \
        -X alerts.enabled=false -X dimensions.fields=region,plan,segment,site \
        -X dimensions.sets=region,region+plan,segment,site "${extra[@]}" >"$tmp/kpi.out" \
        2>"$tmp/kpi.err" || {
        # a failed run still gets its row (Redis's side of what it did) and says why it failed
        echo "scale.sh: kpistream failed ($sites sites, $subs subscribers); the end of its log:" >&2
        tail -n 15 "$tmp/kpi.err" >&2
    }
    [ -n "${SCALE_KEEP_LOG:-}" ] && cp "$tmp/kpi.err" "$SCALE_KEEP_LOG"
    [ -n "${SCALE_KEEP_STATS:-}" ] &&
        { redis-cli -p "$rport" info commandstats && redis-cli -p "$rport" slowlog get 1024; } >"$SCALE_KEEP_STATS"
    local wall rss mem vals active flushes callus cells slowmax slown cpu
    wall=$(sed -n 's/^measure: wall=\([0-9.]*\).*/\1/p' "$tmp/kpi.err")
    rss=$(sed -n 's/^measure: .*maxrss_kb=\([0-9]*\).*/\1/p' "$tmp/kpi.err")
    mem=$(redis-cli -p "$rport" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
    # the site set's values: its leaderboards, one per key group
    vals=0
    while read -r k; do
        vals=$((vals + $(redis-cli -p "$rport" zcard "$k")))
    done < <(redis-cli -p "$rport" --scan --pattern "kpi:{$topic*}:values:24h_1h:site")
    # the 24h window's distinct subscribers: PFCOUNT over its bucket sketches
    mapfile -t hk < <(redis-cli -p "$rport" --scan --pattern "kpi:{$topic*}:h:24h_1h:all:all:*")
    active=$(redis-cli -p "$rport" pfcount "${hk[@]}")
    flushes=$(sed -n 's/^.*flush latency: \([0-9]*\) flushes, p50 \([0-9.]*\) ms,.* max \([0-9.]*\) ms.*/\1 (\2\/\3)/p' "$tmp/kpi.err")
    callus=$(call_usec "$rport")
    cells=$(sed -n 's/^.*redis: [0-9]* calls, \([0-9]*\) (window, bucket, value) cells.*/\1/p' "$tmp/kpi.err")
    slown=$(redis-cli -p "$rport" slowlog len)
    # the longest command: LATENCY LATEST's all-time max of the "command" event
    slowmax=$(redis-cli -p "$rport" latency latest | awk '{ if (n == 3) m = $1; if (n) n++ } $1 == "command" { n = 1 } END { print m + 0 }')
    cpu=$(redis-cli -p "$rport" info cpu | awk -F: '/^used_cpu_(sys|user)_main_thread:/ { s += $2 } END { printf "%.1f", s }')
    awk -v s="$sites" -v u="$subs" -v n="$n" -v w="$wall" -v r="$rss" -v m="$mem" -v v="$vals" \
        -v a="$active" -v z="$zipf" -v f="$flushes" -v e="${callus:-0}" -v c="${cells:-0}" \
        -v sm="$slowmax" -v sn="$slown" -v cp="$cpu" 'BEGIN {
        printf "%-7s %-9s %-9s %12.0f %10.0f %12.0f %8s %11s %5s %-22s %9.1f %9.1f %8.1f %5s %9s\n", s, u, n,
            w ? n / w : 0, r / 1024, m / 1048576, v, a, z, f, c ? e / c : 0, c ? cp * 1e6 / c : 0, sm, sn, cp }'
    kill "$rpid"
    wait "$rpid" 2>/dev/null || true
    rpid=""
}
if [ -n "${SCALE_ONLY:-}" ]; then
    IFS=: read -r o_sites o_subs o_events o_zipf <<<"$SCALE_ONLY"
    for v in "$o_sites" "$o_subs" "$o_events"; do
        case "$v" in '' | *[!0-9]*)
            echo "scale.sh: SCALE_ONLY must be SITES:SUBSCRIBERS:EVENTS[:ZIPF], got '$SCALE_ONLY'" >&2
            exit 2
            ;;
        esac
    done
    run "$o_sites" "$o_subs" "$o_events" "${o_zipf:-1.1}"
    exit 0
fi
run 10 1000000 "$events" 1.1
run 1000 1000000 "$events" 1.1
run 10000 1000000 "$events" 1.1
run 1000 100000 "$events" 1.1
run 1000 10000000 "$((events * 4))" 0.5
