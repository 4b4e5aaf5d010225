#include "oci/store.h"

#include <algorithm>

namespace mc::oci {

Result<std::string> ImageSource::ReadBlob(const Descriptor& desc, size_t limit) {
  if (desc.size > static_cast<int64_t>(limit)) {
    return Fail(ErrorCode::kInvalidInput,
                "blob " + desc.digest.Short() + " is too large to read into memory");
  }
  MC_ASSIGN_OR_RETURN(auto raw, OpenBlob(desc));
  VerifyingReader v(std::move(raw), desc.digest, desc.size, "blob " + desc.digest.Short());
  return ReadAll(v, limit);
}

Result<std::unique_ptr<Reader>> ImageSource::OpenBlobRange(const Descriptor& desc,
                                                           uint64_t /*offset*/,
                                                           uint64_t /*length*/) {
  return Fail(ErrorCode::kRangeNotSatisfiable,
              Describe() + " cannot serve byte ranges of blob " + desc.digest.Short());
}

Result<void> ImageSource::StreamBlobRange(const Descriptor& desc, uint64_t offset, uint64_t length,
                                          const ByteSink& sink) {
  MC_ASSIGN_OR_RETURN(auto r, OpenBlobRange(desc, offset, length));
  // One buffer per thread, never zero-filled (a copy reads many ranges).
  constexpr size_t kSize = 1 << 20;
  thread_local std::unique_ptr<std::byte[]> storage(new std::byte[kSize]);
  uint64_t got = 0;
  while (got < length) {
    auto room = std::span<std::byte>(storage.get(),
                                     static_cast<size_t>(std::min<uint64_t>(kSize, length - got)));
    MC_ASSIGN_OR_RETURN(size_t n, r->Read(room));
    if (n == 0) {
      return Fail(ErrorCode::kTransient, "the stream ended after " + std::to_string(got) + " of " +
                                             std::to_string(length) + " bytes");
    }
    MC_RETURN_IF_ERROR(sink(room.first(n)));
    got += n;
  }
  return {};
}

Result<void> ImageSource::ReadBlobRange(const Descriptor& desc, uint64_t offset, uint64_t length,
                                        Buffer& out) {
  if (length > out.free_space().size()) {
    return Fail(ErrorCode::kInternal, "a range of " + std::to_string(length) +
                                          " bytes does not fit a buffer with " +
                                          std::to_string(out.free_space().size()) + " free");
  }
  if (length == 0) return {};
  return StreamBlobRange(desc, offset, length, [&](std::span<const std::byte> data) {
    out.Append(data);
    return Result<void>{};
  });
}

Result<void> ReadFull(Reader& r, Buffer& out, uint64_t length) {
  const size_t want = static_cast<size_t>(std::min<uint64_t>(length, out.free_space().size()));
  size_t got = 0;
  while (got < want) {
    MC_ASSIGN_OR_RETURN(size_t n, r.Read(out.free_space().first(want - got)));
    if (n == 0) {
      return Fail(ErrorCode::kTransient, "the stream ended after " + std::to_string(got) + " of " +
                                             std::to_string(want) + " bytes");
    }
    out.Commit(n);
    got += n;
  }
  return {};
}

}  // namespace mc::oci
