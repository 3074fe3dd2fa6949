# scripts/lib.sh - sourced first by the scripts that run against the services
# of scripts/services.sh (scripts/package-check.sh, bench/common.sh): strict
# mode, the repository root as working directory (in $root), and where the
# services listen, moved by the same variables as services.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
redis_port="${KPI_REDIS_PORT:-6379}"
kafka_port="${KPI_KAFKA_PORT:-9092}"
brokers="127.0.0.1:$kafka_port"
