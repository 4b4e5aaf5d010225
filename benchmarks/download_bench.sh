#!/usr/bin/env bash
# Download benchmark (issue 5): a 2 GiB synthetic model served from loopback,
# the Hub API by tests/support/hub_server.py and the file bytes by nginx
# behind its redirects, fetched by
#   - mc-engine download (parallel ranged segments, SHA-256 verified)
#   - four parallel curls over the same nginx URLs (no verification)
#   - aria2c -x8 -s8 (no verification)
#   - curl of each file in turn
#   - mc-engine build hf://… docker://… (streamed: no model file on disk) vs
#     download then build DIR docker://…, into a docker-registry started here
#     with its storage on tmpfs (/dev/shm), for gzip (the default) and no
#     compression; and the same two into an oci: layout on tmpfs (no registry)
# Reports the median of RUNS runs: wall seconds, MB/s, client CPU-seconds
# (user + sys of the measured command and its children), peak RSS (KiB); and
# download's CPU against its floor: four curls' CPU + one SHA-256 pass
# (`openssl dgst -sha256` over the files, in the same interleaved runs).
#
# Usage: benchmarks/download_bench.sh [BUILD_DIR]
#   env: RUNS=3 WORK=/tmp/mc-dl-bench SIZE_MIB=2048 BUILDS=1 (0: downloads only)
# Needs: nginx (Debian nginx-light), aria2c, curl, python3, /usr/bin/time,
# docker-registry (for the build rows).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
engine=$build/cmd/mc-engine
runs=${RUNS:-3}
work=${WORK:-/tmp/mc-dl-bench}
size_mib=${SIZE_MIB:-2048}
mkdir -p "$work"
model=$work/model
out=$work/out

for tool in nginx aria2c curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx-light aria2 time)"; exit 2; }
done

# The model: four LFS-sized shards and a few small files (random bytes).
if [[ ! -f $model/.complete-$size_mib ]]; then
  rm -rf "$model"; mkdir -p "$model"
  shard=$((size_mib / 4))
  for i in 1 2 3 4; do
    head -c $((shard << 20)) /dev/urandom > "$model/model-0000$i-of-00004.safetensors"
  done
  echo '{"model_type":"bench","hidden_size":4096}' > "$model/config.json"
  head -c 200000 /dev/urandom | base64 > "$model/tokenizer.json"
  echo '{"bos_token":"<s>"}' > "$model/tokenizer_config.json"
  touch "$model/.complete-$size_mib"
fi
total_bytes=$(find "$model" -type f ! -name '.complete-*' -printf '%s\n' | awk '{s+=$1} END {print s}')

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# nginx, unprivileged config on a free port, root = the model directory.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  sendfile on;
  tcp_nopush on;
  server {
    listen 127.0.0.1:$nginx_port;
    root $model;
  }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)

# The Hub test server, redirecting LFS files (>= 1 MiB) to nginx.
python3 -u "$root/tests/support/hub_server.py" --repo "org/bench=$model" --lfs-threshold 1048576 \
  --cdn-url "http://127.0.0.1:$nginx_port" > "$work/hub.out" 2>&1 &
pids+=($!)
for _ in $(seq 1200); do grep -q '^ready' "$work/hub.out" 2>/dev/null && break; sleep 0.1; done
hub_port=$(awk '/^ready/ {print $2}' "$work/hub.out")
[[ -n $hub_port ]] || { echo "hub server did not start"; cat "$work/hub.out"; exit 1; }
export HF_ENDPOINT=http://127.0.0.1:$hub_port
sleep 0.5
curl -sf "http://127.0.0.1:$nginx_port/config.json" >/dev/null || { echo "nginx did not start"; cat "$work/nginx/error.log"; exit 1; }

urls=$work/urls.txt
(cd "$model" && find . -type f ! -name '.complete-*' -printf '%P\n' | sort) |
  sed "s|^|http://127.0.0.1:$nginx_port/|" > "$urls"

