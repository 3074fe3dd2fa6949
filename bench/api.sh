#!/usr/bin/env bash
# bench/api.sh - the KPI API under load while the engine runs at full speed.
#
#   bash bench/api.sh [EVENTS] [SECONDS]      (defaults: 20000000, 15)
#
# One topic of EVENTS events (kpistream-gen --sites 1000: a `site` set of
# 1 000 values next to the default sets; more than the engine consumes in
# SECONDS), consumed twice by kpistream into fresh groups on a private
# redis-server, each measured over SECONDS seconds after its first flush:
#   1. alone;
#   2. while wrk (Debian's) requests GET /api/v1/kpis?window=1h_1m&set=site
#      (1 000 values, pages of 50, sorted by events) from 2 threads over 16
#      connections, against the same instance's HTTP port.
# Prints the events/s the group stored in both runs and their ratio (what
# the API costs the engine), and wrk's requests/s and latency percentiles.  Figures,
# not verdicts.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args events=20000000 secs=15 -- "$@"
rport="${KPI_API_REDIS_PORT:-6393}"
hport="${KPI_API_HTTP_PORT:-9479}"
bench_setup
command -v wrk >/dev/null || {
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -q wrk >/dev/null
}

bench_scratch
private_redis "$rport" "$tmp/redis"

topic="api-$(date +%s)"
"$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$events" --partitions 8 --sites 1000 \
    --seed 3 >"$tmp/gen.out" 2>"$tmp/gen.err"

stored() { stored_offsets_at "$1" "$rport"; }

# run NAME WITH_API: events/s the group stored over SECONDS seconds, once
# its first flush is in (with wrk loading the API over those seconds).
run() {
    local name=$1 api=$2 group="$topic-$1"
    "$b/kpistream" -X "kafka.bootstrap.servers=$brokers" -X "kafka.topics=$topic" \
        -X "kafka.group.id=$group" -X "redis.url=redis://127.0.0.1:$rport" \
        -X "http.port=$hport" -X alerts.enabled=false \
        -X dimensions.fields=region,plan,segment,site \
        -X dimensions.sets=region,region+plan,segment,site >"$tmp/$name.out" 2>"$tmp/$name.err" &
    local pid=$!
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$hport/api/v1/kpis?window=1h_1m&set=site&limit=1" |
            grep -q '"value"' && break
        sleep 0.1 # polling for the first flush
    done
    local o0 o1 t0 t1
    o0=$(stored "$group")
    t0=$(date +%s.%N)
    if [ "$api" = 1 ]; then
        wrk -t2 -c16 -d"${secs}s" --latency \
            "http://127.0.0.1:$hport/api/v1/kpis?window=1h_1m&set=site&limit=50" >"$tmp/wrk.out" 2>&1 || true
    else
        sleep "$secs" # the measurement window itself
    fi
    o1=$(stored "$group")
    t1=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" || true
    awk -v n=$((o1 - o0)) -v a="$t0" -v b="$t1" -v name="$name" \
        'BEGIN { printf "%-10s %12.0f events/s stored (%d events in %.1f s)\n", name, n / (b - a), n, b - a }'
    awk -v n=$((o1 - o0)) -v a="$t0" -v b="$t1" 'BEGIN { print n / (b - a) }' >"$tmp/$name.eps"
}

echo "== engine alone, then with the API loaded (sets incl. site x 1000, ${secs} s each)"
run alone 0
run with-api 1
awk -v a="$(cat "$tmp/alone.eps")" -v b="$(cat "$tmp/with-api.eps")" \
    'BEGIN { printf "engine throughput with the API loaded / alone: %.2f\n", b / a }'
echo "== wrk: GET /api/v1/kpis?window=1h_1m&set=site&limit=50 (2 threads, 16 connections, ${secs} s)"
grep -E "Requests/sec|Latency|50%|75%|90%|99%|requests in|Non-2xx" "$tmp/wrk.out" || cat "$tmp/wrk.out"
