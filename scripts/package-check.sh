#!/usr/bin/env bash
# scripts/package-check.sh - build the Debian package and check that it
# installs, runs and goes away like a Debian daemon's (CI runs it from .ci/run).
#
#  1. builds the .deb in Release (cpack -G DEB) and checks its control data
#     (computed dependencies, the conffile),
#  2. installs it with `apt-get install -y ./kpistream_*.deb`, then checks
#     `kpistream --version`, `man -w kpistream` (and that the page renders
#     without warnings and lists every configuration key),
#     `systemd-analyze verify` on the installed unit and
#     `systemd-analyze security kpistream@test.service` (OK or better),
#  3. runs the unit's ExecStart line as an unprivileged user (as DynamicUser=
#     would) inside the unit's own seccomp filter (system calls, address
#     families, W^X: deploy/systemd/sandbox-exec.py) against the real Redis and
#     Kafka (scripts/services.sh): it consumes what kpistream-gen produced and
#     writes it to Redis; SIGTERM (what `systemctl stop` sends) ends it with
#     exit 0 and the summary line; the ExecReload line accepts the config, and
#     rejects a bad key with exit 2,
#  4. reinstalls over an edited conffile (kept), `apt-get remove` (binaries
#     gone, conffile kept), then purges.
#
# systemd is not PID 1 on the CI machine, so the unit cannot be started as a
# service there: step 3 runs its command line directly (namespaces, the
# read-only file system and LoadCredential= are not exercised), and step 2
# scores the unit with `systemd-analyze security --offline=true` (systemd >=
# 250), which reads the same unit files.  Where systemd runs, the online form
# is used.  The script installs and purges the package: do not run it where
# kpistream is installed for real.
#
# Environment: KPI_REDIS_PORT, KPI_KAFKA_PORT, KPI_KAFKA_CONTROLLER_PORT (the
# services, see scripts/services.sh), KPI_PKGCHECK_HTTP_PORT (kpistream's
# /metrics during step 3; default: a free port), KPI_DEB_BUILD (build-deb).
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
build="${KPI_DEB_BUILD:-build-deb}"
t0=$SECONDS

say() { printf '\n== package-check: %s\n' "$*" >&2; }
fail() {
    printf 'package-check: FAILED: %s\n' "$*" >&2
    exit 1
}
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
# apt may be busy with another installation: wait for its lock.
apt_get() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }

bash scripts/install-deps.sh

