#!/usr/bin/env bash
# scripts/services.sh - the real services tests and benchmarks talk to, on
# loopback only: Debian's redis-server and a single-node Apache Kafka broker
# in KRaft mode (combined broker + controller), whose jars Maven fetches from
# Maven Central (scripts/kafka/pom.xml) and the machine's Java 17 runs.
#
#   scripts/services.sh up [redis|kafka|alertmanager|redis-cluster]
#                                             start (idempotent), wait until they answer;
#                                             redis-cluster: 3 masters + 3 replicas on loopback
#                                             (ports KPI_REDIS_CLUSTER_PORT .. +5), not in the default set
#   scripts/services.sh down [redis|kafka|alertmanager|redis-cluster]
#                                             stop (idempotent); --wipe also deletes Kafka's data
#   scripts/services.sh stop|start kafka|alertmanager   same as down/up for one service, data kept
#   scripts/services.sh status                one line per service; exit 0 if all run, 3 if not
#
# Environment: KPI_REDIS_PORT (6379), KPI_REDIS_CLUSTER_PORT (7000), KPI_KAFKA_PORT (9092),
# KPI_KAFKA_CONTROLLER_PORT (9093), KPI_SERVICES_DIR (<repo>/.services),
# KPI_KAFKA_HEAP (512m), KPI_ALERTMANAGER_PORT (9095),
# KPI_KAFKA_SASL_PORT (KPI_KAFKA_PORT + 1000).
#
# The broker has a second listener, SASL_SSL, on KPI_KAFKA_SASL_PORT: TLS
# with a test CA and certificate generated at the first start into
# <services dir>/tls (never committed; clients trust tls/ca.pem), and the
# user `kpi` whose password is generated there too (tls/kafka_password), for
# SASL/PLAIN and SASL/SCRAM-SHA-512.  (Debian 12's librdkafka 2.0.2 cannot do
# SCRAM with a Kafka 4.x broker, librdkafka #4895, fixed in 2.6.1: the tests
# use PLAIN, over TLS.)
#
# A third service, alertmanager (Debian's prometheus-alertmanager, on
# loopback, clustering off), is started with the others and can be named
# alone: scripts/services.sh up|down|stop|start alertmanager.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${KPI_SERVICES_DIR:-$root/.services}"
redis_port="${KPI_REDIS_PORT:-6379}"
cluster_port="${KPI_REDIS_CLUSTER_PORT:-7000}"
kafka_port="${KPI_KAFKA_PORT:-9092}"
ctl_port="${KPI_KAFKA_CONTROLLER_PORT:-9093}"
libs="$dir/kafka-libs"
kdata="$dir/kafka-data"
mkdir -p "$dir"

say() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            say "$what did not come up within ${secs}s"
            return 1
        fi
        sleep 0.2 # polling interval while waiting for the condition above
    done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---- redis ----
redis_ping() { [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; }

redis_up() {
    if redis_ping; then
        say "redis already answers on 127.0.0.1:$redis_port"
        return 0
    fi
    mkdir -p "$dir/redis"
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir/redis" \
        --save '' --appendonly yes --appendfsync always \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    if ! wait_for 30 "redis on port $redis_port" redis_ping; then
        tail -n 30 "$dir/redis.log" >&2 || true
        return 1
    fi
    say "redis up on 127.0.0.1:$redis_port"
}

redis_down() {
    if redis_ping; then
        redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    fi
    if pid_alive "$dir/redis.pid"; then
        kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    rm -f "$dir/redis.pid"
    say "redis stopped"
}

# ---- redis cluster: 3 masters, each with a replica, on loopback ----
cluster_ports() { for i in 0 1 2 3 4 5; do echo $((cluster_port + i)); done; }

cluster_ok() {
    redis-cli -p "$cluster_port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

redis_cluster_up() {
    if cluster_ok; then
        say "redis cluster already up on 127.0.0.1:$cluster_port-$((cluster_port + 5))"
        return 0
    fi
    local p nodes=()
    for p in $(cluster_ports); do
        mkdir -p "$dir/cluster/$p"
        if ! [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ]; then
            # a node killed earlier leaves its files (appendonlydir is a directory)
            rm -rf "$dir/cluster/$p/nodes.conf" "$dir/cluster/$p"/appendonly*
            redis-server --bind 127.0.0.1 --port "$p" --dir "$dir/cluster/$p" \
                --cluster-enabled yes --cluster-config-file nodes.conf \
                --cluster-node-timeout 2000 --save '' --appendonly yes --appendfsync always \
                --daemonize yes --pidfile "$dir/cluster/$p/redis.pid" \
                --logfile "$dir/cluster/$p/redis.log"
        fi
        nodes+=("127.0.0.1:$p")
    done
    for p in $(cluster_ports); do
        wait_for 30 "cluster node $p" bash -c "[ \"\$(redis-cli -p $p ping 2>/dev/null)\" = PONG ]"
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/cluster/create.log" 2>&1 || {
        tail -20 "$dir/cluster/create.log" >&2
        return 1
    }
    wait_for 60 "redis cluster state ok" cluster_ok
    # Every node must agree before clients use it: wait for each to report ok.
    for p in $(cluster_ports); do
        wait_for 60 "cluster node $p state ok" bash -c "redis-cli -p $p cluster info | grep -q '^cluster_state:ok'"
    done
    say "redis cluster up on 127.0.0.1:$cluster_port-$((cluster_port + 5)) (3 masters, 3 replicas)"
}

redis_cluster_down() {
    local p
    for p in $(cluster_ports); do
        redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
        if pid_alive "$dir/cluster/$p/redis.pid"; then kill "$(cat "$dir/cluster/$p/redis.pid")" 2>/dev/null || true; fi
    done
    rm -rf "$dir/cluster"
    say "redis cluster stopped"
}

# ---- kafka ----
fetch_kafka() {
    if [ -f "$libs/.complete" ]; then
        return 0
    fi
    say "fetching the Kafka broker's jars from Maven Central (first run only)"
    rm -rf "$libs"
    mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$libs" -DincludeScope=runtime >"$dir/mvn.log" 2>&1 || {
        tail -n 30 "$dir/mvn.log" >&2
        say "mvn could not fetch the broker (see $dir/mvn.log)"
        return 1
    }
    touch "$libs/.complete"
}

