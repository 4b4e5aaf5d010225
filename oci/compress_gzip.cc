// Parallel gzip: one standard gzip member out of independently compressed shards.
//
// A gzip member (RFC 1952) is a 10-byte header, one DEFLATE stream (RFC 1951)
// and an 8-byte trailer holding the CRC-32 and the size mod 2^32 of the
// uncompressed data. A DEFLATE stream is a sequence of blocks; only the last
// has BFINAL set, and blocks need not be byte aligned. pigz (and mold's
// lib/compress.cc) parallelise it like this, and so do we:
//
//   * Each shard is compressed on its own, from an empty window, into raw
//     DEFLATE. A shard that is not the last ends with a full flush: ISA-L closes
//     the current block and appends an empty stored block (00 00 00 ff ff), so
//     the shard's output ends on a byte boundary with BFINAL clear. The last
//     shard ends with a BFINAL block. Concatenating the outputs in order is
//     therefore one valid DEFLATE stream.
//   * Each shard's CRC-32 is computed alongside; the framer folds them with
//     zlib's crc32_combine() (which needs only the length of the right-hand
//     part), so the trailer is exact without ever seeing the data in order.
//   * A shard that does not get smaller (random bytes, already-compressed
//     tensors) is emitted as stored blocks (RFC 1951 3.2.4: byte aligned
//     LEN/NLEN + raw bytes, at most 65535 bytes each). The decision depends only
//     on the shard's bytes, so the output stays deterministic, and the output
//     size of a shard never exceeds raw + 5 bytes per 64 KiB. To make random
//     data cheap, four 16 KiB probes spread over the shard are deflated first;
//     if none of them shrinks, the shard is stored without a full pass (a
//     shard whose probes all miss its compressible parts is stored too: a
//     small loss in ratio, never in correctness or determinism).
//
// Why shards start with an empty window: the output must not depend on how
// many threads run. Priming each shard with the previous shard's last 32 KiB
// (pigz's default) would gain ~1% on text and nothing on weights, and would tie
// shard i to shard i-1's raw bytes; independent shards keep the pipeline simple.
//
// Determinism: the output depends on the shard bytes, the ISA-L level, the
// level-buffer size (fixed per level here) and the ISA-L version. ISA-L picks
// an implementation per CPU at run time (SSE/AVX2/AVX-512); builds on other
// CPUs may produce different (equally valid) bytes, so digests are
// reproducible per machine type and library version, like any gzip.
//
// The header is fixed: 1f 8b, CM 8, no flags (no FNAME, FCOMMENT, FEXTRA),
// MTIME 0, XFL 0, OS 255 ("unknown", as Go's compress/gzip writes).
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <optional>
#include <vector>

#include "oci/compress.h"
#include "oci/compress_internal.h"

