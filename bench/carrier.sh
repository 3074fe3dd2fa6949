#!/usr/bin/env bash
# bench/carrier.sh - a carrier-shaped scenario on this machine:
#
#   bash bench/carrier.sh [SECONDS] [RATE]        (defaults 600 and 70 % of the measured rate)
#
# 10 M subscribers (CARRIER_SUBS), a `site` dimension standing for the cell
# with 50 000 values (CARRIER_CELLS; kpistream-gen --sites: each subscriber's
# home cell, uniform over subscribers, so a cell's traffic follows its
# subscribers' Zipf 1.1 activity), the default grouping sets plus `site`, the
# default windows, 2 kpistream instances in one group, 8 partitions.
# engine.max_cells is raised to 262144 (CARRIER_X adds more -X settings), as
# the README's "High cardinality" says to at this many values.
#
# 1. Sustainable load (skipped when RATE is given): 3 M events (CARRIER_CAL)
#    produced unpaced, consumed by both instances with --exit-on-eof; the
#    rate is the events over the slower instance's wall time.  An upper
#    bound: unpaced events span seconds of event time, so flushes touch far
#    fewer buckets than in a paced run (bench/RESULTS.md, "Carrier").
# 2. A paced run of SECONDS at RATE = 70 % of that: kpistream-gen --rate with
#    --timestamps, both instances, and `kpistream-bench latency` (production
#    to the offsets stored in Redis, every key group).  Every 10 s it samples
#    each instance's RSS, Redis's used_memory and the freshness of the
#    rolling hashes: now minus the oldest key group's last flush, and the
#    event-time lag of the 1m/5s window's head (now - head - slide).
#
# Prints throughput (produced and consumed), p50/p99 latency, peak RSS per
# instance, Redis peak memory and main-thread CPU (share of a core over the
# run), the flush latency of each instance, and freshness p50/max.  Figures,
# not verdicts: results go to bench/RESULTS.md by hand, with this command.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args secs=600 rate= -- "$@"
subs="${CARRIER_SUBS:-10000000}"
cells="${CARRIER_CELLS:-50000}"
cal="${CARRIER_CAL:-3000000}"
parts=8
bench_setup

bench_scratch

kpi_args() { # kpi_args TOPIC GROUP
    echo -X "kafka.bootstrap.servers=$brokers" -X "kafka.topics=$1" -X "kafka.group.id=$2" \
        -X "redis.url=redis://127.0.0.1:$redis_port" -X http.port=0 -X alerts.enabled=false \
        -X dimensions.fields=region,plan,segment,site -X dimensions.sets=region,region+plan,segment,site \
        -X dimensions.max_values=100000 -X engine.max_cells=262144 ${CARRIER_X:-}
}

gen() { # gen TOPIC EVENTS [ARGS...]
    local topic="$1" n="$2"
    shift 2
    "$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$n" --partitions "$parts" \
        --subscribers "$subs" --sites "$cells" --seed 13 "$@"
}

stamp="$(date +%s)"
if [ -z "$rate" ]; then
    topic="carrier-cal-$stamp"
    echo "== sustainable load: $cal events (unpaced) to $topic, 2 instances"
    gen "$topic" "$cal" | tail -1
    for n in 1 2; do
        # shellcheck disable=SC2046 # kpi_args is a list of arguments
        "$b/kpistream-bench" measure -- "$b/kpistream" --exit-on-eof $(kpi_args "$topic" "$topic") \
            >"$tmp/cal$n.out" 2>"$tmp/cal$n.err" &
        pids+=("$!")
    done
    for p in "${pids[@]}"; do wait "$p" || echo "an instance exited with status $?" >&2; done
    pids=()
    w=0
    for n in 1 2; do
        echo "instance $n: $(tail -1 "$tmp/cal$n.out"); $(grep '^measure:' "$tmp/cal$n.err" || tail -3 "$tmp/cal$n.err")"
        x=$(sed -n 's/^measure: wall=\([0-9.]*\).*/\1/p' "$tmp/cal$n.err")
        w=$(awk -v a="$w" -v b="$x" 'BEGIN {print (b > a ? b : a)}')
    done
    full=$(awk -v e="$cal" -v w="$w" 'BEGIN {printf "%d", e / w}')
    rate=$(awk -v f="$full" 'BEGIN {printf "%d", f * 0.7}')
    echo "sustainable: $full events/s (wall ${w}s, group join included); pacing at 70 %: $rate events/s"
fi

topic="carrier-$rate-$stamp"
total=$((rate * secs))
echo "== $rate events/s for $secs s to $topic: $cells cells, $subs subscribers, 2 instances"
redis_cpu() { redis-cli -p "$redis_port" info cpu | awk -F: '/^used_cpu_(sys|user)_main_thread:/ {s += $2} END {printf "%.2f\n", s}'; }
cpu0=$(redis_cpu)
t0=$(date +%s.%N)
gen "$topic" "$total" --rate "$rate" --timestamps "$tmp/ts" >"$tmp/gen.out" 2>"$tmp/gen.err" &
g=$!
pids+=("$g")
wait_topic "$g"
kp=()
for n in 1 2; do
    # shellcheck disable=SC2046
    "$b/kpistream-bench" measure -- "$b/kpistream" $(kpi_args "$topic" "$topic") \
        >"$tmp/k$n.out" 2>"$tmp/k$n.err" &
    kp+=("$!")
    pids+=("$!")
