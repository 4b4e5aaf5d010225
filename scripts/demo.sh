#!/usr/bin/env bash
# The main job on a local default: sets up a fresh Debian 12 machine (as root),
# builds mc-engine, generates a small model and packages it as a modelcar image.
# Everything stays on this machine under ${MC_DEMO_DIR:-/tmp/mc-engine-demo}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
mc="$root/build/cmd/mc-engine"
work=${MC_DEMO_DIR:-/tmp/mc-engine-demo}
rm -rf "$work"
mkdir -p "$work/model"

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

echo "== building a modelcar image into an OCI layout"
"$mc" --progress lines build "$work/model" "oci:$work/layout:latest" --digestfile "$work/digest"
echo "manifest digest: $(cat "$work/digest")"

echo "== inspecting it with mc-engine and skopeo"
"$mc" inspect "oci:$work/layout:latest"
skopeo inspect "oci:$work/layout:latest" | jq '{Digest, Layers, Architecture, Os}'
echo "== done: $work/layout"
