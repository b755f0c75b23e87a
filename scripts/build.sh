#!/bin/sh
# Builds Shortwave into build/ (binaries in build/bin/). Extra arguments go to cmake's configure.
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j"$(nproc)"
