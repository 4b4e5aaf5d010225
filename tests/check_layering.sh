#!/usr/bin/env bash
# Fails when a module includes a header of a module above it, or a library
# header that belongs to a lower module's private dependencies.
#   cmd -> engine -> registry -> oci (architecture.md section 1)
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
status=0
check() {  # dir, forbidden include regex, reason
  local dir=$1 pattern=$2 reason=$3
  local hits
  hits=$(grep -rnE "^\s*#\s*include\s+[\"<]($pattern)" "$root/$dir" --include='*.h' --include='*.cc' || true)
  if [[ -n $hits ]]; then
    echo "layering violation in $dir/ ($reason):"
    echo "$hits"
    status=1
  fi
}
check oci 'registry/|engine/|cmd/|curl/|spdlog/|boost/' "oci/ is formats only: no network, logging or threads of its own"
check registry 'engine/|cmd/' "registry/ must not know engine/ or cmd/"
check engine 'cmd/|curl/|CLI/' "engine/ must not parse argv or use libcurl directly"
if [[ $status -eq 0 ]]; then echo "layering ok"; fi
exit $status
