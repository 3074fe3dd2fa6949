#!/usr/bin/env bash
# bench/e2e.sh - end-to-end benchmark, in one run on this machine:
#
#   bash bench/e2e.sh [EVENTS] [RUNS] [PARTITIONS]      (defaults 5000000 3 8)
#
# starts the services (scripts/services.sh, on KPI_REDIS_PORT / KPI_KAFKA_PORT)
# and builds a Release tree, then
#
# 1. engine vs raw librdkafka (unless ENGINE=0): produces EVENTS generator
#    events to a fresh topic with PARTITIONS partitions (kpistream-gen, keyed
#    by subscriber, event time ending at the present) and alternates RUNS times
#      raw        kpistream-bench raw: librdkafka alone, kpistream's consumer
#                 settings, touching every payload
#      kpistream  build-bench/kpistream --exit-on-eof, default configuration
#                 (2 workers, 1 s flushes, exactly-once into Redis)
#
# 2. kpistream vs its peers (unless PEER=0), all on one topic of PEER_EVENTS
#    events (default 1000000, same generator settings), RUNS rounds of, in
#    this order and each on a fresh consumer group / application id:
#      raw        as above
#      kpistream  as above
#      flink      bench/peers/flink: Flink 2.2 SQL (HOP + GROUPING SETS +
#                 exact COUNT(DISTINCT)), 1 s exactly-once checkpoints, a
#                 local MiniCluster; PEER_FLINK_ARGS adds options
#      ks-dsl     bench/peers/kafka-streams: the idiomatic DSL topology
#      ks-proc    the same with --processor: one Processor-API processor,
#                 in-memory pre-aggregation per commit, no repartition topic
#      ks-lite    (only with LITE=1) the DSL one with --no-distinct
#    After round 1's Flink run, `bench/peers/flink/run.sh check` compares
#    Flink's Redis results with kpistream's on the same topic (every window
#    instance's counters equal, distinct counts within 5 %); a mismatch fails
#    the script.
#    A peer's throughput is taken from the seconds it reports itself (first
#    record to its last write to Redis), which leaves out JVM start-up, SQL
#    planning, group join and the idle wait; kpistream's and raw's from their
#    whole wall time.  Both favour the peers.  CPU per million events is the
#    whole process's CPU (start-up included) over the topic's events.
#
# Every run is measured by `kpistream-bench measure` (wall, CPU, peak RSS).
# Prints every run, the medians, the ratios, and kpistream's flush latency
# percentiles (its exit log line).  Figures, not verdicts.  Results go to
# bench/RESULTS.md by hand, with this command line.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args events=5000000 runs=3 parts=8 -- "$@"
engine="${ENGINE:-1}"
peer="${PEER:-1}"
lite="${LITE:-0}"
peer_events="${PEER_EVENTS:-1000000}"
bench_setup
if [ "$peer" != 0 ]; then
    bash bench/peers/kafka-streams/run.sh build >&2
    bash bench/peers/flink/run.sh build >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

produce() { # produce TOPIC N
    echo "== producing $2 events to $1 ($parts partitions)"
    "$b/kpistream-gen" -b "$brokers" -t "$1" --events "$2" --partitions "$parts" \
        --subscribers 1000000 --seed 7 | tail -1
}

measure() { # measure LOGFILE CMD... -> prints "wall cpu rss"
    local log="$1"
    shift
    "$b/kpistream-bench" measure -- "$@" >"$log.out" 2>"$log.err" || {
        tail -5 "$log.err" >&2
        return 1
    }
    sed -n 's/^measure: wall=\([0-9.]*\) cpu=\([0-9.]*\) maxrss_kb=\([0-9]*\).*/\1 \2 \3/p' "$log.err"
}