kafka_config() {
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctl_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$ctl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$kdata
num.partitions=8
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
log.segment.bytes=268435456
PROPS
    cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
PROPS
}

java_opts() {
    jopts=(-Xms256m -Xmx"${KPI_KAFKA_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$libs/*")
}

kafka_ready() {
    port_open "$kafka_port" && grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null
}

kafka_up() {
    if pid_alive "$dir/kafka.pid" && port_open "$kafka_port"; then
        say "kafka already answers on 127.0.0.1:$kafka_port"
        return 0
    fi
    if port_open "$kafka_port"; then
        say "port $kafka_port is taken by something else; set KPI_KAFKA_PORT"
        return 1
    fi
    command -v java >/dev/null || { say "java not found (scripts/install-deps.sh)"; return 1; }
    fetch_kafka
    kafka_config
    kafka_sasl_config
    if [ ! -f "$kdata/meta.properties" ]; then
        mkdir -p "$kdata"
        java_opts
        java "${jopts[@]}" kafka.tools.StorageTool format -t "kpistream-test-cluster01" \
            -c "$dir/server.properties" >"$dir/format.log" 2>&1 || {
            cat "$dir/format.log" >&2
            say "formatting Kafka's storage failed"
            return 1
        }
    fi
    : >"$dir/kafka.log"
    java_opts
    nohup java "${jopts[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 </dev/null &
    echo $! >"$dir/kafka.pid"
    disown || true
    if ! wait_for 120 "kafka on port $kafka_port" kafka_ready; then
        tail -n 30 "$dir/kafka.log" "$dir/kafka.out" >&2 || true
        return 1
    fi
    kafka_scram_user
    say "kafka up on 127.0.0.1:$kafka_port (KRaft, data in $kdata), SASL_SSL on 127.0.0.1:$sasl_port"
}

kafka_down() {
    if pid_alive "$dir/kafka.pid"; then
        local pid
        pid="$(cat "$dir/kafka.pid")"
        kill "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            sleep 0.2 # waiting for the broker's orderly shutdown
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/kafka.pid"
    if [ "${wipe:-0}" = 1 ]; then
        rm -rf "$kdata"
        say "kafka stopped, data wiped"
    else
        say "kafka stopped"
    fi
}

# ---- alertmanager ----
am_port="${KPI_ALERTMANAGER_PORT:-9095}"
am_ready() { curl -sf "http://127.0.0.1:$am_port/-/ready" >/dev/null 2>&1; }

