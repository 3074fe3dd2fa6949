#!/usr/bin/env bash
# scripts/install-deps.sh - install the Debian packages kpistream needs, if any
# is missing.  Idempotent and quiet when everything is there (CI calls it on
# every run).  Needs root (or sudo) only when something must be installed.
set -euo pipefail
pkgs=(
    build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
    librdkafka-dev libhiredis-dev libmsgpack-dev libcriterion-dev
    libinih-dev libmicrohttpd-dev libjemalloc-dev
    redis-server redis-tools
    openjdk-17-jre-headless maven
    python3 python3-yaml curl
    dpkg-dev file man-db systemd util-linux # the Debian package: cpack -G DEB, scripts/package-check.sh
    libcurl4-openssl-dev prometheus prometheus-alertmanager chromium
    stunnel4 openssl # TLS to Redis through a stunnel sidecar (README, "Redis over TLS")
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
