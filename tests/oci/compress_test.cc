#include "oci/compress.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include "tests/support/paths.h"

namespace mc::oci {
namespace {

using mc::testing::Quote;
using mc::testing::Run;
using mc::testing::TempDir;
using mc::testing::WriteFile;

// ---- test data ------------------------------------------------------------

std::string RandomData(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

// bf16 little-endian of N(0, 0.02) values (round to nearest even), like the
// tensors of a real checkpoint: compressible by ~20%, not by repetition.
std::string WeightData(size_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::string s(n, '\0');
  for (size_t i = 0; i + 1 < n; i += 2) {
    uint32_t bits = std::bit_cast<uint32_t>(normal(rng));
    bits += 0x7fff + ((bits >> 16) & 1);
    s[i] = static_cast<char>(bits >> 16);
    s[i + 1] = static_cast<char>(bits >> 24);
  }
  if (n % 2) s[n - 1] = 0x3c;
  return s;
}

// Prefixes of one cached buffer per kind: generating bf16 normals is the
// slowest part of these tests.
std::string MakeData(const char* kind, size_t n) {
  static const size_t kMax = 2 * kShardSize + 1;
  static const std::string random = RandomData(kMax, 42);
  static const std::string weights = WeightData(kMax, 42);
  static const std::string text = [] {
    std::string s;
    for (size_t i = 0; s.size() < kMax; ++i) s += "{\"layer\": " + std::to_string(i % 977) + "}\n";
    return s;
  }();
  const std::string_view k = kind;
  const std::string& src = k == "random" ? random : k == "weights" ? weights : text;
  return src.substr(0, std::min(n, kMax));
}

std::span<const std::byte> Span(const std::string& s) { return AsBytes(s); }

std::unique_ptr<Codec> MakeCodec(Compression c, int level = -1) {
  auto codec = Codec::Create(c, level);
  EXPECT_TRUE(codec) << (codec ? "" : codec.error().message);
  return codec ? std::move(*codec) : nullptr;
}

// Splits data into shards of kShardSize. The last shard carries `last`; with
// `empty_last`, one more, empty, shard ends the stream (what a streaming
// producer does when the input ends exactly on a shard boundary).
std::vector<std::span<const std::byte>> Shards(const std::string& data, bool empty_last) {
  std::vector<std::span<const std::byte>> shards;
  auto all = Span(data);
  for (size_t pos = 0; pos < all.size(); pos += kShardSize) {
    shards.push_back(all.subspan(pos, std::min(kShardSize, all.size() - pos)));
  }
  if (empty_last || shards.empty()) shards.push_back({});
  return shards;
}

std::string Append(std::string s, const Bytes& b) {
  s.append(AsString(b));
  return s;
}

// Frames compressed shards in index order, as the pipeline's reorder stage does.
std::string Frame(const Codec& codec, const std::vector<ShardOutput>& outs) {
  auto framer = codec.NewFramer();
  std::string s = Append("", framer->Header());
  for (const auto& o : outs) {
    framer->Add(o);
    s = Append(std::move(s), o.data);
  }
  return Append(std::move(s), framer->Trailer());
}

// Compresses the shards on `threads` threads that take shard indices in
// `order` (so they finish in a different order each time), then frames them.
std::string CompressParallel(const Codec& codec, const std::string& data, int threads,
                             const std::vector<size_t>& order, bool empty_last = false) {
  auto shards = Shards(data, empty_last);
  std::vector<ShardOutput> outs(shards.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t k; (k = next.fetch_add(1)) < order.size();) {
        const size_t i = order[k];
        auto r = codec.CompressShard(shards[i], i + 1 == shards.size());
        if (!r) {
          failed = true;
          continue;
        }
        outs[i] = std::move(*r);
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_FALSE(failed);
  return Frame(codec, outs);
}

std::vector<size_t> Forward(size_t n) {
  std::vector<size_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::string Compress(const Codec& codec, const std::string& data, bool empty_last = false) {
  return CompressParallel(codec, data, 1, Forward(Shards(data, empty_last).size()), empty_last);
}

std::string Decompress(const std::string& compressed, Compression c) {
  auto r = NewDecompressingReader(std::make_unique<StringReader>(compressed), c);
  EXPECT_TRUE(r);
  if (!r) return "<no reader>";
  auto all = ReadAll(**r, size_t{1} << 30);
  EXPECT_TRUE(all) << (all ? "" : all.error().message);
  return all ? *all : "<error: " + all.error().message + ">";
}

Result<std::string> TryDecompress(const std::string& compressed, Compression c) {
  MC_ASSIGN_OR_RETURN(auto r,
                      NewDecompressingReader(std::make_unique<StringReader>(compressed), c));
  return ReadAll(*r, size_t{1} << 30);
}

// zlib's one-shot inflate of a gzip member, independent of our reader.
std::string ZlibGunzip(const std::string& gz, size_t expected_size) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
  std::string out(expected_size + 1, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  EXPECT_EQ(zs.avail_in, 0u) << "bytes after the gzip member";
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

// Debian's interpreter when present: a version manager's shim costs ~0.4 s per start.
std::string Python() {
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

// The shell tools that must accept the stream, and decompress it to `raw`.
void CheckWithTools(const std::string& compressed, const std::string& raw, Compression c) {
  TempDir dir;
  const std::string file = (dir / "stream").string();
  const std::string orig = (dir / "orig").string();
  WriteFile(file, compressed);
  WriteFile(orig, raw);
  std::string out;
  if (c == Compression::kGzip) {
    EXPECT_EQ(Run("gzip -t < " + Quote(file), &out), 0) << out;
    EXPECT_EQ(Run("pigz -t < " + Quote(file), &out), 0) << out;
    EXPECT_EQ(Run("gzip -dc < " + Quote(file) + " | cmp - " + Quote(orig), &out), 0) << out;
    EXPECT_EQ(Run(Python() +
                      " -c 'import gzip,sys; sys.stdout.buffer.write(gzip.decompress("
                      "open(sys.argv[1],\"rb\").read()))' " +
                      Quote(file) + " | cmp - " + Quote(orig),
                  &out),
              0)
        << out;
  } else if (c == Compression::kZstd) {
    EXPECT_EQ(Run("zstd -q -t < " + Quote(file), &out), 0) << out;
    EXPECT_EQ(Run("zstd -q -dc < " + Quote(file) + " | cmp - " + Quote(orig), &out), 0) << out;
  } else {
    EXPECT_EQ(Run("cmp " + Quote(file) + " " + Quote(orig), &out), 0) << out;
  }
}

size_t StoredSize(size_t n) { return n + 5 * std::max<size_t>(1, (n + 65534) / 65535); }

// ---- names and levels -----------------------------------------------------

TEST(CompressTest, NamesAndMediaTypes) {
  for (auto c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    auto parsed = ParseCompression(CompressionName(c));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, c);
  }
  EXPECT_EQ(LayerMediaType(Compression::kGzip), "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(LayerMediaType(Compression::kZstd), "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(LayerMediaType(Compression::kNone), "application/vnd.oci.image.layer.v1.tar");
  for (const char* bad : {"", "gz", "GZIP", "xz", "zstd "}) {
    auto r = ParseCompression(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message.find("gzip, zstd or none"), std::string::npos);
  }
}

TEST(CompressTest, LevelRanges) {
  for (int level = -1; level <= 9; ++level) {
    EXPECT_TRUE(Codec::Create(Compression::kGzip, level)) << level;
  }
  for (int level : {-1, 0, 1, 3, 19}) EXPECT_TRUE(Codec::Create(Compression::kZstd, level));
  for (int level : {-2, 10, 100}) {
    auto r = Codec::Create(Compression::kGzip, level);
    ASSERT_FALSE(r) << level;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  }
  for (int level : {-5, 20, 22}) {
    auto r = Codec::Create(Compression::kZstd, level);
    ASSERT_FALSE(r) << level;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  }
  auto none = Codec::Create(Compression::kNone, 7);
  ASSERT_TRUE(none);
  EXPECT_EQ((*none)->kind(), Compression::kNone);
  // Levels above ISA-L's 3 mean 3: same bytes.
  const std::string data = MakeData("weights", 1 << 20);
  EXPECT_EQ(Compress(*MakeCodec(Compression::kGzip, 3), data),
            Compress(*MakeCodec(Compression::kGzip, 9), data));
  EXPECT_EQ(Compress(*MakeCodec(Compression::kGzip, -1), data),
            Compress(*MakeCodec(Compression::kGzip, 1), data));
}

// ---- gzip framing ---------------------------------------------------------

TEST(CompressTest, GzipHeaderAndTrailer) {
  auto codec = MakeCodec(Compression::kGzip);
  const std::string data = MakeData("weights", kShardSize + 12345);
  const std::string gz = Compress(*codec, data);
  ASSERT_GT(gz.size(), 18u);
  const std::string header = gz.substr(0, 10);
  EXPECT_EQ(header, std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10));
  uint32_t crc = 0, isize = 0;
  std::memcpy(&crc, gz.data() + gz.size() - 8, 4);  // little-endian host
  std::memcpy(&isize, gz.data() + gz.size() - 4, 4);
  EXPECT_EQ(crc, crc32(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
  EXPECT_EQ(isize, data.size());
}

TEST(CompressTest, ShardCrcMatchesZlib) {
  auto codec = MakeCodec(Compression::kGzip);
  for (size_t n : {size_t{0}, size_t{1}, size_t{4095}, size_t{100000}}) {
    const std::string data = RandomData(n, n);
    auto out = codec->CompressShard(Span(data), false);
    ASSERT_TRUE(out);
    EXPECT_EQ(out->raw_size, n);
    EXPECT_EQ(out->crc32, crc32(0, reinterpret_cast<const Bytef*>(data.data()), n)) << n;
  }
}

TEST(CompressTest, IsizeIsSizeModulo2To32) {
  // Framer arithmetic only: 1.5 shards of 3 GiB claimed sizes would be too big
  // to compress here, so feed the framer ShardOutputs with known CRCs.
  auto codec = MakeCodec(Compression::kGzip);
  auto framer = codec->NewFramer();
  ShardOutput a;
  a.raw_size = (uint64_t{3} << 30);
  ShardOutput b;
  b.raw_size = (uint64_t{2} << 30) + 5;
  framer->Add(a);
  framer->Add(b);
  Bytes t = framer->Trailer();
  ASSERT_EQ(t.size(), 8u);
  uint32_t isize = 0;
  std::memcpy(&isize, t.data() + 4, 4);
  EXPECT_EQ(isize, static_cast<uint32_t>((uint64_t{5} << 30) + 5));
}

TEST(CompressTest, EmptyInputIsAValidStream) {
  for (auto c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    SCOPED_TRACE(CompressionName(c));
    auto codec = MakeCodec(c);
    const std::string out = Compress(*codec, "");
    if (c == Compression::kGzip) {
      // header, one empty final stored block, CRC 0, ISIZE 0
      EXPECT_EQ(out, std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
                                 "\x01\x00\x00\xff\xff"
                                 "\x00\x00\x00\x00\x00\x00\x00\x00",
                                 23));
    }
    if (c == Compression::kNone) {
      EXPECT_EQ(out, "");
    }
    if (c != Compression::kNone) {
      EXPECT_EQ(Decompress(out, c), "");
      CheckWithTools(out, "", c);
    }
  }
  // A gzip framer that saw no shard at all still closes the stream.
  auto codec = MakeCodec(Compression::kGzip);
  const std::string bare = Frame(*codec, {});
  EXPECT_EQ(Decompress(bare, Compression::kGzip), "");
  CheckWithTools(bare, "", Compression::kGzip);
}

// ---- round trips ------------------------------------------------------------

struct RoundTripCase {
  Compression c;
  int level;
  const char* kind;  // "weights" | "random" | "text"
  size_t size;
  bool empty_last;
};

class CompressRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(CompressRoundTrip, DecompressesToTheInput) {
  const auto& p = GetParam();
  auto codec = MakeCodec(p.c, p.level);
  const std::string data = MakeData(p.kind, p.size);
  const std::string out = Compress(*codec, data, p.empty_last);
  EXPECT_EQ(Decompress(out, p.c), data);
  if (p.c == Compression::kGzip) {
    EXPECT_EQ(ZlibGunzip(out, data.size()), data);
  }
  if (p.c == Compression::kNone) {
    EXPECT_EQ(out, data);
  }
  CheckWithTools(out, data, p.c);
}

std::vector<RoundTripCase> RoundTripCases() {
  std::vector<RoundTripCase> cases;
  const size_t sizes[] = {1, 1000, kShardSize, 2 * kShardSize, 2 * kShardSize + 1};
  for (auto c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    for (const char* kind : {"weights", "random", "text"}) {
      for (size_t n : sizes) cases.push_back({c, -1, kind, n, false});
      cases.push_back({c, -1, kind, 2 * kShardSize, true});  // empty last shard
    }
  }
  for (int level : {0, 1, 2, 3})
    cases.push_back({Compression::kGzip, level, "weights", kShardSize + 7, false});
  for (int level : {1, 19})
    cases.push_back({Compression::kZstd, level, "text", kShardSize + 7, false});
  return cases;
}

std::string CaseName(const ::testing::TestParamInfo<RoundTripCase>& info) {
  const auto& p = info.param;
  std::string level = p.level < 0 ? "default" : "L" + std::to_string(p.level);
  return std::string(CompressionName(p.c)) + "_" + level + "_" + p.kind + "_" +
         std::to_string(p.size) + (p.empty_last ? "_emptylast" : "");
}

INSTANTIATE_TEST_SUITE_P(All, CompressRoundTrip, ::testing::ValuesIn(RoundTripCases()), CaseName);

// ---- determinism ------------------------------------------------------------

TEST(CompressTest, SameBytesForAnyThreadCountAndCompletionOrder) {
  // 5 full shards and a tail; weights in some shards, random bytes in others,
  // so both deflate and stored shards are in the stream.
  std::string data = MakeData("weights", 2 * kShardSize) + MakeData("random", 2 * kShardSize) +
                     MakeData("weights", kShardSize + 12345);
  const size_t n = Shards(data, false).size();
  std::vector<size_t> reverse = Forward(n);
  std::reverse(reverse.begin(), reverse.end());
  std::vector<size_t> shuffled = Forward(n);
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(99));
  for (auto c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    SCOPED_TRACE(CompressionName(c));
    auto codec = MakeCodec(c);
    const std::string reference = CompressParallel(*codec, data, 1, Forward(n));
    for (int threads : {1, 2, 8}) {
      for (const auto* order : {&reverse, &shuffled}) {
        EXPECT_EQ(CompressParallel(*codec, data, threads, *order), reference)
            << threads << " threads";
      }
    }
    EXPECT_EQ(Decompress(reference, c), data);
  }
}

// ---- stored blocks and compression ------------------------------------------

TEST(CompressTest, IncompressibleShardsAreStoredBlocks) {
  auto codec = MakeCodec(Compression::kGzip);
  const std::string data = MakeData("random", 2 * kShardSize + 1);
  auto first = codec->CompressShard(Span(data).first(kShardSize), false);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->data.size(), StoredSize(kShardSize));
  EXPECT_EQ(first->data[0], std::byte{0});  // BFINAL 0, BTYPE 00
  EXPECT_EQ(std::memcmp(first->data.data() + 5, data.data(), 65535), 0);
  auto tail = codec->CompressShard(Span(data).last(1), true);
  ASSERT_TRUE(tail);
  EXPECT_EQ(AsString(tail->data), std::string("\x01\x01\x00\xfe\xff", 5) + data.back());

  const std::string gz = Compress(*codec, data);
  EXPECT_EQ(gz.size(), 10 + 2 * StoredSize(kShardSize) + StoredSize(1) + 8);
  EXPECT_EQ(ZlibGunzip(gz, data.size()), data);
}

TEST(CompressTest, WeightsActuallyCompress) {
  const std::string data = MakeData("weights", 2 * kShardSize);
  for (auto c : {Compression::kGzip, Compression::kZstd}) {
    auto codec = MakeCodec(c);
    auto shard = codec->CompressShard(Span(data).first(kShardSize), false);
    ASSERT_TRUE(shard);
    // bf16 of N(0, 0.02) carries ~12.5 bits of entropy per 16: expect < 90%.
    EXPECT_LT(shard->data.size(), kShardSize * 9 / 10) << CompressionName(c);
  }
  // A non-last gzip shard ends with the empty stored block of a full flush.
  auto gz = MakeCodec(Compression::kGzip)->CompressShard(Span(data).first(kShardSize), false);
  ASSERT_TRUE(gz);
  ASSERT_GE(gz->data.size(), 5u);
  EXPECT_EQ(AsString(std::span(gz->data).last(4)), std::string("\x00\x00\xff\xff", 4));
}

TEST(CompressTest, ZstdFramesCarryContentSizeAndChecksum) {
  auto codec = MakeCodec(Compression::kZstd);
  const std::string data = MakeData("weights", 300000);
  auto shard = codec->CompressShard(Span(data), false);
  ASSERT_TRUE(shard);
  EXPECT_EQ(ZSTD_getFrameContentSize(shard->data.data(), shard->data.size()), data.size());
  ASSERT_GT(shard->data.size(), 5u);
  const auto fhd = static_cast<uint8_t>(shard->data[4]);  // Frame_Header_Descriptor
  EXPECT_TRUE(fhd & 0x04) << "Content_Checksum_flag";
  auto empty = codec->CompressShard({}, true);
  ASSERT_TRUE(empty);
  EXPECT_EQ(ZSTD_getFrameContentSize(empty->data.data(), empty->data.size()), 0u);
}

// ---- decompressing reader ---------------------------------------------------

TEST(CompressTest, ReaderAcceptsMultiMemberGzip) {
  TempDir dir;
  WriteFile(dir / "a", "hello ");
  WriteFile(dir / "b", "world");
  std::string gz;
  ASSERT_EQ(mc::testing::Run("cd " + Quote(dir.path().string()) + " && gzip -c a && gzip -c b", &gz,
                             false),
            0);
  EXPECT_EQ(Decompress(gz, Compression::kGzip), "hello world");
}

TEST(CompressTest, ReaderRejectsDamagedStreams) {
  const std::string data = MakeData("weights", kShardSize + 100);
  for (auto c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(CompressionName(c));
    const std::string good = Compress(*MakeCodec(c), data);
    std::string flipped = good;
    flipped[flipped.size() / 2] ^= 0x55;
    const std::string bad[] = {
        "",                               // empty
        good.substr(0, good.size() - 3),  // truncated
        good.substr(0, good.size() / 2),  // truncated mid-stream
        good + "garbage",                 // trailing bytes
        flipped,                          // corrupt
    };
    for (const auto& b : bad) {
      auto r = TryDecompress(b, c);
      ASSERT_FALSE(r) << b.size();
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput) << r.error().message;
    }
  }
}

TEST(CompressTest, ReaderWorksWithSmallReads) {
  const std::string data = MakeData("text", 300000);
  for (auto c : {Compression::kGzip, Compression::kZstd}) {
    const std::string out = Compress(*MakeCodec(c), data);
    auto r = NewDecompressingReader(std::make_unique<StringReader>(out), c);
    ASSERT_TRUE(r);
    std::string got;
    std::byte buf[7];
    while (true) {
      auto n = (*r)->Read(buf);
      ASSERT_TRUE(n) << n.error().message;
      if (*n == 0) break;
      got.append(AsString(std::span(buf, *n)));
    }
    EXPECT_EQ(got, data) << CompressionName(c);
  }
}

}  // namespace
}  // namespace mc::oci
