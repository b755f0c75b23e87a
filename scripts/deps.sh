#!/bin/sh
# Installs what Shortwave needs to build, run and test, from Debian 12's packages. Idempotent:
# it only calls apt-get when a package is missing. Run as root (or with sudo).
set -eu
cd "$(dirname "$0")/.."

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
libuv1-dev libsrt-gnutls-dev libavformat-dev libavcodec-dev libavutil-dev libnghttp2-dev
libhiredis-dev libwebsockets-dev libjansson-dev libcmocka-dev libssl-dev libcurl4-openssl-dev
libinih-dev libebur128-dev ffmpeg srt-tools redis-server nghttp2-client curl openssl python3 libxml2-utils
nodejs chromium"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# The packaged redis-server starts a system instance on :6379; tests start their own on free ports.
# JavaScript: the web player's bundler and the test clients, pinned by package-lock.json.
# Debian's own nodejs package ships npm separately.
if ! command -v npm >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends npm
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deps: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
fi
