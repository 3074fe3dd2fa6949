#!/usr/bin/env bash
# bench/latency.sh - production-to-Redis latency under a paced load:
#
#   bash bench/latency.sh [RATE] [SECONDS] [PARTITIONS]     (defaults 700000 60 8)
#
# starts the services, then at once: kpistream-gen producing RATE events/s
# for SECONDS to a fresh topic (event time = the present), kpistream with the
# default configuration flushing to Redis, and `kpistream-bench latency`,
# which polls the group's stored offsets in Redis and matches them with the
# production times the generator recorded (--timestamps; see
# bench/latency.c).  Messages produced in the first 10 s (group join, first
# assignment) are left out.  Prints the generator's, kpistream's and the
# probe's last lines.  Figures, not verdicts: results go to bench/RESULTS.md
# by hand, with this command line.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args rate=700000 secs=60 parts=8 -- "$@"
bench_setup

tag="lat-$rate-$(date +%s)"
bench_scratch

echo "== $rate events/s for $secs s to $tag ($parts partitions)"
"$b/kpistream-gen" -t "$tag" --events "$((rate * secs))" --rate "$rate" --partitions "$parts" \
    --subscribers 1000000 --seed 7 --timestamps "$tmp/ts" >"$tmp/gen.out" 2>"$tmp/gen.err" &
gen=$!
pids+=("$gen")
wait_topic "$gen"
"$b/kpistream" -X "kafka.topics=$tag" -X "kafka.group.id=$tag" -X http.port=0 \
    -X alerts.enabled=false >"$tmp/kpi.out" 2>"$tmp/kpi.err" &
kpi=$!
pids+=("$kpi")
"$b/kpistream-bench" latency --timestamps "$tmp/ts" --topic "$tag" --group "$tag" \
    --duration 86400 --warmup 10 --series "${KPI_LATENCY_SERIES:-/dev/null}" >"$tmp/lat.out" &
lat=$!
pids+=("$lat")
wait "$gen" || true
total=$((rate * secs))
# Stop polling once Redis holds every produced offset in every key group (the
# sum of a key group's stored next offsets is the number of messages), or
# after two minutes.
for _ in $(seq 1 1200); do
    [ "$(stored_offsets_at "$tag" "$redis_port")" -ge "$total" ] && break
    sleep 0.1
done
kill -TERM "$lat"
wait "$lat" || true
cat "$tmp/lat.out"
kill -TERM "$kpi"
wait "$kpi" || true
echo "generator: $(tail -1 "$tmp/gen.out")"
echo "kpistream: $(tail -1 "$tmp/kpi.out")"
grep "flush latency" "$tmp/kpi.err" | sed 's/^.*kpistream: /kpistream: /' || true
