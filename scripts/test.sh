#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root), builds, and runs every test.
#   scripts/test.sh             release build in ./build
#   scripts/test.sh --asan      AddressSanitizer + UBSan build in ./build-asan
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build=$root/build
args=()
exclude=()
if [[ ${1:-} == --asan ]]; then
  build=$root/build-asan
  args=(-DMC_SANITIZE=ON -DMC_BUILD_BENCHMARKS=OFF)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The Tekton lint runs Python over YAML, none of our C++: the release run covers it.
  exclude=(-E '^TektonLint\.')
fi
"$root/scripts/build.sh" "$build" "${args[@]}"
cd "$build"
ctest --output-on-failure -j"$(nproc)" --timeout 600 "${exclude[@]}"
