#!/usr/bin/env bash
# bench/e2e.sh - end-to-end benchmark, in one run on this machine:
#
#   bash bench/e2e.sh [EVENTS] [RUNS] [PARTITIONS]      (defaults 20000000 3 8)
#
# starts the services (scripts/services.sh), produces EVENTS generator events
# to a fresh topic with PARTITIONS partitions (kpistream-gen), then alternates
# RUNS times:
#   raw        kpistream-bench raw: librdkafka alone, same consumer settings
#   kpistream  build/kpistream --exit-on-eof, default configuration, flushing
#              to Redis with exactly-once on
#   peer       bench/peers/kafka-streams (unless PEER=0; built by Maven on
#              first use, see its README); its throughput is taken from the
#              seconds it reports (first record to last activity), which
#              leaves out JVM start-up and its idle wait
# each on a fresh consumer group, measured by `kpistream-bench measure`
# (wall, CPU, peak RSS).  Prints every run, the medians, the ratios, and
# kpistream's flush latency percentiles (its exit log line).
# Figures, not verdicts.  Results go to bench/RESULTS.md by hand, with this
# command line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
events="${1:-20000000}"
runs="${2:-3}"
parts="${3:-8}"
b=build-bench

bash scripts/install-deps.sh
bash scripts/services.sh up >&2
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$b" -j2 >/dev/null

topic="bench-$events-$(date +%s)"
echo "== producing $events events to $topic ($parts partitions)"
"$b/kpistream-gen" -t "$topic" --events "$events" --partitions "$parts" --subscribers 1000000 \
    --seed 7

measure() { # measure LOGFILE CMD... -> prints "wall cpu rss"
    local log="$1"
    shift
    "$b/kpistream-bench" measure -- "$@" >"$log.out" 2>"$log.err" || {
        tail -5 "$log.err" >&2
        return 1
    }
    sed -n 's/^measure: wall=\([0-9.]*\) cpu=\([0-9.]*\) maxrss_kb=\([0-9]*\).*/\1 \2 \3/p' "$log.err"
}

tmp="$(mktemp -d)"
raw_w=() kpi_w=() kpi_cpu=() kpi_rss=() peer_w=() peer_rss=()
peer="${PEER:-1}"
if [ "$peer" != 0 ]; then
    (cd bench/peers/kafka-streams && mvn -q -B package -DskipTests) >&2
fi
for i in $(seq 1 "$runs"); do
    read -r w c r < <(measure "$tmp/raw$i" "$b/kpistream-bench" raw --topic "$topic" --group "raw-$topic-$i")
    raw_w+=("$w")
    echo "run $i raw:       ${w}s  cpu ${c}s  rss ${r} KiB  ($(grep -o '[0-9]* msg/s' "$tmp/raw$i.out"))"
    read -r w c r < <(measure "$tmp/kpi$i" "$b/kpistream" --exit-on-eof -X "kafka.topics=$topic" \
        -X "kafka.group.id=bench-$topic-$i" -X http.port=0 -X alerts.enabled=false)
    kpi_w+=("$w")
    kpi_cpu+=("$c")
    kpi_rss+=("$r")
    echo "run $i kpistream: ${w}s  cpu ${c}s  rss ${r} KiB  ($(tail -1 "$tmp/kpi$i.out"))"
    grep "flush latency" "$tmp/kpi$i.err" | sed 's/^.*kpistream: /           kpistream /' || true
    if [ "$peer" != 0 ]; then
        read -r w c r < <(measure "$tmp/peer$i" bash bench/peers/kafka-streams/run.sh \
            --bootstrap 127.0.0.1:9092 --topic "$topic" --app-id "peer-$topic-$i" --exit-on-idle 10)
        s=$(sed -n 's/^peer: .* in \([0-9.]*\) s$/\1/p' "$tmp/peer$i.out")
        peer_w+=("$s")
        peer_rss+=("$r")
        echo "run $i peer:      ${s}s processing (${w}s wall)  cpu ${c}s  rss ${r} KiB  ($(tail -1 "$tmp/peer$i.out"))"
    fi
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mr=$(median "${raw_w[@]}")
mk=$(median "${kpi_w[@]}")
echo "== medians over $runs runs, $events events"
awk -v e="$events" -v r="$mr" -v k="$mk" -v c="$(median "${kpi_cpu[@]}")" -v m="$(median "${kpi_rss[@]}")" 'BEGIN {
    printf "raw librdkafka: %.0f events/s\n", e / r
    printf "kpistream:      %.0f events/s (%.2f x raw), %.2f CPU s per million events, peak RSS %.0f MiB\n", e / k, r / k, c / (e / 1e6), m / 1024
}'
if [ ${#peer_w[@]} -gt 0 ]; then
    mp=$(median "${peer_w[@]}")
    awk -v e="$events" -v k="$mk" -v p="$mp" -v pr="$(median "${peer_rss[@]}")" -v m="$(median "${kpi_rss[@]}")" 'BEGIN {
        printf "kafka-streams:  %.0f events/s; kpistream is %.2f x its throughput with %.2f x its peak RSS\n", e / p, p / k, m / pr
    }'
fi
rm -rf "$tmp"