say "build the .deb (Release, prefix /usr)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$build" -j"${KPI_JOBS:-2}" --target kpistream kpistream-gen man
rm -f "$build"/kpistream_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
debs=("$build"/kpistream_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "cpack made no single kpistream_*.deb"
deb="${debs[0]}"
echo "package: $deb"
depends="$(dpkg-deb -f "$deb" Depends)"
echo "Depends: $depends"
for lib in librdkafka1 libhiredis libc6; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (CPACK_DEBIAN_PACKAGE_SHLIBDEPS)"
done
ctl="$(mktemp -d)"
work="$(mktemp -d)"
dpkg-deb -e "$deb" "$ctl"
grep -qx '/etc/kpistream/kpistream.ini' "$ctl/conffiles" || fail "kpistream.ini is not a conffile"
version="$(dpkg-deb -f "$deb" Version)"

instance="pkgcheck$$"
conf="/etc/kpistream/$instance.ini"
kpi_pid="" services_started=0
cleanup() {
    [ -n "$kpi_pid" ] && kill "$kpi_pid" 2>/dev/null || true
    $sudo rm -f "$conf"
    if dpkg-query -W -f='${Status}' kpistream 2>/dev/null | grep -q installed; then
        apt_get purge -y kpistream >/dev/null 2>&1 || true
    fi
    [ "$services_started" = 1 ] && bash scripts/services.sh down >/dev/null 2>&1 || true
    rm -rf "$ctl" "$work"
}
trap cleanup EXIT

say "apt-get install -y ./$(basename "$deb")"
(cd "$build" && apt_get install -y "./$(basename "$deb")" >/dev/null)

say "kpistream --version"
got="$(kpistream --version)"
echo "$got"
[ "$got" = "kpistream ${version%-*}" ] || fail "--version says '$got', the package is $version"
kpistream-gen --version

say "man -w kpistream"
for page in kpistream kpistream-gen; do
    path="$(man -w "$page")" || fail "man -w $page finds no page"
    echo "$path"
    warnings="$(MANWIDTH=80 man --warnings -E UTF-8 "$page" 2>&1 >/dev/null)"
    [ -z "$warnings" ] || fail "man $page: groff warns: $warnings"
done
# The page is generated from the key table: every key, every option is in it.
LC_ALL=C MANWIDTH=250 man kpistream 2>/dev/null >"$work/man.txt"
n=0
while read -r key; do
    grep -qF -- "$key" "$work/man.txt" || fail "man kpistream lacks the key $key"
    n=$((n + 1))
done < <(kpistream --help-config | sed -n 's/^| `\([a-z_]*\.[^`]*\)`.*/\1/p')
while read -r opt; do
    grep -qF -- "$opt" "$work/man.txt" || fail "man kpistream lacks the option $opt"
done < <(kpistream --help | grep -o -- '--[a-z-]*' | sort -u)
[ "$n" -gt 30 ] || fail "only $n keys read from --help-config"
echo "man kpistream: all $n keys and every option of --help"

unit="$(dpkg -L kpistream | grep '/kpistream@\.service$')"
say "systemd-analyze verify $unit"
out="$(systemd-analyze verify "$unit" 2>&1)" || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
echo "verify: ok (no warning)"

say "systemd-analyze security kpistream@test.service"
if [ -d /run/systemd/system ]; then
    sec="$(systemd-analyze security --no-pager kpistream@test.service 2>&1)" || true
else
    echo "(systemd is not PID 1 here: scoring the installed unit files with --offline=true)"
    sec="$(systemd-analyze security --offline=true --no-pager kpistream@test.service 2>&1)" || true
fi
overall="$(grep -a 'Overall exposure level for kpistream@test.service' <<<"$sec")" ||
    fail "no overall exposure in: $sec"
echo "$overall"
level="$(sed -E 's/.*: [0-9.]+ ([A-Z]+).*/\1/' <<<"$overall")"
case "$level" in
PERFECT | SAFE | OK) ;;
*) fail "exposure level $level, want OK or better" ;;
esac

say "the unit's ExecStart, run directly against Redis and Kafka"
if ! bash scripts/services.sh status >/dev/null; then
    services_started=1
    bash scripts/services.sh up
fi
http_port="${KPI_PKGCHECK_HTTP_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
# An operator's instance: the packaged example plus local settings.
{
    cat /etc/kpistream/kpistream.ini
    printf '\n[kafka]\nbootstrap.servers = localhost:%s\ntopics = %s\ngroup.id = %s\n' \
        "$kafka_port" "$instance" "$instance"
    printf '[redis]\nurl = redis://localhost:%s\n[http]\nport = %s\n' "$redis_port" "$http_port"
} | $sudo tee "$conf" >/dev/null
$sudo chmod 0644 "$conf"
execstart="$(sed -n 's/^ExecStart=//p' "$unit")"
execreload="$(sed -n 's/^ExecReload=//p' "$unit")"
[ -n "$execstart" ] && [ -n "$execreload" ] || fail "no ExecStart=/ExecReload= in $unit"
if grep -q '%[^i]' <<<"$execstart $execreload"; then
    fail "the unit's command lines use specifiers other than %i: this check only expands %i"
fi
execstart="${execstart//%i/$instance}"
execreload="${execreload//%i/$instance}"
echo "ExecStart: $execstart"

events=20000
kpistream-gen --brokers "$brokers" --topic "$instance" --partitions 2 \
    --events "$events" >"$work/gen.out"
tail -1 "$work/gen.out"
grep -q "^produced: $events events (0 bad)" "$work/gen.out" || fail "kpistream-gen: $(tail -1 "$work/gen.out")"

