// Private to oci/compress*.cc: the per-codec factories behind Codec::Create
// and small helpers they share. Not part of the module's interface.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "oci/compress.h"

namespace mc::oci::compress_internal {

// `level` has been validated by Codec::Create (-1 = default).
std::unique_ptr<Codec> NewGzipCodec(int isal_level);
std::unique_ptr<Codec> NewZstdCodec(int zstd_level);
std::unique_ptr<Codec> NewNoneCodec();
// The framer of zstd and none: nothing around the shards.
std::unique_ptr<Framer> NewEmptyFramer();

// gzip --compression-level → ISA-L level: -1 → 1 (the default), 0..3 as they
// are, 4..9 → 3 (ISA-L's strongest). Anything else is an error (kInvalidInput).
Result<int> GzipLevelToIsal(int level);
// zstd: -1 → 3, 1..19 as they are, 0 → 3 (zstd's own meaning of 0). Others: error.
Result<int> ZstdLevel(int level);

std::unique_ptr<Reader> NewGzipReader(std::unique_ptr<Reader> inner);
std::unique_ptr<Reader> NewZstdReader(std::unique_ptr<Reader> inner);

// Copies a span into a new Bytes (no zero-fill-then-copy).
inline Bytes ToBytes(std::span<const uint8_t> s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return Bytes(p, p + s.size());
}

}  // namespace mc::oci::compress_internal
