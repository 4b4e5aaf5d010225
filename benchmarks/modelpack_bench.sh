#!/usr/bin/env bash
# Issue 15's closing note: `build --type modelpack` next to `--type modelcar`
# (gzip and none) on one synthetic model: wall time, client CPU seconds, peak
# RSS, and the size of what each writes.
#
#   benchmarks/modelpack_bench.sh [SIZE] [RUNS]      SIZE default 2G, RUNS default 3
#
# The model comes from benchmarks/gen_model.py (--kind weights: bf16 tensors that
# compress like a real checkpoint; reused while SIZE and the generator are
# unchanged). The page cache is warmed, then the commands run interleaved
# (round 1 of each, round 2 of each, …) so that a slow phase of a shared
# machine hits all of them alike. Reported: the MEDIAN wall time and CPU
# seconds (user + sys, /usr/bin/time), the MAX peak RSS, and the artifact's
# size (the sum of its blobs: layers, config, manifest; the built-in base of
# the modelcar is left out with --base scratch, so only the model is compared).
#
# Environment:
#   MC_ENGINE  the binary (default: build/cmd/mc-engine of this checkout)
#   BENCH_DIR  where the model is generated (default /tmp/mc-bench)
#   OUT_DIR    where the OCI layouts go (default /dev/shm/mc-bench-mp, a tmpfs:
#              disk writeback would hide the engine's own speed). Removed per run.
#   KIND       gen_model.py --kind (default weights)
#   JOBS       --jobs (default: nproc)
set -euo pipefail

size=${1:-2G}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
engine=${MC_ENGINE:-$root/build/cmd/mc-engine}
bench_dir=${BENCH_DIR:-/tmp/mc-bench}
out_dir=${OUT_DIR:-/dev/shm/mc-bench-mp}
kind=${KIND:-weights}
jobs=${JOBS:-$(nproc)}
python=$(command -v /usr/bin/python3 || command -v python3)

for tool in "$engine" /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "modelpack_bench: missing $tool" >&2; exit 2; }
done
mkdir -p "$bench_dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$out_dir"' EXIT

dir="$bench_dir/model-$kind-$size"
stamp="$(sha256sum "$here/gen_model.py" | cut -c1-16) $kind $size"
if [[ ! -f "$dir.done" || "$(cat "$dir.done")" != "$stamp" ]]; then
  rm -rf "$dir" "$dir.done"
  "$python" "$here/gen_model.py" "$dir" --size "$size" --kind "$kind" >&2
  echo "$stamp" >"$dir.done"
fi
bytes=$(du -sb "$dir" | cut -f1)
cat "$dir"/* >/dev/null  # warm the page cache

labels=("modelcar gzip" "modelcar none" "modelpack none" "modelpack gzip")
flags=("--type modelcar --base scratch --compression gzip"
  "--type modelcar --base scratch --compression none"
  "--type modelpack"
  "--type modelpack --compression gzip")

echo "modelpack_bench: $dir ($bytes bytes, $(ls "$dir" | wc -l) files), $runs runs interleaved," \
  "jobs $jobs, $(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg)"
for ((r = 0; r < runs; r++)); do
  for i in "${!labels[@]}"; do
    rm -rf "$out_dir"
    # shellcheck disable=SC2086 # flags are words
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/t" "$engine" --progress none build "$dir" \
      "oci:$out_dir:bench" ${flags[$i]} --jobs "$jobs" --no-cache >"$tmp/out" 2>"$tmp/err"; then
      echo "modelpack_bench: '${labels[$i]}' failed:" >&2
      cat "$tmp/err" "$tmp/t" >&2
      exit 1
    fi
    tail -1 "$tmp/t" >>"$tmp/times.$i"
    find "$out_dir/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s}' >"$tmp/size.$i"
    find "$out_dir/blobs" -type f | wc -l >"$tmp/blobs.$i"
  done
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf "  %-16s %9s %10s %9s %10s %14s %7s %6s\n" type wall MB/s cpu-s rss-MiB "artifact-bytes" "/model" blobs
for i in "${!labels[@]}"; do
  w=$(awk '{print $1}' "$tmp/times.$i" | median)
  c=$(awk '{print $3 + $4}' "$tmp/times.$i" | median)
  rss=$(awk '{print $2}' "$tmp/times.$i" | sort -g | tail -1)
  s=$(cat "$tmp/size.$i")
  awk -v l="${labels[$i]}" -v w="$w" -v c="$c" -v r="$rss" -v s="$s" -v b="$bytes" \
    -v n="$(cat "$tmp/blobs.$i")" 'BEGIN {
    printf "  %-16s %8.2fs %10.1f %8.2fs %10.1f %14.0f %7.3f %6d\n", l, w, b / 1e6 / w, c, r / 1024, s, s / b, n }'
done
