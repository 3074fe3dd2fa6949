#!/usr/bin/env bash
# bench/round-trips.sh - the round trips a flush makes to Redis.  Every other
# figure of bench/ runs Redis on loopback, where a round trip costs little;
# across a network each one adds the network's RTT to a flush, and a flush's
# key groups are called one after another.
#
#   bash bench/round-trips.sh [EVENTS] [SITES]    (default 3 000 000 events, 60 sites)
#   RT_K="16 128 1024" bash bench/round-trips.sh   (the K to compare, default "16 128")
#
# One burst (kpistream-gen, 8 partitions, --sites SITES) is consumed by
# `kpistream --exit-on-eof` once per K (`redis.key_groups`), with a fresh
# group and a private Redis emptied before each run, under strace (connect,
# read, write, sendto and close only).  A round trip is counted each time
# the sink, having written to a socket connected to that Redis, reads from
# it: hiredis is blocking, so a pipeline is written, then its replies are
# read.  Per run: kpistream's flushes and key group calls (its exit
# summary), the round trips that read the offsets when partitions are
# assigned, the round trips of the flushes, and those per key group call
# (timings under strace mean nothing, so none are given).  Figures, not
# verdicts.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args events=3000000 sites=60 -- "$@"
read -r -a ks <<<"${RT_K:-16 128}"
rport="${KPI_RT_REDIS_PORT:-6394}"
command -v strace >/dev/null || { echo "round-trips.sh: needs strace (apt-get install strace)" >&2; exit 2; }
bench_setup
bench_scratch
private_redis "$rport" "$tmp/redis"

topic="rt-$sites-$events-$(date +%s)"
"$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$events" --partitions 8 \
    --subscribers 1000000 --sites "$sites" --zipf 1.1 --seed 11 >"$tmp/gen.out" 2>"$tmp/gen.err"

printf '%-6s %8s %8s %14s %12s %10s\n' K flushes calls "at assignment" "in flushes" "per call"
for k in "${ks[@]}"; do
    redis-cli -p "$rport" flushall >/dev/null
    strace -f -qq -s 24 -o "$tmp/strace" -e trace=connect,read,write,sendto,close -e signal=none \
        "$b/kpistream" --exit-on-eof -X "kafka.bootstrap.servers=$brokers" \
        -X "kafka.topics=$topic" -X "kafka.group.id=$topic-$k" \
        -X "redis.url=redis://127.0.0.1:$rport" -X "redis.key_groups=$k" \
        -X http.port=0 -X alerts.enabled=false \
        -X dimensions.fields=region,plan,segment,site \
        -X dimensions.sets=region,region+plan,segment,site >/dev/null 2>"$tmp/kpi.err" ||
        echo "round-trips.sh: K=$k failed: $(tail -n 3 "$tmp/kpi.err")" >&2
    calls=$(sed -n 's/.*redis: \([0-9]*\) calls,.*/\1/p' "$tmp/kpi.err" | tail -n 1)
    flushes=$(sed -n 's/.*flush latency: \([0-9]*\) flushes,.*/\1/p' "$tmp/kpi.err" | tail -n 1)
    # fds are per process: a connect to Redis's port marks the fd, a close
    # unmarks it; a read on a marked fd after a write on it ends a round
    # trip.  A trip whose first write is an HGET reads the offsets at an
    # assignment (redis_load_offset); the others are flushes' (the
    # transactions, the script calls, the layout check).
    read -r load flush < <(awk -v port="htons($rport)" '
        match($0, /^[0-9]+ +(<\.\.\. )?(connect|read|write|sendto|close)[( ]/) {
            line = substr($0, RSTART, RLENGTH)
            if (index(line, "<...")) next          # a resumed call: counted when it began
            op = line; sub(/^[0-9]+ +/, "", op); sub(/[( ]$/, "", op)
            fd = substr($0, RSTART + RLENGTH); sub(/[,)].*/, "", fd)
            if (op == "connect") { redis[fd] = index($0, port) > 0; kind[fd] = ""; next }
            if (op == "close") { redis[fd] = 0; next }
            if (!redis[fd]) next
            if (op == "sendto") op = "write"       # conn.c sends with send()
            if (op == "write" && kind[fd] == "")
                kind[fd] = index($0, "\"*3\\r\\n$4\\r\\nHGET\\r\\n") ? "load" : "flush"
            else if (op == "read" && kind[fd] != "") { trips[kind[fd]]++; kind[fd] = "" }
        }
        END { print trips["load"] + 0, trips["flush"] + 0 }' "$tmp/strace")
    awk -v k="$k" -v f="$flushes" -v c="$calls" -v l="$load" -v t="$flush" 'BEGIN {
        printf "%-6s %8s %8s %14s %12s %10.1f\n", k, f, c, l, t, c ? t / c : 0 }'
done
