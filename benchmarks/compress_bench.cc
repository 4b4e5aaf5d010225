// Shard compression throughput: Codec::CompressShard for gzip (ISA-L levels),
// zstd and none on 1 and N threads, over weight-like and random data, next to
// SHA-256 (the floor every layer pays twice: diff_id and digest).
//
//   compress_bench [--mib 256] [--threads N] [--runs 3]
//
// Prints one line per (data, codec, threads): median MB/s of raw input and the
// compressed/raw ratio. Data is generated in memory first (not timed).
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "oci/compress.h"
#include "oci/digest.h"

namespace {

using mc::oci::Bytes;
using mc::oci::Codec;
using mc::oci::Compression;
using mc::oci::kShardSize;

Bytes RandomData(size_t n) {
  std::mt19937_64 rng(1);
  Bytes b(n);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  return b;
}

// bf16 (round to nearest even) of N(0, 0.02), little-endian.
Bytes WeightData(size_t n) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  Bytes b(n);
  for (size_t i = 0; i + 1 < n; i += 2) {
    uint32_t bits = std::bit_cast<uint32_t>(normal(rng));
    bits += 0x7fff + ((bits >> 16) & 1);
    b[i] = std::byte(bits >> 16);
    b[i + 1] = std::byte(bits >> 24);
  }
  return b;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct RunResult {
  double seconds = 0;
  uint64_t compressed = 0;
};

// Compresses every shard once on `threads` threads; returns wall time and size.
RunResult CompressAll(const Codec& codec, const Bytes& data, int threads) {
  const size_t shards = (data.size() + kShardSize - 1) / kShardSize;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> total{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < shards;) {
        std::span<const std::byte> raw(data.data() + i * kShardSize,
                                       std::min(kShardSize, data.size() - i * kShardSize));
        auto out = codec.CompressShard(raw, i + 1 == shards);
        if (!out) {
          std::fprintf(stderr, "compress failed: %s\n", out.error().message.c_str());
          std::exit(1);
        }
        total += out->data.size();
      }
    });
  }
  for (auto& th : pool) th.join();
  return {Seconds(t0), total.load()};
}

void BenchCodec(const char* data_name, const Bytes& data, const char* label, Compression c,
                int level, int threads, int runs) {
  auto codec = Codec::Create(c, level);
  if (!codec) {
    std::fprintf(stderr, "%s\n", codec.error().message.c_str());
    std::exit(1);
  }
  CompressAll(**codec, data, threads);  // warm-up: thread-local buffers, page faults
  std::vector<double> secs;
  uint64_t compressed = 0;
  for (int r = 0; r < runs; ++r) {
    RunResult res = CompressAll(**codec, data, threads);
    secs.push_back(res.seconds);
    compressed = res.compressed;
  }
  const double mbps = static_cast<double>(data.size()) / 1e6 / Median(secs);
  std::printf("%-8s %-10s %2d thr  %9.1f MB/s  ratio %.3f\n", data_name, label, threads, mbps,
              static_cast<double>(compressed) / static_cast<double>(data.size()));
  std::fflush(stdout);
}

void BenchSha(const char* data_name, const Bytes& data, int runs) {
  std::vector<double> secs;
  for (int r = 0; r < runs + 1; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    mc::oci::Digester d;
    for (size_t pos = 0; pos < data.size(); pos += kShardSize) {
      d.Update(std::span(data).subspan(pos, std::min(kShardSize, data.size() - pos)));
    }
    volatile auto sink = d.Finish().hex().size();
    (void)sink;
    if (r > 0) secs.push_back(Seconds(t0));
  }
  const double mbps = static_cast<double>(data.size()) / 1e6 / Median(secs);
  std::printf("%-8s %-10s %2d thr  %9.1f MB/s\n", data_name, "sha256", 1, mbps);
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 256;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--mib")
      mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (flag == "--runs")
      runs = std::max(1, std::atoi(argv[i + 1]));
  }
  std::printf("compress_bench: %zu MiB per data set, shard %zu KiB, %d runs (median)\n", mib,
              kShardSize >> 10, runs);
  struct Config {
    const char* label;
    Compression c;
    int level;
  };
  const Config configs[] = {
      {"gzip-0", Compression::kGzip, 0}, {"gzip-1", Compression::kGzip, 1},
      {"gzip-2", Compression::kGzip, 2}, {"gzip-3", Compression::kGzip, 3},
      {"zstd-1", Compression::kZstd, 1}, {"zstd-3", Compression::kZstd, 3},
      {"none", Compression::kNone, -1},
  };
  const std::pair<const char*, Bytes> sets[] = {{"weights", WeightData(mib << 20)},
                                                {"random", RandomData(mib << 20)}};
  for (const auto& [name, data] : sets) {
    BenchSha(name, data, runs);
    for (const auto& cfg : configs) {
      for (int t : {1, threads}) {
        BenchCodec(name, data, cfg.label, cfg.c, cfg.level, t, runs);
        if (threads == 1) break;
      }
    }
  }
  return 0;
}
