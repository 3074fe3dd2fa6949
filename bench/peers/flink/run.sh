#!/usr/bin/env bash
# bench/peers/flink/run.sh [--bootstrap B] [--topic T] [--group G] [--redis HOST:PORT] [--job ID]
#                          [--parallelism N] [--state hashmap|rocksdb] [--checkpoint-ms MS]
#                          [--split-distinct] [--explain]
# bench/peers/flink/run.sh check --redis HOST:PORT --kpi-group G --job ID [--kpi-prefix kpi]
# bench/peers/flink/run.sh build
# Builds the peer (Maven, Java 17, one shaded jar) if it is not built yet,
# then runs the job on a local MiniCluster in this JVM, or the check against
# kpistream's Redis data.  PEER_JAVA_OPTS overrides the JVM options (default
# -Xmx2g).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jar="$here/target/kpistream-peer-flink-1.jar"
# shellcheck source=bench/peers/common/build.sh
. "$here/../common/build.sh"
# Flink 2 on Java 17 needs these opens (what Flink's own launch scripts pass).
opens="--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
 --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
 --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
 --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED
 --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.math=ALL-UNNAMED
 --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.sql/java.sql=ALL-UNNAMED"
# shellcheck disable=SC2086 # PEER_JAVA_OPTS and opens are lists of options
exec java ${PEER_JAVA_OPTS:--Xmx2g} $opens -jar "$jar" "$@"
