// Parallel zstd: one zstd frame per shard.
//
// The zstd format (RFC 8878 section 3) defines a stream as a sequence of frames
// and every decoder (zstd -d, libzstd's streaming API, containerd, Go's
// klauspost/compress) decodes concatenated frames as one stream, so
// independently compressed shards need no framing at all. Each frame records
// its content size and ends with a content checksum (XXH64, low 32 bits), so a
// damaged shard is caught by the decoder, not only by the layer digest.
//
// ZSTD_compressCCtx() ignores advanced parameters (the checksum flag among
// them), so we use ZSTD_compress2() on a per-thread context whose parameters
// are reset for every shard. Single-threaded zstd is deterministic for a given
// library version, level and input, independent of the context's history.
#include <zstd.h>

#include <memory>
#include <vector>

#include "oci/compress.h"
#include "oci/compress_internal.h"

namespace mc::oci::compress_internal {
namespace {

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

struct ZstdScratch {
  std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx{ZSTD_createCCtx()};
};

ZstdScratch& ThreadScratch() {
  thread_local std::unique_ptr<ZstdScratch> scratch = std::make_unique<ZstdScratch>();
  return *scratch;
}

Result<void> Check(size_t rc, const char* what) {
  if (ZSTD_isError(rc)) {
    return Fail(ErrorCode::kInternal,
                std::string("zstd: ") + what + " failed: " + ZSTD_getErrorName(rc));
  }
  return {};
}

class ZstdCodec final : public Codec {
 public:
  explicit ZstdCodec(int level) : level_(level) {}
  Compression kind() const override { return Compression::kZstd; }
  std::unique_ptr<Framer> NewFramer() const override { return NewEmptyFramer(); }

  // Every shard, even an empty one, becomes a frame (an empty frame is valid).
  size_t MaxOutputSize(size_t raw_size) const override { return ZSTD_compressBound(raw_size); }

  Result<ShardOutput> CompressShardInto(std::span<const std::byte> raw, bool,
                                        Buffer& out) const override {
    ZstdScratch& s = ThreadScratch();
    if (!s.cctx) return Fail(ErrorCode::kInternal, "zstd: ZSTD_createCCtx failed (out of memory)");
    if (out.capacity() < ZSTD_compressBound(raw.size())) {
      return Fail(ErrorCode::kInternal, "zstd: output buffer too small for the shard");
    }
    ZSTD_CCtx* c = s.cctx.get();
    MC_RETURN_IF_ERROR(Check(ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters), "reset"));
    MC_RETURN_IF_ERROR(
        Check(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level_), "set level"));
    MC_RETURN_IF_ERROR(Check(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1), "set checksum"));
    MC_RETURN_IF_ERROR(
        Check(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1), "set content size"));
    out.Clear();
    const size_t n = ZSTD_compress2(c, out.data(), out.capacity(), raw.data(), raw.size());
    MC_RETURN_IF_ERROR(Check(n, "ZSTD_compress2"));
    out.Commit(n);
    ShardOutput shard;
    shard.raw_size = raw.size();
    return shard;
  }

 private:
  int level_;
};

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// Decodes a sequence of frames. A stream that ends inside a frame, or has no
// frame at all, is an error (kInvalidInput), as is any corrupt frame.
class ZstdReader final : public Reader {
 public:
  explicit ZstdReader(std::unique_ptr<Reader> inner) : inner_(std::move(inner)) {}

  Result<size_t> Read(std::span<std::byte> out) override {
    if (!dctx_) return Fail(ErrorCode::kInternal, "zstd: ZSTD_createDCtx failed (out of memory)");
    if (out.empty()) return 0;
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    while (true) {
      if (ib_.pos == ib_.size && !eof_) MC_RETURN_IF_ERROR(Refill());
      // A non-zero hint means the decoder is mid-frame: it may still hold
      // output to flush even when no input is left.
      if (ib_.pos < ib_.size || hint_ != 0) {
        const size_t r = ZSTD_decompressStream(dctx_.get(), &ob, &ib_);
        if (ZSTD_isError(r)) {
          return Fail(ErrorCode::kInvalidInput,
                      std::string("zstd stream: corrupt data: ") + ZSTD_getErrorName(r));
        }
        hint_ = r;
      }
      if (ob.pos > 0) return ob.pos;
      if (ib_.pos == ib_.size && eof_) {
        if (!any_input_) return Fail(ErrorCode::kInvalidInput, "zstd stream: empty input");
        if (hint_ != 0) {
          return Fail(ErrorCode::kInvalidInput, "zstd stream: truncated (ends inside a frame)");
        }
        return 0;
      }
    }
  }

 private:
  Result<void> Refill() {
    MC_ASSIGN_OR_RETURN(size_t n, inner_->Read(buf_));
    if (n == 0) eof_ = true;
    any_input_ = any_input_ || n > 0;
    ib_ = ZSTD_inBuffer{buf_.data(), n, 0};
    return {};
  }

  std::unique_ptr<Reader> inner_;
  std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx_{ZSTD_createDCtx()};
  std::vector<std::byte> buf_ = std::vector<std::byte>(ZSTD_DStreamInSize());
  ZSTD_inBuffer ib_{nullptr, 0, 0};
  size_t hint_ = 0;
  bool eof_ = false;
  bool any_input_ = false;
};

}  // namespace

Result<int> ZstdLevel(int level) {
  if (level == -1 || level == 0) return 3;  // zstd's own default (ZSTD_CLEVEL_DEFAULT)
  if (level < -1 || level > 19) {
    return Fail(ErrorCode::kInvalidInput, "--compression-level " + std::to_string(level) +
                                              " is out of range for zstd: use 1..19");
  }
  return level;
}

std::unique_ptr<Codec> NewZstdCodec(int zstd_level) {
  return std::make_unique<ZstdCodec>(zstd_level);
}

std::unique_ptr<Reader> NewZstdReader(std::unique_ptr<Reader> inner) {
  return std::make_unique<ZstdReader>(std::move(inner));
}

}  // namespace mc::oci::compress_internal
