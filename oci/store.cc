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

Result<void> ImageSource::ReadBlobRange(const Descriptor& desc, uint64_t offset, uint64_t length,
                                        Buffer& out) {
  if (length > out.free_space().size()) {
    return Fail(ErrorCode::kInternal, "a range of " + std::to_string(length) +
                                          " bytes does not fit a buffer with " +
                                          std::to_string(out.free_space().size()) + " free");
  }
  MC_ASSIGN_OR_RETURN(auto r, OpenBlobRange(desc, offset, length));
  return ReadFull(*r, out, length);
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
