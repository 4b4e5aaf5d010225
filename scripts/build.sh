#!/usr/bin/env bash
# Configures and builds mc-engine. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args]
# Our own builds treat warnings as errors (CMAKE_COMPILE_WARNING_AS_ERROR); a plain
# `cmake -B build` does not. Extra args come last, so -DCMAKE_COMPILE_WARNING_AS_ERROR=OFF
# overrides.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_COMPILE_WARNING_AS_ERROR=ON "$@" >/dev/null
cmake --build "$build" -- -j"$(nproc)"
