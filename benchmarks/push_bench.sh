#!/usr/bin/env bash
# The issue-3 harness: build + push of a synthetic model to a loopback
# docker-registry, side by side with buildah and the upload floor.
#
#   benchmarks/push_bench.sh [SIZE] [RUNS]      SIZE default 2G, RUNS default 3
#
# In one run, for the registry's storage on disk and on tmpfs (/dev/shm):
#   - mc-engine build DIR docker://… (gzip, none): streamed, no temp files;
#   - buildah build --layers=false --squash --storage-driver vfs of
#     `FROM scratch; COPY model/ /models/`, then buildah push (fresh storage root
#     per run, removed afterwards), with the extra disk it used;
#   - the floor: curl uploading the already-compressed layer blob (POST + PUT).
# Every push goes to a new repository so nothing is skipped. Prints the median
# wall time, throughput (model bytes / wall), client CPU seconds and peak RSS.
#
# Environment: MC_ENGINE, BENCH_DIR (models, default /tmp/mc-bench), KIND
# (weights|random, default weights), STORAGES (default "disk tmpfs").
set -euo pipefail

size=${1:-2G}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
engine=${MC_ENGINE:-$root/build/cmd/mc-engine}
bench_dir=${BENCH_DIR:-/tmp/mc-bench}
kind=${KIND:-weights}
storages=${STORAGES:-disk tmpfs}
python=$(command -v /usr/bin/python3 || command -v python3)
for tool in "$engine" /usr/bin/time docker-registry curl buildah; do
  command -v "$tool" >/dev/null || { echo "push_bench: missing $tool" >&2; exit 2; }
done
tmp=$(mktemp -d /tmp/mc-push-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp" /dev/shm/mc-push-bench-*
}
trap cleanup EXIT

dir="$bench_dir/model-$kind-$size"
stamp="$(sha256sum "$here/gen_model.py" | cut -c1-16) $kind $size"
if [[ ! -f "$dir.done" || "$(cat "$dir.done")" != "$stamp" ]]; then
  rm -rf "$dir" "$dir.done"
  mkdir -p "$bench_dir"
  "$python" "$here/gen_model.py" "$dir" --size "$size" --kind "$kind" >&2
  echo "$stamp" >"$dir.done"
