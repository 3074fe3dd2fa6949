#!/bin/sh
# scripts/redis-acl.sh - the Redis ACL file kpistream runs with, from a
# password file (docker-compose.yml and the tests use it; run it wherever
# Redis is set up):
#
#   sh scripts/redis-acl.sh PASSWORD_FILE [USER [PREFIX]] > users.acl
#   redis-server --aclfile users.acl ...
#
# - The default user is off: every client must authenticate.
# - USER (default kpistream) authenticates with the file's password (one
#   line; a trailing newline is dropped), stored as its SHA-256 only.
# - It may touch only keys and Pub/Sub channels under PREFIX (default kpi,
#   kpistream's redis.prefix) and under kpi-demo (the demo's), and run only
#   reads, writes, scripts, transactions (MULTI/EXEC/WATCH: the sink's hot
#   path) and Pub/Sub; nothing @dangerous (FLUSHALL, KEYS,
#   CONFIG, DEBUG, SHUTDOWN, MIGRATE...) and no ACL or admin command.  Keys
#   touched from the flush script are checked against the same rules.
# POSIX sh and coreutils only: it runs in the redis:7 image.
set -eu
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: sh scripts/redis-acl.sh PASSWORD_FILE [USER [PREFIX]] > users.acl" >&2
    exit 2
fi
file="$1"
user="${2:-kpistream}"
prefix="${3:-kpi}"
[ -r "$file" ] || { echo "redis-acl: cannot read $file" >&2; exit 2; }
pass="$(head -n 1 "$file" | tr -d '\r')"
[ -n "$pass" ] || { echo "redis-acl: $file is empty" >&2; exit 2; }
hash="$(printf '%s' "$pass" | sha256sum | cut -d' ' -f1)"
echo "user default off resetpass nocommands"
echo "user $user on #$hash resetkeys ~$prefix:* ~kpi-demo:* resetchannels &$prefix:* &kpi-demo:* -@all +@read +@write +@scripting +@transaction +@pubsub +@connection -@dangerous -@admin"