# CPU seconds a service has used so far (its pid file from scripts/services.sh).
tck="$(getconf CLK_TCK)"
svc_cpu() {
    local f=".services/$1.pid"
    [ -f "$f" ] && [ -r "/proc/$(cat "$f")/stat" ] || {
        echo 0
        return
    }
    awk -v t="$tck" '{sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t}' "/proc/$(cat "$f")/stat"
}
# "broker Xs, redis Ys": what the services used while CMD... ran.
with_services_cpu() {
    local k0 r0
    k0=$(svc_cpu kafka)
    r0=$(svc_cpu redis)
    "$@"
    awk -v k0="$k0" -v k1="$(svc_cpu kafka)" -v r0="$r0" -v r1="$(svc_cpu redis)" \
        'BEGIN {printf "           services: broker cpu %.2fs, redis cpu %.2fs\n", k1 - k0, r1 - r0}'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Per row: seconds (for throughput), CPU s, peak RSS KiB, one value per run.
declare -A row_s row_cpu row_rss
record() { # record ROW SECONDS CPU RSS
    row_s[$1]+="$2 "
    row_cpu[$1]+="$3 "
    row_rss[$1]+="$4 "
}

run_raw() { # run_raw TOPIC TAG
    local w c r
    read -r w c r < <(measure "$tmp/$2" "$b/kpistream-bench" raw --brokers "$brokers" --topic "$1" --group "$2")
    record raw "$w" "$c" "$r"
    echo "run $i raw:       ${w}s  cpu ${c}s  rss ${r} KiB  ($(grep -o '[0-9]* msg/s' "$tmp/$2.out"))"
}

run_kpistream() { # run_kpistream TOPIC TAG
    local w c r
    read -r w c r < <(measure "$tmp/$2" "$b/kpistream" --exit-on-eof -X "kafka.topics=$1" \
        -X "kafka.group.id=$2" -X "kafka.bootstrap.servers=$brokers" -X "redis.url=redis://127.0.0.1:$redis_port" \
        -X http.port=0 -X alerts.enabled=false)
    record kpistream "$w" "$c" "$r"
    echo "run $i kpistream: ${w}s  cpu ${c}s  rss ${r} KiB  ($(tail -1 "$tmp/$2.out"))"
    grep "flush latency" "$tmp/$2.err" | sed 's/^.*kpistream: /           kpistream /' || true
}

run_peer() { # run_peer ROW TAG CMD... : a peer that prints "peer: N events (B bad) in S s"
    local label="$1" tag="$2" w c r s
    shift 2
    read -r w c r < <(measure "$tmp/$tag" "$@")
    s=$(sed -n 's/^peer: .* in \([0-9.]*\) s$/\1/p' "$tmp/$tag.out")
    record "$label" "$s" "$c" "$r"
    printf 'run %s %-10s %ss processing (%ss wall)  cpu %ss  rss %s KiB  (%s)\n' "$i" "$label:" \
        "$s" "$w" "$c" "$r" "$(tail -1 "$tmp/$tag.out")"
    grep '^peer: input read' "$tmp/$tag.out" | sed 's/^/           /' || true
}

run_flink() { # run_flink TOPIC TAG
    run_peer flink "$2" bash bench/peers/flink/run.sh --bootstrap "$brokers" --redis "127.0.0.1:$redis_port" \
        --topic "$1" --job "$2" ${PEER_FLINK_ARGS:-}
}

run_ks() { # run_ks ROW TOPIC TAG [ARGS...]
    local label="$1" topic="$2" tag="$3"
    shift 3
    run_peer "$label" "$tag" bash bench/peers/kafka-streams/run.sh --bootstrap "$brokers" \
        --redis "127.0.0.1:$redis_port" --topic "$topic" --app-id "$tag" --exit-on-idle 10 "$@"
}

# One summary line per row: median throughput, CPU per million events, peak RSS.
summary() { # summary EVENTS ROW...
    local e="$1" r s c m
    shift
    printf '%-10s %14s %14s %12s\n' "" "events/s" "CPU s per M" "peak RSS MiB"
    for r in "$@"; do
        [ -n "${row_s[$r]:-}" ] || continue
        # shellcheck disable=SC2086 # one value per run
        s=$(median ${row_s[$r]})
        # shellcheck disable=SC2086
        c=$(median ${row_cpu[$r]})
        # shellcheck disable=SC2086
        m=$(median ${row_rss[$r]})
        awk -v r="$r" -v e="$e" -v s="$s" -v c="$c" -v m="$m" \
            'BEGIN {printf "%-10s %14.0f %14.2f %12.0f\n", r ":", e / s, c / (e / 1e6), m / 1024}'
    done
}

ratios() { # ratios ROW...: kpistream's throughput and memory against each
    local k km r s m
    # shellcheck disable=SC2086
    k=$(median ${row_s[kpistream]})
    # shellcheck disable=SC2086
    km=$(median ${row_rss[kpistream]})
    for r in "$@"; do
        [ -n "${row_s[$r]:-}" ] || continue
        # shellcheck disable=SC2086
        s=$(median ${row_s[$r]})
        # shellcheck disable=SC2086
        m=$(median ${row_rss[$r]})
        awk -v r="$r" -v k="$k" -v s="$s" -v km="$km" -v m="$m" \
            'BEGIN {printf "kpistream vs %-9s %8.2f x its throughput, %5.2f x its peak RSS\n", r ":", s / k, km / m}'
    done
}

stamp="$(date +%s)"
if [ "$engine" != 0 ]; then
    topic="bench-$events-$stamp"
    produce "$topic" "$events"
    for i in $(seq 1 "$runs"); do
        with_services_cpu run_raw "$topic" "raw-$topic-$i"
        with_services_cpu run_kpistream "$topic" "kpi-$topic-$i"
    done
    echo "== medians over $runs runs, $events events"
    summary "$events" raw kpistream
    ratios raw
fi

[ "$peer" != 0 ] || exit 0
row_s=() row_cpu=() row_rss=()
ptopic="bench-peer-$peer_events-$stamp"
produce "$ptopic" "$peer_events"
for i in $(seq 1 "$runs"); do
    with_services_cpu run_raw "$ptopic" "raw-$ptopic-$i"
    with_services_cpu run_kpistream "$ptopic" "kpi-$ptopic-$i"
    with_services_cpu run_flink "$ptopic" "flink-$ptopic-$i"
    if [ "$i" = 1 ]; then
        bash bench/peers/flink/run.sh check --redis "127.0.0.1:$redis_port" --kpi-group "kpi-$ptopic-1" \
            --job "flink-$ptopic-1"
    fi
    with_services_cpu run_ks ks-dsl "$ptopic" "ksdsl-$ptopic-$i"
    with_services_cpu run_ks ks-proc "$ptopic" "ksproc-$ptopic-$i" --processor
    [ "$lite" = 0 ] || with_services_cpu run_ks ks-lite "$ptopic" "kslite-$ptopic-$i" --no-distinct
done
echo "== medians over $runs runs, $peer_events events (peers: their own processing time)"
summary "$peer_events" raw kpistream flink ks-dsl ks-proc ks-lite
ratios flink ks-dsl ks-proc ks-lite