# As the service would run: no privilege, no home (DynamicUser=), and the
# unit's seccomp filter.
sandbox() {
    exec setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs -- \
        /usr/bin/python3 "$root/deploy/systemd/sandbox-exec.py" "$unit" -- "$@"
}
# shellcheck disable=SC2086 # the unit's command line, split as systemd does (no quoting in it)
sandbox $execstart >"$work/kpi.out" 2>"$work/kpi.err" &
kpi_pid=$!
flushed() { curl -fsS "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
    sed -n 's/^kpistream_events_flushed_total \([0-9]*\).*/\1/p'; }
deadline=$((SECONDS + 60))
until [ "$(flushed)" = "$events" ]; do
    kill -0 "$kpi_pid" 2>/dev/null || { cat "$work/kpi.err" >&2; fail "kpistream exited early"; }
    [ $SECONDS -lt $deadline ] || { tail "$work/kpi.err" >&2; fail "kpistream flushed $(flushed) of $events events in 60 s"; }
    sleep 0.2 # polling the metric above until every event is in Redis
done
keys="$(redis-cli -p "$redis_port" --scan --pattern "*{$instance*" | wc -l)"
[ "$keys" -gt 0 ] || fail "no Redis key of group $instance"
echo "kpistream flushed $events events to Redis ($keys keys of group $instance)"

# systemctl stop: SIGTERM, then up to TimeoutStopSec for the final flush.
stop_timeout="$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")"
[ -n "$stop_timeout" ] || fail "TimeoutStopSec= is not in seconds in $unit"
kill -TERM "$kpi_pid"
deadline=$((SECONDS + stop_timeout))
while kill -0 "$kpi_pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "kpistream still runs ${stop_timeout}s after SIGTERM"
    sleep 0.2 # polling for the exit, within the unit's TimeoutStopSec
done
rc=0
wait "$kpi_pid" || rc=$?
kpi_pid=""
[ "$rc" = 0 ] || { cat "$work/kpi.err" >&2; fail "kpistream exited $rc after SIGTERM"; }
summary="consumed: $events events, bad: 0, late: 0, flushed: $events"
grep -qx "$summary" "$work/kpi.out" || fail "no '$summary' line: $(cat "$work/kpi.out")"
echo "SIGTERM: exit 0, '$summary'"
grep -q 'stopped cleanly' "$work/kpi.err" || fail "no 'stopped cleanly' log line"
head -1 "$work/kpi.err"

# shellcheck disable=SC2086
out="$(sandbox $execreload 2>&1)" || fail "ExecReload rejects a good config: $out"
echo "ExecReload on the good config: ${out##*$'\n'}"
printf '[engine]\nworkers = none\n' | $sudo tee -a "$conf" >/dev/null
rc=0
# shellcheck disable=SC2086
out="$(sandbox $execreload 2>&1)" || rc=$?
[ "$rc" = 2 ] && grep -q 'engine.workers' <<<"$out" ||
    fail "ExecReload on a bad key: exit $rc, '$out' (want 2, naming engine.workers)"
echo "ExecReload on a bad key: exit 2, ${out##*$'\n'}"
$sudo rm -f "$conf"

say "upgrade over an edited conffile, then apt-get remove"
marker="# edited by package-check $$"
echo "$marker" | $sudo tee -a /etc/kpistream/kpistream.ini >/dev/null
(cd "$build" && apt_get install -y --reinstall "./$(basename "$deb")" >/dev/null)
grep -qx "$marker" /etc/kpistream/kpistream.ini || fail "reinstalling overwrote the edited conffile"
echo "reinstall kept the edited /etc/kpistream/kpistream.ini"
apt_get remove -y kpistream >/dev/null
[ ! -e /usr/bin/kpistream ] || fail "/usr/bin/kpistream is still there after apt-get remove"
[ ! -e "$unit" ] || fail "$unit is still there after apt-get remove"
grep -qx "$marker" /etc/kpistream/kpistream.ini || fail "apt-get remove did not keep the conffile"
apt_get purge -y kpistream >/dev/null
[ ! -e /etc/kpistream ] || fail "/etc/kpistream is still there after purge"
echo "remove: programs and unit gone, conffile kept; purge: /etc/kpistream gone"

say "ok ($((SECONDS - t0)) s)"
