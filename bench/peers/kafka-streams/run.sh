#!/usr/bin/env bash
# bench/peers/kafka-streams/run.sh [--bootstrap B] [--topic T] [--app-id A]
#                                  [--exit-on-idle S] [--threads N] [--redis HOST:PORT]
#                                  [--no-distinct] [--processor]
# bench/peers/kafka-streams/run.sh build       (only build)
# Builds the peer (Maven, Java 17) if it is not built or older than its
# sources, then runs it; --processor selects the Processor-API variant.
# PEER_JAVA_OPTS overrides the JVM options (default -Xmx2g).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jar="$here/target/kpistream-peer-kafka-streams-1.jar"
# shellcheck source=bench/peers/common/build.sh
. "$here/../common/build.sh"
# shellcheck disable=SC2086 # PEER_JAVA_OPTS is a list of options
exec java ${PEER_JAVA_OPTS:--Xmx2g} -cp "$jar:$here/target/lib/*" io.kpistream.peer.PeerApp "$@"
