// Names, media types and the codec factory of oci/compress.h; the codecs
// themselves live in compress_gzip.cc and compress_zstd.cc.
//
// Level mapping (--compression-level), documented in the header:
//   gzip: -1 → ISA-L 1; 0..3 → ISA-L 0..3; 4..9 → ISA-L 3. ISA-L level 0 still
//         compresses (static Huffman, small hash table); it is not "stored".
//   zstd: -1 or 0 → 3; 1..19 as given.
//   none: the level is ignored.
#include <string>

#include "oci/compress.h"
#include "oci/compress_internal.h"
#include "oci/media_types.h"

namespace mc::oci {
namespace compress_internal {
namespace {

class EmptyFramer final : public Framer {
 public:
  Bytes Header() override { return {}; }
  void Add(const ShardOutput&) override {}
  Bytes Trailer() override { return {}; }
};

class NoneCodec final : public Codec {
 public:
  Compression kind() const override { return Compression::kNone; }
  std::unique_ptr<Framer> NewFramer() const override { return NewEmptyFramer(); }
  size_t MaxOutputSize(size_t raw_size) const override { return raw_size; }
  // The pipeline hands the raw buffer on itself; this copy is for other callers.
  Result<ShardOutput> CompressShardInto(std::span<const std::byte> raw, bool,
                                        Buffer& out) const override {
    if (out.capacity() < raw.size()) {
      return Fail(ErrorCode::kInternal, "none: output buffer too small for the shard");
    }
    out.Clear();
    out.Append(raw);
    ShardOutput s;
    s.raw_size = raw.size();
    return s;
  }
};

}  // namespace

std::unique_ptr<Framer> NewEmptyFramer() { return std::make_unique<EmptyFramer>(); }
std::unique_ptr<Codec> NewNoneCodec() { return std::make_unique<NoneCodec>(); }

}  // namespace compress_internal

Result<ShardOutput> Codec::CompressShard(std::span<const std::byte> raw, bool last) const {
  Buffer out = Buffer::Heap(MaxOutputSize(raw.size()));
  MC_ASSIGN_OR_RETURN(ShardOutput s, CompressShardInto(raw, last, out));
  s.data.assign(out.bytes().begin(), out.bytes().end());
  return s;
}

Result<Compression> ParseCompression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "none") return Compression::kNone;
  return Fail(ErrorCode::kInvalidInput,
              "unknown compression \"" + std::string(name) + "\": use gzip, zstd or none");
}

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      return "none";
  }
  return "none";
}

std::string_view LayerMediaType(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return media::kOciLayerGzip;
    case Compression::kZstd:
      return media::kOciLayerZstd;
    case Compression::kNone:
      return media::kOciLayer;
  }
  return media::kOciLayer;
}

Result<std::unique_ptr<Codec>> Codec::Create(Compression c, int level) {
  using namespace compress_internal;
  switch (c) {
    case Compression::kGzip: {
      MC_ASSIGN_OR_RETURN(int isal, GzipLevelToIsal(level));
      return NewGzipCodec(isal);
    }
    case Compression::kZstd: {
      MC_ASSIGN_OR_RETURN(int z, ZstdLevel(level));
      return NewZstdCodec(z);
    }
    case Compression::kNone:
      return NewNoneCodec();
  }
  return Fail(ErrorCode::kInternal, "Codec::Create: unknown compression value");
}

Result<std::unique_ptr<Reader>> NewDecompressingReader(std::unique_ptr<Reader> inner,
                                                       Compression c) {
  switch (c) {
    case Compression::kGzip:
      return compress_internal::NewGzipReader(std::move(inner));
    case Compression::kZstd:
      return compress_internal::NewZstdReader(std::move(inner));
    case Compression::kNone:
      return inner;
  }
  return Fail(ErrorCode::kInternal, "NewDecompressingReader: unknown compression value");
}

}  // namespace mc::oci
