#!/usr/bin/env bash
# The issue-2 harness: `mc-engine build DIR oci:OUT` (gzip, zstd, none) next to
# the floors `tar | pigz -1 -p$(nproc)`, `tar | openssl dgst -sha256` and
# `openssl dgst -sha256` over the files, on synthetic models of SIZE.
#
#   benchmarks/build_bench.sh [SIZE] [RUNS]      SIZE default 2G, RUNS default 3
#
# For each model kind (weights: bf16 N(0, 0.02) like a real checkpoint; random:
# incompressible) it generates the model once (benchmarks/gen_model.py, reused
# while SIZE and the generator are unchanged), warms the page cache, runs every
# command RUNS times and prints the MEDIAN wall time, throughput (model bytes /
# wall), CPU seconds (user + sys) and peak RSS (max over runs, /usr/bin/time
# %M), then the ratios the issue asks about.
#
# Environment:
#   MC_ENGINE  the binary (default: build/cmd/mc-engine of this checkout)
#   BENCH_DIR  where models are generated (default /tmp/mc-bench)
#   OUT_DIR    where mc-engine writes its OCI layouts (default /dev/shm/mc-bench-out,
#              a tmpfs, so that disk writeback does not hide the engine's speed;
#              the pigz/openssl floors write nothing either). Removed before each run.
#   KINDS      model kinds (default "weights random")
#   JOBS       --jobs for mc-engine and -p for pigz (default: nproc)
set -euo pipefail

size=${1:-2G}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
engine=${MC_ENGINE:-$root/build/cmd/mc-engine}
bench_dir=${BENCH_DIR:-/tmp/mc-bench}
out_dir=${OUT_DIR:-/dev/shm/mc-bench-out}
kinds=${KINDS:-weights random}
jobs=${JOBS:-$(nproc)}
python=$(command -v /usr/bin/python3 || command -v python3)

for tool in "$engine" /usr/bin/time pigz openssl tar; do
  command -v "$tool" >/dev/null || { echo "build_bench: missing $tool" >&2; exit 2; }
done
mkdir -p "$bench_dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$out_dir"' EXIT

# gen KIND → prints the model dir, generating it unless an identical one exists.
gen() {
  local kind=$1 dir="$bench_dir/model-$1-$size"
  local stamp
  stamp="$(sha256sum "$here/gen_model.py" | cut -c1-16) $kind $size"
  if [[ ! -f "$dir.done" || "$(cat "$dir.done")" != "$stamp" ]]; then
    rm -rf "$dir" "$dir.done"
    "$python" "$here/gen_model.py" "$dir" --size "$size" --kind "$kind" >&2
    echo "$stamp" >"$dir.done"
  fi
  echo "$dir"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
max() { sort -g | tail -1; }

# measure LABEL PREP CMD: runs CMD (bash) $runs times after PREP (untimed); sets
# wall[LABEL] and prints a table row. Output of CMD goes to $tmp/out.
declare -A wall cpus
measure() {
  local label=$1 prep=$2 cmd=$3 bytes=$4
  : >"$tmp/times"
  for ((i = 0; i < runs; i++)); do
    bash -c "$prep"
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/t" bash -c "$cmd" >"$tmp/out" 2>"$tmp/err"; then
      echo "build_bench: '$label' failed:" >&2
      cat "$tmp/err" "$tmp/t" >&2
      exit 1
    fi
    tail -1 "$tmp/t" >>"$tmp/times"
  done
  local w rss cpu
  w=$(awk '{print $1}' "$tmp/times" | median)
  rss=$(awk '{print $2}' "$tmp/times" | max)
  cpu=$(awk '{print $3 + $4}' "$tmp/times" | median)
  wall[$label]=$w
  cpus[$label]=$cpu
  awk -v l="$label" -v w="$w" -v b="$bytes" -v r="$rss" -v c="$cpu" 'BEGIN {
    printf "  %-34s %8.2f s %9.1f MB/s %8.2f s cpu %8.1f MiB rss\n", l, w, b / 1e6 / w, c, r / 1024 }'
}

# ratio NAME NUM_LABEL DEN_LABEL: speed of NUM relative to DEN (= wall DEN / wall NUM),
# and the same for CPU seconds (steadier than wall time on a shared machine).
ratio() {
  awk -v n="$1" -v a="${wall[$3]}" -v b="${wall[$2]}" -v c="${cpus[$3]}" -v d="${cpus[$2]}" \
    'BEGIN { printf "  %-44s wall %6.2fx   cpu %6.2fx\n", n, a / b, (d > 0 ? c / d : 0) }'
}

echo "build_bench: size $size, $runs runs (median), jobs $jobs, $(nproc) CPUs, $("$engine" --version 2>/dev/null | head -1)"
echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg)"
for kind in $kinds; do
  dir=$(gen "$kind")
  bytes=$(du -sb "$dir" | cut -f1)
  cat "$dir"/* >/dev/null  # warm the page cache
  echo "model $kind: $dir ($bytes bytes), page cache warm"
  files="find '$dir' -type f -print0 | sort -z | xargs -0"
  for c in gzip zstd none; do
    measure "mc-engine build --compression $c" "rm -rf '$out_dir'" \
      "'$engine' build '$dir' 'oci:$out_dir:bench' --base scratch --compression $c --jobs $jobs --no-cache" "$bytes"
    blob=$(find "$out_dir/blobs" -type f -printf '%s\n' | sort -n | tail -1)
    awk -v c="$c" -v s="$blob" -v b="$bytes" 'BEGIN { printf "  %-34s layer %.0f bytes, %.3f of the model\n", "", s, s / b }'
  done
  measure "tar | pigz -1 -p$jobs" "" "tar -C '$dir' -cf - . | pigz -1 -p$jobs >/dev/null" "$bytes"
  measure "tar | openssl dgst -sha256" "" "tar -C '$dir' -cf - . | openssl dgst -sha256" "$bytes"
  measure "openssl dgst -sha256 FILES" "" "$files openssl dgst -sha256" "$bytes"
  echo " ratios ($kind; >1 means mc-engine is faster):"
  ratio "gzip vs tar|pigz -1 (target >= 5)" "mc-engine build --compression gzip" "tar | pigz -1 -p$jobs"
  ratio "zstd vs tar|pigz -1" "mc-engine build --compression zstd" "tar | pigz -1 -p$jobs"
  ratio "none vs tar|openssl (target >= 0.9)" "mc-engine build --compression none" "tar | openssl dgst -sha256"
  ratio "none vs openssl over the files" "mc-engine build --compression none" "openssl dgst -sha256 FILES"
done
