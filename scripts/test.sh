#!/usr/bin/env bash
# scripts/test.sh - the project's test command (README quickstart, CI).
#
# 1. installs missing Debian packages (scripts/install-deps.sh),
# 2. starts redis-server, a 3-master Redis Cluster and a single-node Kafka
#    broker on loopback (scripts/services.sh up, up redis-cluster) and stops
#    them again at the end, pass or fail,
# 3. builds with AddressSanitizer + UndefinedBehaviorSanitizer and runs every
#    test with ctest (unit tests, and the "services" tests against the real
#    Redis and Kafka),
# 4. builds with ThreadSanitizer and runs the "concurrency" tests,
# 5. builds the decoder's libFuzzer target with clang and fuzzes it for
#    KPI_FUZZ_SECONDS (default 60) seconds.
#
# Environment: KPI_TEST_SKIP_SERVICES=1 runs only the tests that need no
# services; KPI_FUZZ_SECONDS=0 skips fuzzing; KPI_CHAOS_SECONDS (90; 0 skips)
# and KPI_CHAOS_SEED (2) size the fault campaign (tests/chaos/chaos.sh);
# KPI_REDIS_PORT / KPI_KAFKA_PORT / KPI_REDIS_CLUSTER_PORT move the services
# (scripts/services.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
jobs="${KPI_JOBS:-2}"

say() { printf '\n== %s\n' "$*" >&2; }

bash scripts/install-deps.sh

if [ "${KPI_TEST_SKIP_SERVICES:-0}" != 1 ]; then
    say "starting services"
    started_services=1
    trap 'bash scripts/services.sh down redis kafka alertmanager redis-cluster >/dev/null 2>&1 || true' EXIT
    bash scripts/services.sh up
    bash scripts/services.sh up redis-cluster
    label_args=()
else
    label_args=(-LE services)
fi

say "Prometheus configuration and rules (promtool)"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.yml

say "layers: every include goes down the layers (scripts/check-layers.sh)"
bash scripts/check-layers.sh

say "ASan+UBSan build and all tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKPI_SANITIZE=address >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure "${label_args[@]}"

# The fault campaign's short run (issue 12): kill -9, Redis paused and
# restarted, the broker restarted, Redis full, the dead-letter topic closed,
# hostile events, under paced traffic; exact at the end (about 3 minutes).
chaos_seconds="${KPI_CHAOS_SECONDS:-90}"
if [ "${KPI_TEST_SKIP_SERVICES:-0}" != 1 ] && [ "$chaos_seconds" != 0 ]; then
    say "fault campaign, ${chaos_seconds}s (tests/chaos/chaos.sh)"
    KPI_BIN="$root/build-asan" ASAN_OPTIONS=detect_leaks=0 \
        bash tests/chaos/chaos.sh "$chaos_seconds" "${KPI_CHAOS_SEED:-2}"
fi

say "ThreadSanitizer build and the concurrency tests"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DKPI_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$jobs"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build-tsan --output-on-failure -L concurrency

fuzz_seconds="${KPI_FUZZ_SECONDS:-60}"
if [ "$fuzz_seconds" != 0 ]; then
    say "libFuzzer: the decoder for ${fuzz_seconds}s"
    CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DKPI_FUZZ=ON >/dev/null
    cmake --build build-fuzz -j"$jobs" --target fuzz_decode
    # The seeds are the decoder test's examples, written by the ASan build's
    # test_decode (tests/test_decode.c, decode.seed_corpus_*): nothing to commit.
    rm -rf build-fuzz/corpus && mkdir -p build-fuzz/corpus
    KPI_WRITE_CORPUS="$root/build-fuzz/corpus" ./build-asan/test_decode \
        --filter 'decode/seed_corpus*' >/dev/null
    ./build-fuzz/fuzz_decode -max_total_time="$fuzz_seconds" -print_final_stats=1 \
        build-fuzz/corpus 2>build-fuzz/fuzz.log || { tail -40 build-fuzz/fuzz.log; exit 1; }
    grep -E '^(stat::number_of_executed_units|Done)' build-fuzz/fuzz.log || true
fi
say "all tests passed"
