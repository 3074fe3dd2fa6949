#!/usr/bin/env bash
# bench/e2e.sh - end-to-end benchmark, in one run on this machine:
#
#   bash bench/e2e.sh [EVENTS] [RUNS] [PARTITIONS]      (defaults 20000000 3 8)
#
# starts the services (scripts/services.sh) and builds a Release tree, then
#
# 1. engine vs raw librdkafka: produces EVENTS generator events to a fresh
#    topic with PARTITIONS partitions (kpistream-gen, keyed by subscriber,
#    event time ending at the present) and alternates RUNS times
#      raw        kpistream-bench raw: librdkafka alone, kpistream's consumer
#                 settings, touching every payload
#      kpistream  build-bench/kpistream --exit-on-eof, default configuration
#                 (2 workers, 1 s flushes, exactly-once into Redis)
#
# 2. engine vs the Kafka Streams peer (unless PEER=0): the peer reads ~10 k
#    events/s here, so it gets its own topic of PEER_EVENTS events (default
#    2000000, same generator settings), and RUNS times, alternating
#      kpistream  as above, on the peer's topic
#      peer       bench/peers/kafka-streams (built by Maven on first use)
#      peer-lite  the same with --no-distinct: counters only, no sketch
#                 (what Kafka Streams does at best with this topology)
#    The peer's throughput is taken from the seconds it reports (first record
#    to last activity), which leaves out JVM start-up and its idle wait.
#
# Every run is on a fresh consumer group (or application id), measured by
# `kpistream-bench measure` (wall, CPU, peak RSS).  Prints every run, the
# medians, the ratios, and kpistream's flush latency percentiles (its exit
# log line).  Figures, not verdicts.  Results go to bench/RESULTS.md by hand,
# with this command line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
events="${1:-20000000}"
runs="${2:-3}"
parts="${3:-8}"
peer="${PEER:-1}"
peer_events="${PEER_EVENTS:-2000000}"

# shellcheck source=bench/common.sh
. bench/common.sh
bench_setup
if [ "$peer" != 0 ]; then
    (cd bench/peers/kafka-streams && mvn -q -B -Dstyle.color=never package -DskipTests) >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

produce() { # produce TOPIC N
    echo "== producing $2 events to $1 ($parts partitions)"
    "$b/kpistream-gen" -t "$1" --events "$2" --partitions "$parts" --subscribers 1000000 \
        --seed 7 | tail -1
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

run_raw() { # run_raw TOPIC TAG -> appends to raw_w
    local w c r
    read -r w c r < <(measure "$tmp/$2" "$b/kpistream-bench" raw --topic "$1" --group "$2")
    raw_w+=("$w")
    echo "run $i raw:       ${w}s  cpu ${c}s  rss ${r} KiB  ($(grep -o '[0-9]* msg/s' "$tmp/$2.out"))"
}

run_kpistream() { # run_kpistream TOPIC TAG -> appends to kpi_w kpi_cpu kpi_rss
    local w c r
    read -r w c r < <(measure "$tmp/$2" "$b/kpistream" --exit-on-eof -X "kafka.topics=$1" \
        -X "kafka.group.id=$2" -X http.port=0 -X alerts.enabled=false)
    kpi_w+=("$w")
    kpi_cpu+=("$c")
    kpi_rss+=("$r")
    echo "run $i kpistream: ${w}s  cpu ${c}s  rss ${r} KiB  ($(tail -1 "$tmp/$2.out"))"
    grep "flush latency" "$tmp/$2.err" | sed 's/^.*kpistream: /           kpistream /' || true
}

run_peer() { # run_peer TOPIC TAG LABEL [ARGS...] -> prints "seconds rss"
    local topic="$1" tag="$2" label="$3" w c r s
    shift 3
    read -r w c r < <(measure "$tmp/$tag" bash bench/peers/kafka-streams/run.sh \
        --bootstrap 127.0.0.1:9092 --topic "$topic" --app-id "$tag" --exit-on-idle 10 "$@")
    s=$(sed -n 's/^peer: .* in \([0-9.]*\) s$/\1/p' "$tmp/$tag.out")
    printf 'run %s %-10s %ss processing (%ss wall)  cpu %ss  rss %s KiB  (%s)\n' "$i" "$label:" \
        "$s" "$w" "$c" "$r" "$(tail -1 "$tmp/$tag.out")" >&2
    echo "$s $r"
}

stamp="$(date +%s)"
topic="bench-$events-$stamp"
produce "$topic" "$events"
raw_w=() kpi_w=() kpi_cpu=() kpi_rss=()
for i in $(seq 1 "$runs"); do
    with_services_cpu run_raw "$topic" "raw-$topic-$i"
    with_services_cpu run_kpistream "$topic" "kpi-$topic-$i"
done
echo "== medians over $runs runs, $events events"
awk -v e="$events" -v r="$(median "${raw_w[@]}")" -v k="$(median "${kpi_w[@]}")" \
    -v c="$(median "${kpi_cpu[@]}")" -v m="$(median "${kpi_rss[@]}")" 'BEGIN {
    printf "raw librdkafka: %.0f events/s\n", e / r
    printf "kpistream:      %.0f events/s (%.2f x raw), %.2f CPU s per million events, peak RSS %.0f MiB\n", e / k, r / k, c / (e / 1e6), m / 1024
}'

[ "$peer" != 0 ] || exit 0
ptopic="bench-peer-$peer_events-$stamp"
produce "$ptopic" "$peer_events"
kpi_w=() kpi_cpu=() kpi_rss=() peer_s=() peer_rss=() lite_s=() lite_rss=()
for i in $(seq 1 "$runs"); do
    run_kpistream "$ptopic" "kpi-$ptopic-$i"
    read -r s r < <(run_peer "$ptopic" "peer-$ptopic-$i" peer)
    peer_s+=("$s")
    peer_rss+=("$r")
    read -r s r < <(run_peer "$ptopic" "lite-$ptopic-$i" peer-lite --no-distinct)
    lite_s+=("$s")
    lite_rss+=("$r")
done
echo "== medians over $runs runs, $peer_events events"
awk -v e="$peer_events" -v k="$(median "${kpi_w[@]}")" -v m="$(median "${kpi_rss[@]}")" \
    -v p="$(median "${peer_s[@]}")" -v pr="$(median "${peer_rss[@]}")" \
    -v l="$(median "${lite_s[@]}")" -v lr="$(median "${lite_rss[@]}")" 'BEGIN {
    printf "kpistream:      %.0f events/s, peak RSS %.0f MiB\n", e / k, m / 1024
    printf "kafka-streams:  %.0f events/s, peak RSS %.0f MiB; kpistream: %.1f x its throughput, %.2f x its memory\n", e / p, pr / 1024, p / k, m / pr
    printf "peer-lite:      %.0f events/s, peak RSS %.0f MiB; kpistream: %.1f x its throughput, %.2f x its memory (no distinct counts)\n", e / l, lr / 1024, l / k, m / lr
}'
