#!/usr/bin/env bash
# tests/support/redis-tls.sh - a private TLS-only redis-server and the stunnel
# sidecar kpistream talks to it through (README, "Redis over TLS").
#
#   redis-tls.sh up DIR     generate a test CA and a server certificate for
#                           localhost/127.0.0.1 (openssl, never committed),
#                           start redis-server with only --tls-port, and two
#                           stunnel clients: one that trusts the test CA, one
#                           that trusts another CA (it must refuse).  Prints
#                           "<tls port> <stunnel port> <untrusting stunnel port>".
#   redis-tls.sh down DIR   stop them (by their pid files) and remove DIR.
#
# Ports are free loopback ports picked at start.  Waits are polls with a
# deadline.
set -euo pipefail
cmd="$1"
dir="$2"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1 # polling interval
    done
}

case "$cmd" in
up)
    mkdir -p "$dir"
    cd "$dir"
    for ca in ca other; do
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kpistream test $ca" \
            -keyout "$ca.key" -out "$ca.pem" >/dev/null 2>&1
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
        -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile san.ext -out server.pem >/dev/null 2>&1
    tls_port="$(free_port)"
    redis-server --port 0 --bind 127.0.0.1 --tls-port "$tls_port" --tls-cert-file server.pem \
        --tls-key-file server.key --tls-ca-cert-file ca.pem --tls-auth-clients no --save '' \
        --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log"
    wait_for 20 redis-cli --tls --cacert ca.pem -h 127.0.0.1 -p "$tls_port" ping >/dev/null 2>&1
    ports=()
    for which in good bad; do
        port="$(free_port)"
        ca=ca.pem
        [ $which = bad ] && ca=other.pem
        cat >"stunnel-$which.conf" <<CONF
pid = $dir/stunnel-$which.pid
foreground = no
output = $dir/stunnel-$which.log
[redis]
client = yes
accept = 127.0.0.1:$port
connect = 127.0.0.1:$tls_port
CAfile = $dir/$ca
verifyChain = yes
checkHost = localhost
CONF
        stunnel "stunnel-$which.conf"
        wait_for 20 test -s "stunnel-$which.pid"
        ports+=("$port")
    done
    wait_for 20 bash -c "(exec 3<>/dev/tcp/127.0.0.1/${ports[0]}) 2>/dev/null"
    echo "$tls_port ${ports[0]} ${ports[1]}"
    ;;
down)
    for p in "$dir"/stunnel-good.pid "$dir"/stunnel-bad.pid "$dir"/redis.pid; do
        [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
*)
    echo "usage: redis-tls.sh up|down DIR" >&2
    exit 2
    ;;
esac