alertmanager_up() {
    if pid_alive "$dir/alertmanager.pid" && am_ready; then
        say "alertmanager already answers on 127.0.0.1:$am_port"
        return 0
    fi
    if port_open "$am_port"; then
        say "port $am_port is taken by something else; set KPI_ALERTMANAGER_PORT"
        return 1
    fi
    command -v prometheus-alertmanager >/dev/null ||
        { say "prometheus-alertmanager not found (scripts/install-deps.sh)"; return 1; }
    mkdir -p "$dir/alertmanager-data"
    # One catch-all receiver with no integration: alerts are kept and listed
    # by the API (GET /api/v2/alerts), which is what the tests look at.
    cat >"$dir/alertmanager.yml" <<YML
route:
  receiver: keep
  group_by: [alertname, group]
  group_wait: 1s
  group_interval: 5s
receivers:
  - name: keep
YML
    nohup prometheus-alertmanager --config.file="$dir/alertmanager.yml" \
        --storage.path="$dir/alertmanager-data" \
        --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= \
        --log.level=warn >"$dir/alertmanager.log" 2>&1 </dev/null &
    echo $! >"$dir/alertmanager.pid"
    disown || true
    if ! wait_for 30 "alertmanager on port $am_port" am_ready; then
        tail -n 30 "$dir/alertmanager.log" >&2 || true
        return 1
    fi
    say "alertmanager up on 127.0.0.1:$am_port"
}

alertmanager_down() {
    if pid_alive "$dir/alertmanager.pid"; then
        local pid
        pid="$(cat "$dir/alertmanager.pid")"
        kill "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            sleep 0.1 # waiting for Alertmanager to exit
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/alertmanager.pid"
    say "alertmanager stopped"
}

# ---- kafka: the SASL_SSL listener ----
sasl_port="${KPI_KAFKA_SASL_PORT:-$((kafka_port + 1000))}"
tls="$dir/tls"

# A test CA, the broker's key and certificate (for 127.0.0.1 and localhost)
# in a PKCS12 keystore, and the SCRAM user's password: generated once, here
# only (the services directory is git-ignored).
kafka_tls() {
    if [ -f "$tls/broker.p12" ] && [ -f "$tls/kafka_password" ]; then
        return 0
    fi
    command -v openssl >/dev/null || { say "openssl not found"; return 1; }
    rm -rf "$tls"
    mkdir -p "$tls"
    chmod 700 "$tls"
    (
        cd "$tls"
        openssl rand -hex 16 >keystore_password
        openssl rand -hex 16 >kafka_password
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kpistream test CA" \
            -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile broker.ext -out broker.pem
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -out broker.p12 -passout file:keystore_password
        chmod 600 ./*
    ) >"$dir/tls.log" 2>&1 || { cat "$dir/tls.log" >&2; say "generating the test TLS files failed"; return 1; }
}

# Later keys win in a properties file: these extend kafka_config's listeners.
kafka_sasl_config() {
    kafka_tls
    local kp pw
    kp="$(cat "$tls/keystore_password")"
    pw="$(cat "$tls/kafka_password")"
    cat >>"$dir/server.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$ctl_port,SASL_SSL://127.0.0.1:$sasl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port,SASL_SSL://127.0.0.1:$sasl_port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kpi="$pw";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$kp
listener.name.sasl_ssl.ssl.key.password=$kp
PROPS
}

# The SCRAM user `kpi` (an upsert through the PLAINTEXT listener: works on
# storage formatted before the listener existed, too).
kafka_scram_user() {
    java_opts
    java "${jopts[@]}" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$kafka_port" \
        --alter --entity-type users --entity-name kpi \
        --add-config "SCRAM-SHA-512=[iterations=4096,password=$(cat "$tls/kafka_password")]" \
        >"$dir/scram.log" 2>&1 || { cat "$dir/scram.log" >&2; say "creating the SCRAM user failed"; return 1; }
}

status() {
    local rc=0
    if redis_ping; then echo "redis: running on 127.0.0.1:$redis_port"; else echo "redis: stopped"; rc=3; fi
    if pid_alive "$dir/kafka.pid" && port_open "$kafka_port"; then
        echo "kafka: running on 127.0.0.1:$kafka_port"
    else
        echo "kafka: stopped"
        rc=3
    fi
    if pid_alive "$dir/alertmanager.pid" && am_ready; then
        echo "alertmanager: running on 127.0.0.1:$am_port"
    else
        echo "alertmanager: stopped"
        rc=3
    fi
    return $rc
}

action="${1:-}"
shift || true
wipe=0
targets=()
for a in "$@"; do
    case "$a" in
    --wipe) wipe=1 ;;
    redis | kafka | alertmanager) targets+=("$a") ;;
    redis-cluster) targets+=(redis_cluster) ;;
    *) say "unknown argument '$a'"; exit 2 ;;
    esac
done
[ "${KPI_SERVICES_WIPE:-0}" = 1 ] && wipe=1
[ ${#targets[@]} -eq 0 ] && targets=(redis kafka alertmanager)

case "$action" in
up | start) for t in "${targets[@]}"; do "${t}_up"; done ;;
down | stop)
    for ((i = ${#targets[@]} - 1; i >= 0; i--)); do "${targets[$i]}_down"; done ;;
status) status ;;
*)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
