#!/usr/bin/env bash
# mc-engine copy vs skopeo copy on one synthetic image (issue 4 benchmarks).
#
#   benchmarks/copy_bench.sh [MC_ENGINE_BIN]
#   env: SIZE_MIB (2048), RUNS (3), WORK (/var/tmp/mc-copy-bench), WAN=0 to skip the WAN case,
#        TMPFS=1 to keep registry storage on /dev/shm (a faster registry; default: disk)
#
# Cases (median of RUNS each; wall s, MB/s of the image size, peak RSS KiB,
# client CPU s):
#   loopback cold   registry A → fresh registry B (B's storage emptied before each run)
#   loopback no-op  the same copy again, everything present
#   same registry   A/org/src → A/copyN (mc-engine mounts; skopeo mounts when its
#                   blob-info cache knows the source, else streams: both measured)
#   WAN cold        A' in a network namespace behind a veth pair with netem
#                   delay 20 ms each way → B (only 10.203.0.0/30 addresses);
#                   without sch_netem, A behind benchmarks/latency_proxy
#                   (20 ms each way, WAN_WINDOW bytes in flight per connection)
#
# The image: one gzip layer of SIZE_MIB random bytes made with `pigz -0`
# (stored deflate blocks: ready in seconds) plus a small config, written as an
# OCI layout by this script and pushed to A with skopeo.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mc=${1:-$root/build/cmd/mc-engine}
[[ -x $mc ]] || mc=$(find "$root/build" -name mc-engine -type f -perm -u+x | head -1)
SIZE_MIB=${SIZE_MIB:-2048}
RUNS=${RUNS:-3}
WORK=${WORK:-/var/tmp/mc-copy-bench}
WAN=${WAN:-1}
TMPFS=${TMPFS:-0}
NS=mcbench-src
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del mcb-h 2>/dev/null || true
  rm -rf "$WORK"
  if [[ -n ${BIC:-} && -f $BIC.bench-saved ]]; then mv -f "$BIC.bench-saved" "$BIC"; fi
  [[ $TMPFS == 1 ]] && rm -rf /dev/shm/mc-copy-bench
}
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK"

storage_root() { if [[ $TMPFS == 1 ]]; then echo "/dev/shm/mc-copy-bench/$1"; else echo "$WORK/$1"; fi; }

# start_registry NAME ADDR:PORT [netns] — echoes nothing; waits until it answers.
start_registry() {
  local name=$1 addr=$2 ns=${3:-} st
  st=$(storage_root "$name")
  mkdir -p "$st"
  cat >"$WORK/$name.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $st}, delete: {enabled: true}}
http: {addr: $addr}
EOF
  if [[ -n $ns ]]; then
    ip netns exec "$ns" docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  else
    docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  fi
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 100); do
    if [[ -n $ns ]]; then
      ip netns exec "$ns" curl -s -o /dev/null "http://$addr/v2/" && return 0
    else
      curl -s -o /dev/null "http://$addr/v2/" && return 0
    fi
    sleep 0.1
  done
  echo "registry $name did not start" >&2
  return 1
}

stop_registry() {
  local pid_var="${1}_pid"
  kill "${!pid_var}" 2>/dev/null || true
  wait "${!pid_var}" 2>/dev/null || true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

make_image() {
  local dir=$WORK/layout
  mkdir -p "$dir/blobs/sha256" "$WORK/model"
  head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/model/weights.bin"
  tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$WORK/model" -cf - . | tee >(sha256sum | cut -d' ' -f1 >"$WORK/diffid") | pigz -0 -p2 -n >"$WORK/layer.gz"
  rm -f "$WORK/model/weights.bin"
  local ld ls cd cs md ms
  ld=$(openssl dgst -sha256 -r "$WORK/layer.gz" | cut -d' ' -f1)
  ls=$(stat -c %s "$WORK/layer.gz")
  mv "$WORK/layer.gz" "$dir/blobs/sha256/$ld"
  sleep 0.2
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$(cat "$WORK/diffid")" >"$WORK/config.json"
  cd=$(openssl dgst -sha256 -r "$WORK/config.json" | cut -d' ' -f1); cs=$(stat -c %s "$WORK/config.json")
  mv "$WORK/config.json" "$dir/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cd" "$cs" "$ld" "$ls" >"$WORK/manifest.json"
  md=$(openssl dgst -sha256 -r "$WORK/manifest.json" | cut -d' ' -f1); ms=$(stat -c %s "$WORK/manifest.json")
  mv "$WORK/manifest.json" "$dir/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' "$md" "$ms" >"$dir/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  IMAGE_BYTES=$ls
}

# measure LABEL CMD... — one timed run; appends "wall rss cpu" to $WORK/LABEL.times.
measure() {
  local label=$1; shift
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.out" "$@" >"$WORK/cmd.log" 2>&1 || {
    echo "FAILED: $*" >&2; cat "$WORK/cmd.log" >&2; return 1; }
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$WORK/time.out" >>"$WORK/$label.times"
}

report() {
  local label=$1
  sort -n "$WORK/$label.times" | awk -v n="$(wc -l <"$WORK/$label.times")" -v bytes="$IMAGE_BYTES" -v label="$label" '
    { w[NR]=$1; r[NR]=$2; c[NR]=$3 }
    END { m=int((n+1)/2); mbs = (w[m] > 0) ? bytes / 1e6 / w[m] : 0;
          printf "%-28s wall %7.2f s  %8.1f MB/s  peak RSS %7.1f MiB  client CPU %6.2f s  (median of %d)\n",
                 label, w[m], mbs, r[m] / 1024, c[m], n }'
}

