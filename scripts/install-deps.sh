#!/usr/bin/env bash
# Installs every build and test dependency from Debian's packages.
# Idempotent and quiet; run as root on Debian 12 (bookworm).
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build pkg-config ccache
  libcurl4-openssl-dev libssl-dev libzstd-dev libarchive-dev libisal-dev zlib1g-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libboost-dev libcli11-dev libgtest-dev libgmock-dev
  libsodium-dev
  # tests: real registries and independent clients (buildah runs KServe's modelcar
  # commands in a built image)
  docker-registry skopeo umoci buildah pigz zstd jq isal tar gzip python3 python3-yaml
  python3-jsonschema
  apache2-utils openssl curl util-linux procps iproute2 ca-certificates e2fsprogs
  # the built-in base of `build` (its static /bin/busybox), benchmarks and the main job
  busybox-static time
)

# Benchmarks compare against these (benchmarks/*.sh); not needed for the tests.
if [[ ${MC_BENCH:-0} == 1 ]]; then
  packages+=(nginx-light aria2 hyperfine linux-perf)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi
echo "install-deps: installing ${#missing[@]} packages..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a registry on :5000 under systemd where there is one;
# we start our own on random loopback ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
