#!/usr/bin/env bash
# The main job on a local default: sets up a fresh Debian 12 machine (as root),
# builds mc-engine, starts two loopback registries (a "publish" one standing in
# for Quay and an internal "mirror" one), generates a small model, then:
#   build + push → mirror → publish-metadata.json, and prints the summary.
# Everything stays on this machine under ${MC_DEMO_DIR:-/tmp/mc-engine-demo}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
mc="$root/build/cmd/mc-engine"
work=${MC_DEMO_DIR:-/tmp/mc-engine-demo}
rm -rf "$work"
mkdir -p "$work/model" "$work/workspace"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_registry() {  # name → prints the port
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name/storage"
  cat > "$work/$name/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/$name/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
  docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break
    sleep 0.1
  done
  echo "$port"
}

echo "== starting two loopback registries"
pub=$(start_registry publish)
mir=$(start_registry mirror)
echo "publish registry: 127.0.0.1:$pub   mirror registry: 127.0.0.1:$mir"

echo "== generating a small model in $work/model"
python3 - "$work/model" <<'PY'
import json, os, random, struct, sys
d = sys.argv[1]
rng = random.Random(42)
# bf16 weights from a normal distribution (sigma 0.02), like a real checkpoint.
vals = [rng.gauss(0.0, 0.02) for _ in range(1 << 16)]
block = b"".join(struct.pack("<f", v)[2:] for v in vals)
for i in range(2):
    with open(os.path.join(d, f"model-0000{i+1}-of-00002.safetensors"), "wb") as f:
        header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
        f.write(struct.pack("<Q", len(header)) + header)
        for j in range(64):
            f.write(bytes(reversed(block)) if (i + j) % 2 else block)
json.dump({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}, open(os.path.join(d, "config.json"), "w"))
json.dump({"version": "1.0"}, open(os.path.join(d, "tokenizer.json"), "w"))
PY
du -sh "$work/model"

meta="$work/workspace/.pipeline-metadata/publish-metadata.json"
image="127.0.0.1:$pub/models/demo:v1"
mirror="127.0.0.1:$mir/mirror/demo:v1"

echo "== build + push: $image"
"$mc" --progress lines build "$work/model" "docker://$image" \
  --digestfile "$work/digest" --metadata "$meta"
echo "== mirror: $mirror (source read from the metadata)"
"$mc" --progress lines copy --metadata "$meta" "docker://$mirror" --digestfile "$work/mirror-digest"

echo "== verify with skopeo"
skopeo inspect --tls-verify=false "docker://$mirror" | jq '{Name, Digest, Layers}'

echo "== summary"
echo "image:  $image@$(cat "$work/digest")"
echo "mirror: $mirror@$(cat "$work/mirror-digest")"
ls -ld "$(dirname "$meta")" "$meta"
cat "$meta"
echo
echo "== done"
