# bench/common.sh - sourced by the benchmark scripts (run from the repository
# root): the real services of scripts/services.sh and a Release build in
# build-bench/, whose programs the scripts run.
b=build-bench
# The broker of scripts/services.sh (KPI_KAFKA_PORT moves it, as for the tests).
brokers="127.0.0.1:${KPI_KAFKA_PORT:-9092}"

bench_setup() {
    bash scripts/install-deps.sh
    bash scripts/services.sh up >&2
    cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$b" -j2 >/dev/null
}