namespace mc::oci::compress_internal {
namespace {

constexpr size_t kMaxStoredBlock = 65535;
constexpr size_t kStoredBlockOverhead = 5;  // 1 header byte (byte aligned) + LEN + NLEN

// Level-buffer size per ISA-L level. Part of the output format: the ICF buffer
// size decides where ISA-L ends its blocks.
constexpr std::array<uint32_t, 4> kLevelBufSize = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                                   ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
constexpr uint32_t kMaxLevelBufSize = std::max(
    {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT});

// Per-thread ISA-L state: the stream (~100 KiB of window and hash table), the
// level buffer and a small output buffer for the probes. Reused across shards
// so a 4 MiB shard costs no allocation; the shard itself is deflated straight
// into the caller's buffer.
struct IsalScratch {
  isal_zstream stream;
  std::vector<uint8_t> level_buf = std::vector<uint8_t>(kMaxLevelBufSize);
  std::vector<uint8_t> probe_out;
};

IsalScratch& ThreadScratch() {
  thread_local std::unique_ptr<IsalScratch> scratch = std::make_unique<IsalScratch>();
  return *scratch;
}

// Raw DEFLATE of `raw` into `dst` (at least raw.size() bytes): the output
// size, or nullopt when the result would not be smaller than `raw` (the
// caller then stores the shard).
Result<std::optional<size_t>> Deflate(std::span<const uint8_t> raw, bool last, int level,
                                      uint8_t* dst) {
  IsalScratch& s = ThreadScratch();
  isal_zstream& z = s.stream;
  isal_deflate_init(&z);
  z.level = static_cast<uint32_t>(level);
  z.level_buf = level == 0 ? nullptr : s.level_buf.data();
  z.level_buf_size = kLevelBufSize[level];
  z.gzip_flag = IGZIP_DEFLATE;
  z.flush = last ? NO_FLUSH : FULL_FLUSH;
  z.end_of_stream = last ? 1 : 0;
  z.next_in = const_cast<uint8_t*>(raw.data());  // ISA-L does not write its input
  z.avail_in = static_cast<uint32_t>(raw.size());
  z.next_out = dst;
  z.avail_out = static_cast<uint32_t>(raw.size());  // anything larger is not worth keeping
  int rc = isal_deflate(&z);
  if (rc != COMP_OK) {
    return Fail(ErrorCode::kInternal, "gzip: ISA-L isal_deflate failed with code " +
                                          std::to_string(rc) + " at level " +
                                          std::to_string(level));
  }
  // Out of output space first means "not smaller": the stream is left unfinished.
  const bool finished =
      z.avail_in == 0 && z.avail_out > 0 &&
      (last ? z.internal_state.state == ZSTATE_END : z.internal_state.state == ZSTATE_NEW_HDR);
  if (!finished) return std::nullopt;
  return std::optional<size_t>(z.total_out);
}

// Probes: kProbes windows of kProbeSize bytes spread over a large shard. When
// none of them gets smaller on its own, the shard is stored without trying the
// whole of it (random bytes would otherwise cost a full deflate pass to learn
// that). Deterministic: the decision depends only on the shard's bytes.
constexpr size_t kProbes = 4;
constexpr size_t kProbeSize = 16 << 10;

Result<bool> WorthDeflating(std::span<const uint8_t> raw, int level) {
  if (raw.empty()) return false;
  if (raw.size() < 4 * kProbes * kProbeSize) return true;  // small: just try
  const size_t stride = raw.size() / kProbes;
  std::vector<uint8_t>& out = ThreadScratch().probe_out;
  if (out.size() < kProbeSize) out.resize(kProbeSize);
  for (size_t i = 0; i < kProbes; ++i) {
    MC_ASSIGN_OR_RETURN(auto probe,
                        Deflate(raw.subspan(i * stride, kProbeSize), true, level, out.data()));
    if (probe) return true;
  }
  return false;
}

size_t StoredBlocks(size_t raw_size, bool last) {
  size_t blocks = (raw_size + kMaxStoredBlock - 1) / kMaxStoredBlock;
  return blocks == 0 && last ? 1 : blocks;
}

// The size of `raw_size` bytes as stored blocks.
size_t StoredSize(size_t raw_size, bool last) {
  return raw_size + StoredBlocks(raw_size, last) * kStoredBlockOverhead;
}

// `raw` as stored blocks into `dst` (StoredSize bytes); the final one has
// BFINAL set when `last`. An empty last shard is one empty final stored
// block; an empty other shard is nothing.
void Stored(std::span<const uint8_t> raw, bool last, uint8_t* dst) {
  const size_t blocks = StoredBlocks(raw.size(), last);
  uint8_t* p = dst;
  size_t pos = 0;
  for (size_t b = 0; b < blocks; ++b) {
    const size_t n = std::min(kMaxStoredBlock, raw.size() - pos);
    *p++ = (last && b + 1 == blocks) ? 1 : 0;  // BFINAL, BTYPE 00, padding to the byte
    p[0] = static_cast<uint8_t>(n);
    p[1] = static_cast<uint8_t>(n >> 8);
    p[2] = static_cast<uint8_t>(~n);
    p[3] = static_cast<uint8_t>(~n >> 8);
    p += 4;
    if (n > 0) std::memcpy(p, raw.data() + pos, n);
    p += n;
    pos += n;
  }
}

Bytes Stored(std::span<const uint8_t> raw, bool last) {
  Bytes out(StoredSize(raw.size(), last));
  Stored(raw, last, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

void PutLe32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

class GzipFramer final : public Framer {
 public:
  Bytes Header() override {
    constexpr uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    return ToBytes(kHeader);
  }
  void Add(const ShardOutput& shard) override {
    crc_ = static_cast<uint32_t>(
        crc32_combine(crc_, shard.crc32, static_cast<z_off_t>(shard.raw_size)));
    size_ += shard.raw_size;
    ++shards_;
  }
  // With no shard at all, the trailer carries an empty final block so that
  // Header() + Trailer() is still a valid (empty) gzip member.
  Bytes Trailer() override {
    Bytes out = shards_ == 0 ? Stored({}, true) : Bytes();
    PutLe32(out, crc_);
    PutLe32(out, static_cast<uint32_t>(size_));  // ISIZE: size mod 2^32
    return out;
  }

 private:
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
  uint64_t shards_ = 0;
};

class GzipCodec final : public Codec {
 public:
  explicit GzipCodec(int isal_level) : level_(isal_level) {}
  Compression kind() const override { return Compression::kGzip; }
  std::unique_ptr<Framer> NewFramer() const override { return std::make_unique<GzipFramer>(); }

  size_t MaxOutputSize(size_t raw_size) const override { return StoredSize(raw_size, true); }

  Result<ShardOutput> CompressShardInto(std::span<const std::byte> raw, bool last,
                                        Buffer& out) const override {
    if (raw.size() > UINT32_MAX) {
      return Fail(ErrorCode::kInternal, "gzip: shard of " + std::to_string(raw.size()) +
                                            " bytes exceeds ISA-L's 4 GiB limit");
    }
    if (out.capacity() < StoredSize(raw.size(), last)) {
      return Fail(ErrorCode::kInternal, "gzip: output buffer too small for the shard");
    }
    std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
    auto* dst = reinterpret_cast<uint8_t*>(out.data());
    out.Clear();
    ShardOutput shard;
    shard.raw_size = raw.size();
    shard.crc32 = crc32_gzip_refl(0, in.data(), in.size());
    MC_ASSIGN_OR_RETURN(bool worth_it, WorthDeflating(in, level_));
    if (worth_it) {
      MC_ASSIGN_OR_RETURN(auto deflated, Deflate(in, last, level_, dst));
      if (deflated) {
        out.Commit(*deflated);
        return shard;
      }
    }
    Stored(in, last, dst);
    out.Commit(StoredSize(raw.size(), last));
    return shard;
  }

 private:
  int level_;
};

// Decodes one or more concatenated gzip members (RFC 1952 2.2) with zlib. An
// empty input, a stream that ends inside a member and bytes after the last
// member that are not another member are errors (kInvalidInput).
class GzipReader final : public Reader {
 public:
  explicit GzipReader(std::unique_ptr<Reader> inner) : inner_(std::move(inner)) {
    ok_ = inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK;  // 16: gzip wrapper only
  }
  ~GzipReader() override {
    if (ok_) inflateEnd(&zs_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  Result<size_t> Read(std::span<std::byte> out) override {
    if (!ok_) return Fail(ErrorCode::kInternal, "gzip: inflateInit2 failed (out of memory)");
    if (out.empty() || done_) return 0;
    zs_.next_out = reinterpret_cast<Bytef*>(out.data());
    zs_.avail_out = static_cast<uInt>(std::min<size_t>(out.size(), UINT_MAX));
    const uInt want = zs_.avail_out;
    while (zs_.avail_out == want) {
      if (zs_.avail_in == 0 && !eof_) MC_RETURN_IF_ERROR(Refill());
      if (zs_.avail_in == 0 && eof_) {
        if (!any_input_) return Fail(ErrorCode::kInvalidInput, "gzip stream: empty input");
        if (!member_done_) {
          return Fail(ErrorCode::kInvalidInput, "gzip stream: truncated (ends inside a member)");
        }
        done_ = true;
        break;
      }
      if (member_done_) {  // more input after a member: the next member starts here
        inflateReset(&zs_);
        member_done_ = false;
      }
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Fail(ErrorCode::kInvalidInput,
                    std::string("gzip stream: corrupt data: ") + (zs_.msg ? zs_.msg : "unknown"));
      }
    }
    return want - zs_.avail_out;
  }

 private:
  Result<void> Refill() {
    MC_ASSIGN_OR_RETURN(size_t n, inner_->Read(buf_));
    if (n == 0) eof_ = true;
    any_input_ = any_input_ || n > 0;
    zs_.next_in = reinterpret_cast<Bytef*>(buf_.data());
    zs_.avail_in = static_cast<uInt>(n);
    return {};
  }

  std::unique_ptr<Reader> inner_;
  z_stream zs_{};
  std::vector<std::byte> buf_ = std::vector<std::byte>(256 << 10);
  bool ok_ = false;
  bool eof_ = false;
  bool any_input_ = false;
  bool member_done_ = false;
  bool done_ = false;
};

}  // namespace

Result<int> GzipLevelToIsal(int level) {
  if (level == -1) return 1;
  if (level < -1 || level > 9) {
    return Fail(ErrorCode::kInvalidInput,
                "--compression-level " + std::to_string(level) +
                    " is out of range for gzip: use 0..9 (ISA-L levels 0..3; 4..9 mean 3)");
  }
  return std::min(level, ISAL_DEF_MAX_LEVEL);
}

std::unique_ptr<Codec> NewGzipCodec(int isal_level) {
  return std::make_unique<GzipCodec>(isal_level);
}

std::unique_ptr<Reader> NewGzipReader(std::unique_ptr<Reader> inner) {
  return std::make_unique<GzipReader>(std::move(inner));
}

}  // namespace mc::oci::compress_internal
