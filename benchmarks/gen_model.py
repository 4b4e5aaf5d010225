#!/usr/bin/env python3
"""Generates a synthetic Hugging Face-style model directory for benchmarks.

    gen_model.py DIR --size 2G [--kind weights|random] [--shards 4] [--seed 1]

DIR gets `model-0000i-of-0000N.safetensors` shards (real safetensors framing:
8-byte little-endian header length, JSON header, raw tensor bytes),
`model.safetensors.index.json`, `config.json`, `generation_config.json` and a
~1 MiB `tokenizer.json`. --size is the total of the tensor bytes (suffixes
K, M, G, T are powers of 1024).

Tensor bytes (python3 stdlib only, ~2 GiB in 10-20 s):

  weights  bf16 values shaped like a real checkpoint: N(0, 0.02). A bf16 value
           (little-endian) is byte 0 = exponent lsb + 7 mantissa bits, byte 1 =
           sign + 7 exponent bits. Drawing a billion normals in Python is far too
           slow, so a pool W of 1 Mi true bf16 normals (random.gauss, rounded to
           nearest even) is generated once and tiled; each output chunk is
           W XOR (noise & 7f 80 7f 80 ...), i.e. the mantissa and sign bits are
           replaced with uniform random bits, which keeps the distribution
           (sign symmetric, mantissa nearly uniform within a binade) and its
           entropy (~12.5 bits per value, so deflate/zstd reach ~0.78) while the
           bytes never repeat, so no compressor can win by finding the tile.
  random   uniform random bytes (incompressible).

Noise: a stream made from two seeded random pools of coprime-ish sizes,
rotated by a fresh random offset per chunk and XORed together. XOR of two
independent uniform streams is uniform; repetition would need both pools to
realign at the same offset difference, which the random rotations make
vanishingly unlikely within any compressor window. Big-int XOR keeps it in C.
The same --seed gives the same bytes.
"""

import argparse
import json
import os
import random
import struct
import sys
import time

CHUNK = 4 << 20          # bytes produced per step
POOL_A = 16 << 20        # noise pool sizes (not multiples of each other's period)
POOL_B = (24 << 20) + 4 * 4099
WEIGHT_VALUES = 1 << 20  # bf16 values in the weight pool (2 MiB, tiled)
COLS = 4096              # tensor row width in values


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in units else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        return int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 512M, 2G") from None


def bf16_pool(rng, count):
    """`count` bf16 values of N(0, 0.02), little-endian, round to nearest even."""
    values = [rng.gauss(0.0, 0.02) for _ in range(count)]
    words = struct.unpack(f"<{count}I", struct.pack(f"<{count}f", *values))
    out = bytearray(2 * count)
    out[0::2] = bytes(((w + 0x7FFF + ((w >> 16) & 1)) >> 16) & 0xFF for w in words)
    out[1::2] = bytes(((w + 0x7FFF + ((w >> 16) & 1)) >> 24) & 0xFF for w in words)
    return bytes(out)


class Stream:
    """Endless chunks of tensor bytes of one kind."""

    def __init__(self, kind, seed):
        self.rng = random.Random(seed)
        self.pool_a = self.rng.randbytes(POOL_A)
        self.pool_b = self.rng.randbytes(POOL_B)
        self.pool_a += self.pool_a[:CHUNK]  # so a rotation is one slice
        self.pool_b += self.pool_b[:CHUNK]
        self.kind = kind
        if kind == "weights":
            w = bf16_pool(self.rng, WEIGHT_VALUES)
            tiled = (w * (CHUNK // len(w) + 1))[:CHUNK]
            self.base = int.from_bytes(tiled, "little")
            self.mask = int.from_bytes(b"\x7f\x80" * (CHUNK // 2), "little")

    def chunk(self):
        a = self.rng.randrange(POOL_A)
        b = self.rng.randrange(POOL_B)
        noise = int.from_bytes(self.pool_a[a : a + CHUNK], "little") ^ int.from_bytes(
            self.pool_b[b : b + CHUNK], "little"
        )
        if self.kind == "weights":
            noise = self.base ^ (noise & self.mask)
        return noise.to_bytes(CHUNK, "little")


def write_shard(path, tensors, stream, pending):
    """Writes one safetensors file; `tensors` is [(name, rows)]; returns leftover bytes."""
    header, offset = {}, 0
    for name, rows in tensors:
        size = rows * COLS * 2
        header[name] = {"dtype": "BF16", "shape": [rows, COLS], "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        left = offset
        while left > 0:
            if not pending:
                pending = stream.chunk()
            n = min(left, len(pending))
            f.write(pending[:n])
            pending = pending[n:]
            left -= n
    return pending


def plan(total, shards):
    """Splits `total` bytes of bf16 rows into shards of tensors of <= 64 MiB."""
    rows_total = max(1, total // (COLS * 2))
    per_shard = [rows_total // shards + (1 if i < rows_total % shards else 0) for i in range(shards)]
    max_rows = (64 << 20) // (COLS * 2)
    layout, layer = [], 0
    for rows in per_shard:
        tensors = []
        while rows > 0:
            r = min(rows, max_rows)
            kind = ("mlp.up_proj", "mlp.down_proj", "self_attn.q_proj", "self_attn.o_proj")[layer % 4]
            tensors.append((f"model.layers.{layer // 4}.{kind}.weight", r))
            rows -= r
            layer += 1
        layout.append(tensors)
    return layout


def write_side_files(out, layout, names, total, seed):
    weight_map = {t: names[i] for i, tensors in enumerate(layout) for t, _ in tensors}
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": COLS,
        "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": len(weight_map) // 4 + 1,
        "vocab_size": 32000, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5,
    }
    generation = {"bos_token_id": 1, "eos_token_id": 2, "do_sample": True, "temperature": 0.6, "top_p": 0.9}
    rng = random.Random(seed + 1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {f"\u2581{''.join(rng.choices(letters, k=rng.randint(2, 10)))}{i}": i for i in range(32000)}
    merges = [f"{a} {b}" for a, b in zip(list(vocab)[:30000:2], list(vocab)[1:30000:2])]
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": merges}}
    for name, obj in [("model.safetensors.index.json", index), ("config.json", config),
                      ("generation_config.json", generation), ("tokenizer.json", tokenizer)]:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--size", type=parse_size, default=parse_size("2G"))
    p.add_argument("--kind", choices=["weights", "random"], default="weights")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.shards < 1:
        p.error("--shards must be at least 1")
    start = time.monotonic()
    os.makedirs(args.dir, exist_ok=True)
    stream = Stream(args.kind, args.seed)
    layout = plan(args.size, args.shards)
    names = [f"model-{i + 1:05d}-of-{len(layout):05d}.safetensors" for i in range(len(layout))]
    pending = b""
    for name, tensors in zip(names, layout):
        pending = write_shard(os.path.join(args.dir, name), tensors, stream, pending)
    total = sum(rows * COLS * 2 for tensors in layout for _, rows in tensors)
    write_side_files(args.dir, layout, names, total, args.seed)
    print(f"gen_model: {args.dir}: {args.kind}, {total / 2**30:.2f} GiB in {len(layout)} shards, "
          f"{time.monotonic() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
