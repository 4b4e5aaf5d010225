#include "oci/store.h"

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

}  // namespace mc::oci
