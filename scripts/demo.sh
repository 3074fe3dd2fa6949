#!/usr/bin/env bash
# scripts/demo.sh - the README's first command: install what is missing, build,
# and run the zero-setup demo (embedded mock Kafka cluster, built-in traffic
# generator with a churn spike, the full engine, Redis if one answers, and a
# live terminal view).  Extra arguments go to `kpistream --demo`, e.g.
#   bash scripts/demo.sh --duration 60
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"${KPI_JOBS:-2}" --target kpistream >/dev/null
exec ./build/kpistream --demo "$@"
