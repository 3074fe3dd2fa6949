#!/usr/bin/env bash
# bench/ab.sh - two builds of kpistream on the same bursts, alternating, in
# one run: this tree's Release build (build-bench/) against REV's (a git
# revision, built in a scratch worktree).  For a change to the engine or the
# sink, the same-run comparison the figures in bench/RESULTS.md need.
#
#   bash bench/ab.sh REV [ROUNDS]          (default 3 rounds)
#   AB_ONLY="10000:1000000:3000000 10:1000000:3000000" bash bench/ab.sh REV
#                     (the bursts, SITES:SUBSCRIBERS:EVENTS each; these are
#                     the default: 10 000 values of the set `site`, and 10)
#   AB_X="redis.key_groups=128" bash bench/ab.sh REV   (-X settings for both)
#
# Each burst is produced once (kpistream-gen --sites N, zipf 1.1, seed 11,
# 8 partitions, the dimensions and sets of bench/scale.sh) and consumed by
# `kpistream --exit-on-eof` with a fresh group, into one private redis-server
# emptied before every run (FLUSHALL, FUNCTION FLUSH, SCRIPT FLUSH, CONFIG
# RESETSTAT, SLOWLOG RESET).  A round runs each burst with REV, then with
# this tree.  Per run: events/s, kpistream's CPU (user + sys), Redis's
# main-thread CPU, the flushes (p50/max ms) and the commands above 50 ms
# (SLOWLOG).  Figures, not verdicts.
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
bench_args rev= rounds=3 -- "$@"
if [ -z "$rev" ]; then
    echo "usage: bash bench/ab.sh REV [ROUNDS]" >&2
    exit 2
fi
old_sha=$(git rev-parse --verify "$rev^{commit}") || exit 2
rport="${KPI_AB_REDIS_PORT:-6393}"
read -r -a xs <<<"${AB_X:-}"
extra=()
for x in "${xs[@]}"; do extra+=(-X "$x"); done
read -r -a bursts <<<"${AB_ONLY:-10000:1000000:3000000 10:1000000:3000000}"
bench_setup
bench_scratch

git worktree add --detach "$tmp/src" "$old_sha" >/dev/null 2>&1
cleanup_ab() {
    git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true
    bench_cleanup
}
trap cleanup_ab EXIT
cmake -S "$tmp/src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/build" -j2 --target kpistream >/dev/null
private_redis "$rport" "$tmp/redis"
redis-cli -p "$rport" config set slowlog-log-slower-than 50000 >/dev/null

topics=()
for spec in "${bursts[@]}"; do
    IFS=: read -r sites subs n <<<"$spec"
    topic="ab-$sites-$subs-$n-$(date +%s)"
    "$b/kpistream-gen" -b "$brokers" -t "$topic" --events "$n" --partitions 8 --subscribers "$subs" \
        --sites "$sites" --zipf 1.1 --seed 11 >"$tmp/gen.out" 2>"$tmp/gen.err"
    topics+=("$topic:$sites:$n")
done

cpu_of_redis() {
    redis-cli -p "$rport" info cpu |
        awk -F: '/^used_cpu_(sys|user)_main_thread:/ { s += $2 } END { printf "%.2f", s }'
}
run() { # run LABEL BINARY TOPIC SITES EVENTS
    local label=$1 bin=$2 topic=$3 sites=$4 n=$5 c0 c1
    for c in FLUSHALL "FUNCTION FLUSH" "SCRIPT FLUSH" "CONFIG RESETSTAT" "SLOWLOG RESET"; do
        read -r -a words <<<"$c"
        redis-cli -p "$rport" "${words[@]}" >/dev/null
    done
    c0=$(cpu_of_redis)
    "$b/kpistream-bench" measure -- "$bin" --exit-on-eof -X "kafka.bootstrap.servers=$brokers" \
        -X "kafka.topics=$topic" -X "kafka.group.id=$topic-$label-$RANDOM$RANDOM" \
        -X "redis.url=redis://127.0.0.1:$rport" -X http.port=0 -X alerts.enabled=false \
        -X dimensions.fields=region,plan,segment,site \
        -X dimensions.sets=region,region+plan,segment,site "${extra[@]}" >/dev/null 2>"$tmp/kpi.err" ||
        echo "ab.sh: $label failed on $topic: $(tail -n 3 "$tmp/kpi.err")" >&2
    c1=$(cpu_of_redis)
    local wall cpu flushes slow
    wall=$(sed -n 's/^measure: wall=\([0-9.]*\).*/\1/p' "$tmp/kpi.err")
    cpu=$(sed -n 's/^measure: .*cpu=\([0-9.]*\).*/\1/p' "$tmp/kpi.err")
    flushes=$(sed -n 's/^.*flush latency: \([0-9]*\) flushes, p50 \([0-9.]*\) ms,.* max \([0-9.]*\) ms.*/\1 (\2\/\3)/p' "$tmp/kpi.err")
    slow=$(redis-cli -p "$rport" slowlog len)
    awk -v l="$label" -v s="$sites" -v n="$n" -v w="$wall" -v c="$cpu" -v r0="$c0" -v r1="$c1" \
        -v f="$flushes" -v sl="$slow" 'BEGIN {
        printf "%-6s %7s %12.0f %9.1f %9.1f  %-22s %5s\n", l, s, w ? n / w : 0, c, r1 - r0, f, sl }'
}

echo "ab.sh: REV = $rev ($old_sha), this tree = $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' + changes')"
printf '%-6s %7s %12s %9s %9s  %-22s %5s\n' build sites "events/s" "CPU s" "Redis s" \
    "flushes (p50/max ms)" slow
for _ in $(seq 1 "$rounds"); do
    for t in "${topics[@]}"; do
        IFS=: read -r topic sites n <<<"$t"
        run rev "$tmp/build/kpistream" "$topic" "$sites" "$n"
        run tree "$b/kpistream" "$topic" "$sites" "$n"
    done
done