reset_b() {
  stop_registry B
  rm -rf "$(storage_root B)"
  start_registry B "127.0.0.1:$PB"
}

skopeo_flags=(--src-tls-verify=false --dest-tls-verify=false)
BIC=/var/lib/containers/cache/blob-info-cache-v1.boltdb  # skopeo's, as root

echo "== building a ${SIZE_MIB} MiB image" >&2
make_image
PA=$(free_port); PB=$(free_port)
start_registry A "127.0.0.1:$PA"
start_registry B "127.0.0.1:$PB"
skopeo copy --dest-tls-verify=false "oci:$WORK/layout:v1" "docker://127.0.0.1:$PA/org/src:v1" >/dev/null
SRC=docker://127.0.0.1:$PA/org/src:v1
echo "image: $IMAGE_BYTES bytes; mc-engine: $mc" >&2

for i in $(seq "$RUNS"); do
  reset_b
  measure mc-loopback-cold "$mc" copy "$SRC" "docker://127.0.0.1:$PB/mirror/m:v1"
  measure mc-loopback-noop "$mc" copy "$SRC" "docker://127.0.0.1:$PB/mirror/m:v1"
  reset_b
  measure skopeo-loopback-cold skopeo copy "${skopeo_flags[@]}" "$SRC" "docker://127.0.0.1:$PB/mirror/m:v1"
  measure skopeo-loopback-noop skopeo copy "${skopeo_flags[@]}" "$SRC" "docker://127.0.0.1:$PB/mirror/m:v1"
  measure mc-same-registry "$mc" copy "$SRC" "docker://127.0.0.1:$PA/mc/copy$i:v1"
  measure skopeo-same-registry skopeo copy "${skopeo_flags[@]}" "$SRC" "docker://127.0.0.1:$PA/skopeo/copy$i:v1"
  # skopeo mounts only blobs its blob-info cache saw at the source (a warm
  # cache: it pushed the source image above). A fresh Tekton step container
  # has no cache, so measure that too, with the cache moved aside.
  if [[ -f $BIC ]]; then mv "$BIC" "$BIC.bench-saved"; fi
  measure skopeo-same-registry-fresh-cache skopeo copy "${skopeo_flags[@]}" "$SRC" "docker://127.0.0.1:$PA/skopeo/fresh$i:v1"
  rm -f "$BIC"
  if [[ -f $BIC.bench-saved ]]; then mv "$BIC.bench-saved" "$BIC"; fi
done

print_report() {
  echo
  echo "copy of a $((IMAGE_BYTES >> 20)) MiB image (storage: $([[ $TMPFS == 1 ]] && echo tmpfs || echo disk))"
  for label in mc-loopback-cold skopeo-loopback-cold mc-loopback-noop skopeo-loopback-noop \
               mc-same-registry skopeo-same-registry \
               skopeo-same-registry-fresh-cache mc-wan-cold skopeo-wan-cold; do
    [[ -f $WORK/$label.times ]] && report "$label"
  done
  return 0
}
print_report

netem=1
tc qdisc add dev lo root netem delay 0ms 2>/dev/null && tc qdisc del dev lo root || netem=0
proxy=$(dirname "$mc")/../benchmarks/latency_proxy
if [[ $WAN == 1 && $netem == 1 ]]; then
  echo "== WAN: source registry in netns $NS, netem 20 ms each way" >&2
  ip netns add "$NS"
  ip link add mcb-h type veth peer name mcb-n
  ip link set mcb-n netns "$NS"
  ip addr add 10.203.0.1/30 dev mcb-h
  ip link set mcb-h up
  ip netns exec "$NS" ip addr add 10.203.0.2/30 dev mcb-n
  ip netns exec "$NS" ip link set mcb-n up
  ip netns exec "$NS" ip link set lo up
  tc qdisc add dev mcb-h root netem delay 20ms limit 100000
  ip netns exec "$NS" tc qdisc add dev mcb-n root netem delay 20ms limit 100000
  stop_registry A
  start_registry A "10.203.0.2:5000" "$NS"  # same storage: the image is already there
  WSRC=docker://10.203.0.2:5000/org/src:v1
elif [[ $WAN == 1 && -x $proxy ]]; then
  # No sch_netem in this kernel: the same shape from a userspace proxy
  # (benchmarks/latency_proxy.cc): 20 ms each way, and a per-connection
  # window (WAN_WINDOW, default 4M) so one stream moves at most
  # window / 40 ms, as one TCP stream over that round trip does.
  echo "== WAN: no netem qdisc here; latency_proxy, 20 ms each way, window ${WAN_WINDOW:-4M} per connection" >&2
  PP=$(free_port)
  "$proxy" "$PP" "127.0.0.1:$PA" --delay-ms 20 --window "${WAN_WINDOW:-4M}" >"$WORK/proxy.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q ready "$WORK/proxy.log" && break; sleep 0.1; done
  WSRC=docker://127.0.0.1:$PP/org/src:v1
else
  [[ $WAN == 1 ]] && echo "WAN case skipped: no netem qdisc and no latency_proxy binary" >&2
  WAN=0
fi
if [[ $WAN == 1 ]]; then
  for i in $(seq "$RUNS"); do
    reset_b
    measure mc-wan-cold "$mc" copy --src-tls-verify=false "$WSRC" "docker://127.0.0.1:$PB/mirror/m:v1"
    reset_b
    measure skopeo-wan-cold skopeo copy "${skopeo_flags[@]}" "$WSRC" "docker://127.0.0.1:$PB/mirror/m:v1"
  done
  print_report
fi