done
"$b/kpistream-bench" latency --timestamps "$tmp/ts" --topic "$topic" --group "$topic" \
    --redis-port "$redis_port" --duration 86400 --warmup 20 >"$tmp/lat.out" &
lat=$!
pids+=("$lat")

# The group's 16 key-group prefixes (docs/redis-schema.md, "Key groups"):
# computed, because a SCAN walks every key (millions here) and takes longer
# than the 10 s sampling period.
mapfile -t kgs < <(python3 - "$topic" <<'PY'
import binascii, sys
g, K = sys.argv[1], 16
for kg in range(K):
    lo, hi = kg * 16384 // K, (kg + 1) * 16384 // K
    s = 0
    while not lo <= binascii.crc_hqx(f"{g}.{kg}.{s}".encode(), 0) % 16384 < hi:
        s += 1
    print(f"kpi:{{{g}.{kg}.{s}}}:")
PY
)

# Every 10 s while producing: RSS of each instance, Redis memory, freshness.
# While a flush script runs longer than Redis's lua-time-limit (5 s), Redis
# answers BUSY: counted as "busy" samples, as a dashboard would see them.
sample() {
    local now_ms m lf hd
    now_ms=$(($(date +%s%N) / 1000000))
    for n in 1 2; do
        local p
        p=$(pgrep -P "${kp[$((n - 1))]}" kpistream | head -1 || true)
        [ -n "$p" ] && awk -v n="$n" '/^VmRSS:/ {print "rss" n, $2}' "/proc/$p/status" 2>/dev/null || true
    done
    redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print "mem", $2 + 0}'
    lf="" hd=""
    for m in "${kgs[@]}"; do
        read -r a c < <(redis-cli -p "$redis_port" hmget "${m}meta" last_flush_ms head:1m_5s | paste -s -d ' ')
        case "$a$c" in *BUSY*) echo "busy 1"; return 0 ;; esac
        [[ "$a" =~ ^[0-9]+$ ]] && { [ -z "$lf" ] || [ "$a" -lt "$lf" ]; } && lf="$a"
        [[ "$c" =~ ^[0-9]+$ ]] && { [ -z "$hd" ] || [ "$c" -lt "$hd" ]; } && hd="$c"
    done
    [ -n "$lf" ] && echo "flush_age $((now_ms - lf))"
    [ -n "$hd" ] && echo "head_lag $((now_ms - hd - 5000))"
}
while kill -0 "$g" 2>/dev/null; do
    sample >>"$tmp/samples" || true
    sleep 10 # sampling period of the figures above, not a synchronisation
done
wait "$g" || true
produced_s=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN {printf "%.1f", t1 - t0}')
# Wait until every key group stores every produced offset (or 10 minutes).
caught_up() {
    local m s lo=""
    for m in "${kgs[@]}"; do
        s=$(redis-cli -p "$redis_port" hvals "${m}offsets" | awk '/^[0-9]+$/ {s += $1} END {print s + 0}')
        { [ -z "$lo" ] || [ "$s" -lt "$lo" ]; } && lo="$s"
    done
    [ "${lo:-0}" -ge "$total" ]
}
for _ in $(seq 1 6000); do
    caught_up && break
    sleep 0.1
done
lag_s=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" -v p="$produced_s" 'BEGIN {printf "%.1f", t1 - t0 - p}')
cpu1=$(redis_cpu)
all_s=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN {printf "%.1f", t1 - t0}')
kill -TERM "$lat"
wait "$lat" || true
for p in "${kp[@]}"; do kill -TERM "$(pgrep -P "$p" kpistream | head -1)" 2>/dev/null || true; done
for p in "${kp[@]}"; do wait "$p" || true; done
pids=()

echo "generator: $(tail -1 "$tmp/gen.out") (target $rate events/s)"
echo "caught up: ${lag_s}s after production ended"
for n in 1 2; do
    echo "instance $n: $(tail -1 "$tmp/k$n.out"); $(grep '^measure:' "$tmp/k$n.err")"
    grep "flush latency" "$tmp/k$n.err" | sed "s/^.*kpistream: /instance $n: /" || true
done
cat "$tmp/lat.out"
awk -v c0="$cpu0" -v c1="$cpu1" -v s="$all_s" 'BEGIN {printf "redis: main-thread CPU %.1f s over %.0f s (%.0f %% of a core)\n", c1 - c0, s, 100 * (c1 - c0) / s}'
awk '$1 == "mem" && $2 > m {m = $2} END {printf "redis: peak used_memory %.0f MiB (sampled every 10 s)\n", m / 1048576}' "$tmp/samples"
awk '$1 ~ /^rss/ && $2 > r[$1] {r[$1] = $2} END {for (k in r) printf "%s: peak RSS while producing %.0f MiB\n", k, r[k] / 1024}' "$tmp/samples" | sort
awk '$1 == "busy" {b++} $1 == "mem" {n++} END {printf "redis: BUSY (a flush script past lua-time-limit) in %d of %d samples\n", b, n}' "$tmp/samples"
for f in flush_age head_lag; do
    awk -v f="$f" '$1 == f {print $2}' "$tmp/samples" | sort -n | awk -v f="$f" '{a[NR] = $1} END {
        if (NR) printf "freshness %s: p50 %.1f s, max %.1f s over %d samples\n", f, a[int((NR + 1) / 2)] / 1000, a[NR] / 1000, NR}'
done
