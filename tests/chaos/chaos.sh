#!/usr/bin/env bash
# tests/chaos/chaos.sh - a seeded, bounded fault campaign on loopback (issue 12).
#
#   bash tests/chaos/chaos.sh [SECONDS [SEED]]      (defaults: 120 s, seed 1)
#
# kpistream-gen produces paced traffic (with bad events of every reason the
# decoder knows) and its exact truth into a topic consumed by a group of
# INSTANCES (2) kpistream processes with the default 16 key groups, writing to
# the Redis of scripts/services.sh (AOF, appendfsync always).  The group id
# holds glob characters.  Meanwhile, every few seconds, a fault drawn from the
# seeded schedule:
#   kill     kill -9 one instance, start it again
#   pause    SIGSTOP Redis for longer than redis.command_timeout, then SIGCONT
#   redis    restart Redis (SHUTDOWN NOSAVE: only the fsync'd AOF survives)
#   broker   restart the Kafka broker (at most once per run: it takes ~30 s)
#   oom      Redis at maxmemory (noeviction: writes fail with OOM), then freed
#   dlq      the dead-letter topic refuses every message (max.message.bytes),
#            then accepts them again
#   hostile  one round of hostile events (kpi-chaos-tool hostile, also sent
#            once at the start): NUL, newline and glob characters in dimension
#            values and ids, 1 MB values, 31- and 128-level nesting
# Then it waits until the instances caught up, stops them (SIGTERM), and
# checks that the counters in Redis equal the truth (events and revenue summed
# over every bucket of all:all), that every key group stored every offset,
# that the distinct dead letters (by their kpi.partition/kpi.offset headers:
# a replay after kill -9 produces some twice) are exactly the bad events, and
# that no instance is wedged (each SIGTERM ends within engine.shutdown_timeout
# with exit 0).  Last line:
#   chaos: <faults> faults, <events> events, lost <l>, duplicated <d>, dead-lettered <n>/<bad>
# Exit 0 when all of that holds.  Services: the ports of scripts/services.sh
# (KPI_REDIS_PORT, KPI_KAFKA_PORT, ...), which must be up.  KPI_BIN: the
# directory of the programs (default build/); INSTANCES (2); CHAOS_RATE
# (2000 events/s).  Its files (truth, logs) stay in /tmp/kpi-chaos.* for a
# look afterwards.  Not in the campaign: too_late events (whether an event is
# late depends on the watermark of whichever instance reads it, and a
# restarted one has none yet: tests/test_engine.c covers them), a Redis
# Cluster.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
secs="${1:-120}"
seed="${2:-1}"
instances="${INSTANCES:-2}"
bin="${KPI_BIN:-$root/build}"
redis_port="${KPI_REDIS_PORT:-6379}"
kafka="127.0.0.1:${KPI_KAFKA_PORT:-9092}"
svc="${KPI_SERVICES_DIR:-$root/.services}"
work="$(mktemp -d /tmp/kpi-chaos.XXXXXX)"
topic="chaos-$$-$seed"
group="g*?[x]-$topic" # glob characters: nothing may treat it as a pattern
rate="${CHAOS_RATE:-2000}"
events=$((secs * rate))
RANDOM=$seed

say() { printf 'chaos: %s\n' "$*" >&2; }
rcli() { redis-cli -p "$redis_port" "$@"; }

# kafka-configs on the dead-letter topic (through the broker's jars).
topic_config() {
    java -cp "$svc/kafka-libs/*" -Dlog4j2.configurationFile="$svc/log4j2.properties" \
        kafka.admin.ConfigCommand --bootstrap-server "$kafka" --alter --entity-type topics \
        --entity-name "$topic.dlq" "$@" >>"$work/topic-config.log" 2>&1 || true
}

pids=()
start_instance() { # start_instance I
    "$bin/kpistream" -X "kafka.bootstrap.servers=$kafka" -X "kafka.topics=$topic" \
        -X "kafka.group.id=$group" -X "redis.url=redis://127.0.0.1:$redis_port" \
        -X http.port=0 -X alerts.enabled=false -X engine.flush_interval=200ms \
        -X redis.command_timeout=2s -X engine.shutdown_timeout=10s \
        -X engine.lateness=1h >"$work/i$1.out" 2>>"$work/i$1.err" &
    pids[$1]=$!
}

cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    kill -CONT "$(cat "$svc/redis.pid" 2>/dev/null)" 2>/dev/null || true
    [ -n "${gen_pid:-}" ] && kill "$gen_pid" 2>/dev/null || true
}
trap cleanup EXIT

# Rewrite the AOF early: appendfsync always with a flush every 200 ms makes
# the incremental AOF long, and replaying it is what a Redis restart waits for.
aof_small() { rcli CONFIG SET auto-aof-rewrite-min-size 16mb >/dev/null; }
aof_small

"$bin/kpistream-gen" --brokers "$kafka" --topic "$topic" --partitions 6 --events "$events" \
    --rate "$rate" --bad-ratio 0.01 --seed "$seed" --truth "$work/truth.json" \
    >"$work/gen.out" 2>"$work/gen.err" &
gen_pid=$!
for ((i = 0; i < instances; i++)); do start_instance "$i"; done

