#!/usr/bin/env bash
# bench/redis-load.sh - Redis's side of a group: how a group's load spreads
# over a Redis Cluster's masters, and what several instances cost one Redis.
#
#   bash bench/redis-load.sh [SECONDS] [RATE]      (defaults: 60 s, 50 000 events/s)
#
# Two scenarios, each a paced kpistream-gen (--sites 1000: a `site` set of
# 1 000 values next to the default sets, default windows) into a fresh topic
# of 8 partitions, consumed by several kpistream instances of one group with
# 1 s flushes:
#   cluster   3 instances against the 3-master Redis Cluster of
#             scripts/services.sh (up redis-cluster); prints each master's
#             main-thread CPU during the run and max/mean over the masters;
#   scaleout  4 instances against one redis-server; prints Redis's
#             main-thread CPU as a share of one core over the run, and the
#             flush script's time per (window, bucket, value) cell.
# CPU is Redis's own (INFO cpu, used_cpu_{sys,user}_main_thread), so other
# load on the machine changes it little.  Figures, not verdicts.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args secs=60 rate=50000 -- "$@"
rport="${KPI_LOAD_REDIS_PORT:-6392}"
cport="${KPI_REDIS_CLUSTER_PORT:-7000}"
bench_setup
bash scripts/services.sh up redis-cluster >&2

bench_scratch

cpu_ms() { # cpu_ms PORT: main-thread CPU of a redis-server, in ms
    redis-cli -p "$1" info cpu |
        awk -F: '/^used_cpu_(sys|user)_main_thread:/ { s += $2 } END { printf "%.0f", s * 1000 }'
}

masters() { # the cluster's master ports
    for p in $(seq "$cport" $((cport + 5))); do
        [ "$(redis-cli -p "$p" role 2>/dev/null | head -1)" = master ] && echo "$p"
    done
}

# run_group NAME INSTANCES REDIS_PORT: produce paced, consume with INSTANCES
# instances, stop them once everything is flushed.
run_group() {
    local name=$1 n=$2 port=$3
    local topic="load-$name-$(date +%s)" events=$((secs * rate))
    "$b/kpistream-gen" -b "$brokers" -t "$topic" --events 0 --partitions 8 >/dev/null 2>&1 || true
    pids=()
    for i in $(seq 1 "$n"); do
        "$b/kpistream" -X "kafka.bootstrap.servers=$brokers" -X "kafka.topics=$topic" -X "kafka.group.id=$topic" \
            -X "redis.url=redis://127.0.0.1:$port" -X http.port=0 -X alerts.enabled=false \
            -X dimensions.fields=region,plan,segment,site \
            -X dimensions.sets=region,region+plan,segment,site "${extra[@]}" \
            >"$tmp/$name-$i.out" 2>"$tmp/$name-$i.err" &
        pids+=($!)
    done
    # every instance owns partitions before the load starts
    for i in $(seq 1 "$n"); do
        for _ in $(seq 1 600); do
            grep -q assigned "$tmp/$name-$i.err" && break
            sleep 0.1 # polling for the log line, not synchronisation of results
        done
    done
    load_t0=$(date +%s.%N)
    load_c0=$(cpu_ms "$port" 2>/dev/null || echo 0)
    "$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$events" --rate "$rate" --partitions 8 \
        --sites 1000 --seed 5 >"$tmp/gen.out" 2>"$tmp/gen.err"
    load_tp=$(date +%s.%N)
    load_cp=$(cpu_ms "$port" 2>/dev/null || echo 0)
    # drained: the group's offsets reach what was produced
    local want
    want=$(awk '/^produced:/ { print $2 }' "$tmp/gen.out")
    [ -n "$want" ] || { cat "$tmp/gen.err" >&2; return 1; }
    for _ in $(seq 1 1200); do
        local got
        got=$(stored_offsets "$port" "$topic")
        [ "$got" -ge "$want" ] && break
        sleep 0.5 # polling for the offsets
    done
    load_t1=$(date +%s.%N)
    load_c1=$(cpu_ms "$port" 2>/dev/null || echo 0)
    for p in "${pids[@]}"; do kill -TERM "$p"; done
    for p in "${pids[@]}"; do wait "$p" || true; done
    pids=()
}

# The smallest, over key groups, of the offsets a group stored: each
# master's key groups (a cluster) or the one Redis's.
stored_offsets() { # stored_offsets PORT GROUP
    local ports=("$1")
    [ "$1" = "$cport" ] && mapfile -t ports < <(masters)
    stored_offsets_at "$2" "${ports[@]}"
}

# LOAD_X="redis.hot_path=false ...": -X settings added to every instance;
# LOAD_ONLY=cluster or scaleout: one scenario.
read -r -a xs <<<"${LOAD_X:-}"
extra=()
for x in "${xs[@]}"; do extra+=(-X "$x"); done
if [ "${LOAD_ONLY:-cluster}" = cluster ]; then
echo "== cluster: 3 instances, 1 group, $secs s at $rate events/s, 3 masters"
mapfile -t ms < <(masters)
declare -A before
for p in "${ms[@]}"; do before[$p]=$(cpu_ms "$p"); done
run_group cluster 3 "$cport"
total=0
for p in "${ms[@]}"; do
    d=$(($(cpu_ms "$p") - before[$p]))
    total=$((total + d))
    echo "master $p: ${d} ms of main-thread CPU, $(redis-cli -p "$p" dbsize) keys"
done
mean=$((total / ${#ms[@]}))
max=0
for p in "${ms[@]}"; do
    d=$(($(cpu_ms "$p") - before[$p]))
    [ "$d" -gt "$max" ] && max=$d
done
awk -v m="$max" -v a="$mean" 'BEGIN { printf "spread: max/mean CPU over the masters = %.2f\n", m / a }'

fi
[ "${LOAD_ONLY:-scaleout}" = scaleout ] || exit 0
echo "== scaleout: 4 instances, 1 group, $secs s at $rate events/s, one redis-server"
private_redis "$rport" "$tmp/redis"
run_group scaleout 4 "$rport"
# from the first event produced until the group stored the last one
t0=$load_t0 t1=$load_t1 c0=$load_c0 c1=$load_c1
usec=$(call_usec "$rport")
cells=0
for i in 1 2 3 4; do
    c=$(sed -n 's/^.*redis: [0-9]* calls, \([0-9]*\) (window, bucket, value) cells.*/\1/p' "$tmp/scaleout-$i.err")
    cells=$((cells + ${c:-0}))
    sed -n 's/^.*redis: .* \([0-9]*\) cells through the hot path, \([0-9]*\) transactions run again.*/instance '"$i"': \1 cells through the hot path, \2 transactions run again/p' "$tmp/scaleout-$i.err"
done
awk -v c=$((c1 - c0)) -v t0="$t0" -v t1="$t1" -v u="${usec:-0}" -v n="$cells" \
    -v cp=$((load_cp - c0)) -v tp="$load_tp" 'BEGIN {
    printf "Redis main-thread CPU: %.0f ms over %.1f s from the first event produced to the last stored = %.0f%% of one core; while producing (%.1f s): %.0f%%; flush calls and their reads %.1f us (wall) and %.1f us (CPU) per (window, bucket, value) cell (%d cells)\n",
        c, t1 - t0, 100 * c / ((t1 - t0) * 1000), tp - t0, 100 * cp / ((tp - t0) * 1000), n ? u / n : 0, n ? c * 1000 / n : 0, n }'
