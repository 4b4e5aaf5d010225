// Parallel-friendly compression: shards of a fixed size are compressed
// independently (on any thread) and framed in order into one stream.
//
// gzip: every shard is raw deflate ending on a byte boundary (full flush), the
// last one ends with a final block, and the framer writes one gzip header
// (no name, mtime 0) and a trailer with the combined CRC-32 and ISIZE: a single
// standard gzip member, as pigz does. zstd: one frame per shard (concatenated
// frames are a valid zstd stream). none: shards pass through.
//
// Output bytes depend only on the input, the codec and the level — never on
// how many threads run or in what order shards finish.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "oci/buffer.h"
#include "oci/error.h"
#include "oci/io.h"

namespace mc::oci {

enum class Compression { kNone, kGzip, kZstd };

// Fixed shard size. Part of the output format: changing it changes digests.
inline constexpr size_t kShardSize = 4 << 20;

Result<Compression> ParseCompression(std::string_view name);  // "gzip"|"zstd"|"none"
std::string_view CompressionName(Compression c);
// OCI layer media type for the compression.
std::string_view LayerMediaType(Compression c);

struct ShardOutput {
  Bytes data;             // compressed bytes of this shard (CompressShard only)
  uint32_t crc32 = 0;     // CRC-32 of the raw shard (gzip only)
  uint64_t raw_size = 0;  // size of the raw shard
};

// Frames compressed shards into one stream. One thread, shards in order:
// Header(), then Add(shard) + shard.data for every shard (the final one
// compressed with last = true), then Trailer(). gzip: a framer that saw no
// shard at all puts an empty final block in its trailer, so Header() +
// Trailer() alone is a valid empty gzip member. zstd, none: empty header/trailer.
class Framer {
 public:
  virtual ~Framer() = default;
  virtual Bytes Header() = 0;
  // Records a shard written right after this call (for the gzip trailer).
  virtual void Add(const ShardOutput& shard) = 0;
  virtual Bytes Trailer() = 0;
};

// Immutable and safe for concurrent use.
class Codec {
 public:
  virtual ~Codec() = default;
  // level: -1 = the codec's default. gzip levels map onto ISA-L's 0..3
  // (1 is the default), zstd uses its own 1..19 (default 3).
  //   gzip: -1 → 1; 0..3 → ISA-L 0..3; 4..9 → 3 (ISA-L's strongest). ISA-L 0
  //         is static-Huffman LZ, which cannot shrink bf16 weights: such
  //         shards come out as stored blocks.
  //   zstd: -1 or 0 → 3; 1..19 as given.
  //   none: ignored.
  // Other levels: kInvalidInput with a one-line message naming the range.
  static Result<std::unique_ptr<Codec>> Create(Compression c, int level = -1);
  virtual Compression kind() const = 0;
  // The most bytes CompressShardInto writes for a shard of `raw_size` bytes
  // (gzip: stored blocks are 5 bytes per 64 KiB larger than the input; zstd:
  // ZSTD_compressBound). Size output buffers with it.
  virtual size_t MaxOutputSize(size_t raw_size) const = 0;
  // Compresses `raw` into `out`, replacing what it held; out.capacity() must
  // be at least MaxOutputSize(raw.size()) (else kInternal). Returns the
  // shard's framing record (its `data` stays empty: the bytes are in `out`).
  // `last` is true for the final shard of the stream (possibly empty).
  // Any thread; reuses per-thread scratch state (ISA-L's or zstd's context,
  // kept for the thread's lifetime), never allocates per shard. gzip: a shard
  // that would not get smaller is emitted as stored blocks. Fails only with
  // kInternal.
  virtual Result<ShardOutput> CompressShardInto(std::span<const std::byte> raw, bool last,
                                                Buffer& out) const = 0;
  // The same into a new vector (tests, benchmarks): `data` holds the bytes.
  Result<ShardOutput> CompressShard(std::span<const std::byte> raw, bool last) const;
  virtual std::unique_ptr<Framer> NewFramer() const = 0;
};

// Decompresses a whole gzip or zstd stream (for tests and verification tools);
// `none` returns `inner` itself. gzip may have several members (RFC 1952 2.2),
// zstd several frames. Reads fail with kInvalidInput on an empty, truncated or
// corrupt stream, or bytes after the last member that are not another member.
Result<std::unique_ptr<Reader>> NewDecompressingReader(std::unique_ptr<Reader> inner,
                                                       Compression c);

}  // namespace mc::oci