hostile_msgs=0 hostile_good=0 hostile_revenue=0 hostile_bad=0
hostile() {
    local line
    line="$("$bin/kpi-chaos-tool" hostile "$kafka" "$topic" 2>>"$work/hostile.err")" ||
        { say "producing hostile events failed: $work/hostile.err"; exit 1; }
    read -r _ m _ g _ r _ b _ <<<"$line"
    hostile_msgs=$((hostile_msgs + m)) hostile_good=$((hostile_good + g))
    hostile_revenue=$((hostile_revenue + r)) hostile_bad=$((hostile_bad + b))
}

faults=0
broker_done=0
first=1
while kill -0 "$gen_pid" 2>/dev/null; do
    sleep $((2 + RANDOM % 4)) # the pace of the fault schedule (seeded), not a synchronisation
    kill -0 "$gen_pid" 2>/dev/null || break
    fault=$((RANDOM % 7))
    [ $first = 1 ] && fault=6 # hostile events at least once, once the topic exists
    first=0
    case $fault in
    6)
        hostile
        say "fault: hostile events (round $((hostile_bad / 6)))"
        ;;
    0 | 1)
        i=$((RANDOM % instances))
        kill -9 "${pids[$i]}" 2>/dev/null || true
        wait "${pids[$i]}" 2>/dev/null || true
        start_instance "$i"
        say "fault: kill -9 instance $i, restarted"
        ;;
    2)
        rpid="$(cat "$svc/redis.pid")"
        kill -STOP "$rpid"
        sleep 3 # longer than redis.command_timeout (2 s): the fault itself
        kill -CONT "$rpid"
        say "fault: Redis paused 3 s"
        ;;
    4)
        used="$(rcli INFO memory | awk -F: '/^used_memory:/ {print $2 + 0}')"
        rcli CONFIG SET maxmemory "$used" >/dev/null
        sleep 3 # Redis full (noeviction): writes fail with OOM meanwhile
        rcli CONFIG SET maxmemory 0 >/dev/null
        say "fault: Redis at maxmemory for 3 s"
        ;;
    5)
        topic_config --add-config max.message.bytes=16
        sleep 4 # the dead-letter topic refuses every dead letter meanwhile
        topic_config --delete-config max.message.bytes
        say "fault: dead-letter topic unwritable for 4 s"
        ;;
    3)
        if [ $broker_done = 0 ] && [ $((RANDOM % 2)) = 0 ]; then
            { bash scripts/services.sh stop kafka && bash scripts/services.sh start kafka; } \
                >>"$work/services.log" 2>&1 || { say "restarting the broker failed: $work/services.log"; exit 1; }
            broker_done=1
            say "fault: broker restarted"
        else
            rpid="$(cat "$svc/redis.pid")"
            bash scripts/services.sh stop redis >>"$work/services.log" 2>&1
            while kill -0 "$rpid" 2>/dev/null; do
                sleep 0.1 # until the old server is gone and its port free
            done
            # services.sh waits 30 s; loading a long run's AOF can take longer.
            bash scripts/services.sh start redis >>"$work/services.log" 2>&1 || true
            redis_deadline=$((SECONDS + 600))
            until [ "$(rcli ping 2>/dev/null)" = PONG ] || [ $SECONDS -ge $redis_deadline ]; do
                sleep 0.5 # polling interval while Redis loads its AOF
            done
            [ "$(rcli ping 2>/dev/null)" = PONG ] ||
                { say "restarting Redis failed: $work/services.log"; exit 1; }
            aof_small
            say "fault: Redis restarted"
        fi
        ;;
    esac
    faults=$((faults + 1))
done
wait "$gen_pid" || { say "the generator failed: $(tail -1 "$work/gen.out")"; exit 1; }

produced="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"])' "$work/truth.json")"
messages=$((produced + hostile_msgs))
acct() { python3 tests/chaos/account.py "$redis_port" "$group" "$messages"; }
deadline=$((SECONDS + 300))
until [ "$(acct | awk '{print $3}')" = 1 ] || [ $SECONDS -ge $deadline ]; do
    sleep 0.5 # polling interval while the instances catch up
done
wedged=0
for ((i = 0; i < instances; i++)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    if ! wait "${pids[$i]}"; then
        wedged=$((wedged + 1))
        say "instance $i did not stop cleanly (see $work/i$i.err)"
    fi
done
pids=()

read -r good revenue < <(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); print(t["good"], t["revenue_micros"])' "$work/truth.json")
bad=$((produced - good + hostile_bad))
good=$((good + hostile_good))
revenue=$((revenue + hostile_revenue))
read -r got got_revenue offsets_ok worst < <(acct)
lost=$((good > got ? good - got : 0))
dup=$((got > good ? got - good : 0))
[ "$got_revenue" = "$revenue" ] || { say "revenue $got_revenue != $revenue"; [ "$dup" = 0 ] && [ "$lost" = 0 ] && dup=1; }
[ "$offsets_ok" = 1 ] || say "a key group's offsets add up to $worst, not $messages"
dlq_line="$("$bin/kpi-chaos-tool" dlq "$kafka" "$topic.dlq" 2>>"$work/dlq.err")" ||
    { say "reading the dead letters failed: $work/dlq.err"; exit 1; }
read -r _ dlq_total _ _ dlq _ <<<"$dlq_line"
printf 'chaos: %d faults, %d events, lost %d, duplicated %d, dead-lettered %d/%d\n' \
    "$faults" "$messages" "$lost" "$dup" "$dlq" "$bad"
say "(${dlq_total} dead letters in all: a replay produces some again; files in $work)"
[ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$dlq" = "$bad" ] && [ "$wedged" = 0 ] && [ "$offsets_ok" = 1 ]