# run NAME1 CMD1 [NAME2 CMD2 ...]: RUNS rounds, each running every arm once in
# turn (interleaved, so a machine that speeds up or slows down during the
# benchmark does not favour the arm measured first); $out is emptied and
# $prep run (untimed) before each. Prints each arm's median.
results=()
declare -A cpu_of=()
run() {
  local -a names=() cmds=()
  while (($# >= 2)); do names+=("$1"); cmds+=("$2"); shift 2; done
  local -A walls=() rss=() cpus=()
  local r k
  for r in $(seq "$runs"); do
    for k in "${!names[@]}"; do
      rm -rf "$out"; mkdir -p "$out"
      [[ -z ${prep:-} ]] || bash -c "$prep"
      sync
      /usr/bin/time -f '%e %M %U %S' -o "$work/time.txt" bash -c "${cmds[$k]}" > "$work/run.log" 2>&1 ||
        { echo "${names[$k]} failed:"; tail -5 "$work/run.log"; return 1; }
      read -r w m u s < "$work/time.txt"
      walls[$k]+="$w "; rss[$k]+="$m "; cpus[$k]+="$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}') "
    done
  done
  for k in "${!names[@]}"; do
    local med_w med_m med_c mbs
    med_w=$(printf '%s\n' ${walls[$k]} | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    med_m=$(printf '%s\n' ${rss[$k]} | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    med_c=$(printf '%s\n' ${cpus[$k]} | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    cpu_of["${names[$k]}"]=$med_c
    mbs=$(awk -v b="$total_bytes" -v w="$med_w" 'BEGIN {printf "%.0f", b / 1e6 / w}')
    results+=("$(printf '%-44s %8s %8s %8s %10s   (runs: %s)' "${names[$k]}" "$med_w" "$mbs" "$med_c" "$med_m" "${walls[$k]% }")")
    echo "${results[-1]}"
  done
}

echo "model: $total_bytes bytes in $(wc -l < "$urls") files; median of $runs runs"
printf '%-44s %8s %8s %8s %10s\n' "what" "wall s" "MB/s" "CPU s" "RSS KiB"
run "mc-engine download --jobs 8 (sha256 verified)" \
  "$engine --progress none download hf://org/bench $out --jobs 8" \
  "mc-engine download --jobs 4 (sha256 verified)" \
  "$engine --progress none download hf://org/bench $out --jobs 4" \
  "4 parallel curl (no verification)" \
  "cd $out && xargs -P4 -n1 curl -sf -O < $urls" \
  "aria2c -x8 -s8 (no verification)" \
  "aria2c -q -x8 -s8 -j4 --file-allocation=none --check-certificate=false -d $out -i $urls" \
  "curl each file in turn (no verification)" \
  "cd $out && xargs -n1 curl -sf -O < $urls" \
  "openssl dgst -sha256 over the files" \
  "cd $model && find . -type f ! -name '.complete-*' -print0 | xargs -0 openssl dgst -sha256 >/dev/null"
awk -v mc="${cpu_of[mc-engine download --jobs 4 (sha256 verified)]}" \
  -v curl="${cpu_of[4 parallel curl (no verification)]}" \
  -v sha="${cpu_of[openssl dgst -sha256 over the files]}" \
  'BEGIN {printf "download --jobs 4 CPU vs 4 curls + one SHA-256 pass: %.2f / (%.2f + %.2f) = %.2fx (target <= 1.1)\n", mc, curl, sha, mc / (curl + sha)}'
if [[ ${BUILDS:-1} == 1 ]] && command -v docker-registry >/dev/null; then
  reg_dir=$(mktemp -d /dev/shm/mc-dl-bench-reg-XXXXXX)
  reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $reg_dir}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$reg_port}
YML
  docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$reg_port/v2/" >/dev/null && break; sleep 0.1; done
  reg=127.0.0.1:$reg_port
  layout=/dev/shm/mc-dl-bench-layout
  prep="rm -rf $reg_dir/docker $layout"  # before each run, untimed: tmpfs is RAM
  # Every run pushes to a new repository (and starts from an empty layout), so
  # no run finds the layer already there.
  for comp in gzip none; do
    run "build hf:// docker:// ($comp, streamed)" \
      "$engine --progress none build hf://org/bench docker://$reg/s\$RANDOM\$RANDOM:b --base scratch --compression $comp" \
      "download, then build DIR docker:// ($comp)" \
      "$engine --progress none download hf://org/bench $out/m --jobs 8 && rm -rf $out/m/.mc-download && $engine --progress none build $out/m docker://$reg/d\$RANDOM\$RANDOM:b --base scratch --compression $comp"
  done
  run "build hf:// oci:tmpfs (none, streamed)" \
    "$engine --progress none build hf://org/bench oci:$layout:b --base scratch --compression none" \
    "download, then build DIR oci:tmpfs (none)" \
    "$engine --progress none download hf://org/bench $out/m --jobs 8 && rm -rf $out/m/.mc-download && $engine --progress none build $out/m oci:$layout:b --base scratch --compression none"
  prep=
  rm -rf "$layout" "$reg_dir"
else
  echo "(BUILDS=0 or no docker-registry: the build rows are skipped)"
fi
rm -rf "$out"