fi
bytes=$(du -sb "$dir" | cut -f1)
cat "$dir"/* >/dev/null

start_registry() {  # STORAGE_DIR → prints the port
  local storage=$1 port
  port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$storage"
  cat >"$tmp/reg-$port.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $storage}}
http: {addr: 127.0.0.1:$port}
YML
  docker-registry serve "$tmp/reg-$port.yml" >"$tmp/reg-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  echo "$port"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
max() { sort -g | tail -1; }
declare -A wall
seq_no=0
# measure LABEL PREP CMD (CMD may use $REPO, a fresh repository name per run)
measure() {
  local label=$1 prep=$2 cmd=$3
  : >"$tmp/times"
  for ((i = 0; i < runs; i++)); do
    seq_no=$((seq_no + 1))
    export REPO="bench/r$seq_no"
    bash -c "$prep"
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/t" bash -c "$cmd" >"$tmp/out" 2>"$tmp/err"; then
      echo "push_bench: '$label' failed:" >&2; cat "$tmp/err" "$tmp/t" >&2; exit 1
    fi
    tail -1 "$tmp/t" >>"$tmp/times"
  done
  local w rss cpu
  w=$(awk '{print $1}' "$tmp/times" | median)
  rss=$(awk '{print $2}' "$tmp/times" | max)
  cpu=$(awk '{print $3 + $4}' "$tmp/times" | median)
  wall[$label]=$w
  awk -v l="$label" -v w="$w" -v b="$bytes" -v r="$rss" -v c="$cpu" 'BEGIN {
    printf "  %-44s %8.2f s %8.1f MB/s %7.2f s cpu %8.1f MiB rss\n", l, w, b / 1e6 / w, c, r / 1024 }'
}
ratio() { awk -v n="$1" -v a="${wall[$3]}" -v b="${wall[$2]}" 'BEGIN { printf "  %-52s %6.2fx\n", n, a / b }'; }

echo "push_bench: model $kind $size ($bytes bytes), $runs runs (median), $(nproc) CPUs, page cache warm"
for storage in $storages; do
  if [[ $storage == tmpfs ]]; then sdir=$(mktemp -d /dev/shm/mc-push-bench-XXXXXX); else sdir="$tmp/storage"; fi
  port=$(start_registry "$sdir")
  reg="127.0.0.1:$port"
  echo "registry storage: $storage"
  for c in gzip none; do
    measure "mc-engine build+push --compression $c" "" \
      "'$engine' --progress none build '$dir' docker://$reg/\$REPO:v1 --base scratch --compression $c --no-cache"
  done
  # The floor: the layer blob mc-engine made, uploaded by curl (streamed from
  # the file with -T; --data-binary @file would read it into memory first).
  for c in gzip none; do
    rm -rf "$tmp/layout"
    "$engine" --progress none build "$dir" "oci:$tmp/layout:x" --base scratch --compression $c --no-cache >/dev/null 2>&1
    blob=$(find "$tmp/layout/blobs" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
    digest="sha256:$(basename "$blob")"
    measure "curl upload of the ready $c blob (floor)" "" \
      "loc=\$(curl -fsS -X POST -D - -o /dev/null http://$reg/v2/\$REPO/blobs/uploads/ | tr -d '\r' | awk 'tolower(\$1)==\"location:\" {print \$2}');
       case \$loc in http*) ;; *) loc=http://$reg\$loc;; esac;
       curl -fsS -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' -T '$blob' \"\$loc&digest=$digest\" -o /dev/null"
  done
  rm -rf "$tmp/layout"
  # buildah: FROM scratch + COPY, squashed, then pushed; fresh storage per run.
  mkdir -p "$tmp/ctx"
  ln -sfn "$dir" "$tmp/ctx/model" 2>/dev/null || true
  printf 'FROM scratch\nCOPY model/ /models/\n' >"$tmp/ctx/Containerfile"
  rm -f "$tmp/ctx/model"; cp -al "$dir" "$tmp/ctx/model" 2>/dev/null || cp -r "$dir" "$tmp/ctx/model"
  measure "buildah build --squash (vfs) + push" "rm -rf '$tmp/bh'" \
    "buildah --root '$tmp/bh/root' --runroot '$tmp/bh/run' --storage-driver vfs build --layers=false --squash \
       --isolation chroot -t bench -f '$tmp/ctx/Containerfile' '$tmp/ctx' >/dev/null &&
     du -sb '$tmp/bh/root' | cut -f1 >'$tmp/bh-disk' &&
     buildah --root '$tmp/bh/root' --runroot '$tmp/bh/run' --storage-driver vfs push --tls-verify=false bench docker://$reg/\$REPO:v1 >/dev/null"
  echo "  buildah extra disk (storage root after build): $(numfmt --to=iec "$(cat "$tmp/bh-disk")"); mc-engine: 0 (streams, writes only a small state file)"
  rm -rf "$tmp/bh" "$tmp/ctx"
  echo " ratios ($storage; >1 means mc-engine is faster):"
  ratio "gzip build+push vs curl of the ready gzip blob" "mc-engine build+push --compression gzip" "curl upload of the ready gzip blob (floor)"
  ratio "none build+push vs curl of the ready tar blob" "mc-engine build+push --compression none" "curl upload of the ready none blob (floor)"
  ratio "gzip build+push vs buildah" "mc-engine build+push --compression gzip" "buildah build --squash (vfs) + push"
  if [[ $storage == tmpfs ]]; then rm -rf "$sdir"; fi
done
