// Tar floor: how fast ScanDirectory + TarWriter turn a model directory into a
// tar stream, with nothing downstream (NullWriter) or only the diff_id hash
// (--sha256). Compare with `tar -cf - DIR | cat >/dev/null` and
// `tar -cf - DIR | openssl dgst -sha256` on a warm page cache.
//
// Usage: tar_bench DIR [--runs N] [--sha256]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/io.h"
#include "oci/tar.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Counts the Write calls (to see that file data reaches the Writer in whole
// read blocks, not re-blocked by libarchive) and forwards them.
class CountingWriter final : public mc::oci::Writer {
 public:
  explicit CountingWriter(mc::oci::Writer& next) : next_(next) {}
  mc::oci::Result<void> Write(std::span<const std::byte> data) override {
    ++calls_;
    return next_.Write(data);
  }
  uint64_t calls() const { return calls_; }

 private:
  mc::oci::Writer& next_;
  uint64_t calls_ = 0;
};

// One tar of `entries` into `out`; returns the tar size or exits on error.
uint64_t TarOnce(const std::vector<mc::oci::TarEntry>& entries, mc::oci::Writer& out) {
  mc::oci::TarWriter tar(out, mc::oci::TarOptions{});
  for (const auto& e : entries) {
    if (auto r = tar.Add(e); !r) {
      std::fprintf(stderr, "tar_bench: %s\n", r.error().message.c_str());
      std::exit(1);
    }
  }
  if (auto r = tar.Finish(); !r) {
    std::fprintf(stderr, "tar_bench: %s\n", r.error().message.c_str());
    std::exit(1);
  }
  return tar.bytes_written();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--runs N] [--sha256]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int runs = 3;
  bool sha = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--sha256") {
      sha = true;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  auto t0 = Clock::now();
  auto entries = mc::oci::ScanDirectory(dir, mc::oci::ScanOptions{});
  auto t1 = Clock::now();
  if (!entries) {
    std::fprintf(stderr, "tar_bench: %s\n", entries.error().message.c_str());
    return 1;
  }
  std::printf("scan: %zu entries in %.3f s\n", entries->size(), Seconds(t0, t1));
  std::vector<double> rates;
  for (int i = 0; i < runs; ++i) {
    mc::oci::NullWriter null;
    mc::oci::Digester digester;
    auto start = Clock::now();
    CountingWriter counter(sha ? static_cast<mc::oci::Writer&>(digester) : null);
    uint64_t bytes = TarOnce(*entries, counter);
    double s = Seconds(start, Clock::now());
    rates.push_back(static_cast<double>(bytes) / s / 1e6);
    std::printf("run %d: %llu bytes in %.3f s = %.0f MB/s, %llu writes%s%s\n", i + 1,
                static_cast<unsigned long long>(bytes), s, rates.back(),
                static_cast<unsigned long long>(counter.calls()), sha ? "  " : "",
                sha ? digester.Finish().String().c_str() : "");
  }
  std::sort(rates.begin(), rates.end());
  std::printf("median: %.0f MB/s (%s)\n", rates[rates.size() / 2],
              sha ? "tar + sha256" : "tar into NullWriter");
  return 0;
}
