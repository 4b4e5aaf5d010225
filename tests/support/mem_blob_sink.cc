#include "tests/support/mem_blob_sink.h"

namespace mc::testing {
namespace {

class MemWriter final : public oci::BlobWriter {
 public:
  explicit MemWriter(MemDestination* d) : d_(d) {}
  oci::Result<void> Write(std::span<const std::byte> data) override {
    buf_.append(oci::AsString(data));
    return {};
  }
  oci::Result<void> Commit(const oci::Digest& digest, uint64_t size) override {
    if (size != buf_.size() || oci::Digest::Of(buf_) != digest) {
      return oci::Fail(oci::ErrorCode::kVerificationFailed, "mem blob mismatch");
    }
    std::lock_guard lock(d_->mu);
    d_->blobs[digest] = std::move(buf_);
    return {};
  }
  void Abort() override { buf_.clear(); }

 private:
  MemDestination* d_;
  std::string buf_;
};

}  // namespace

oci::Result<bool> MemDestination::Exists(const oci::Digest& d) {
  std::lock_guard lock(mu);
  return blobs.contains(d);
}

oci::Result<std::unique_ptr<oci::BlobWriter>> MemDestination::Begin(const oci::BlobHint&) {
  std::lock_guard lock(mu);
  ++begins;
  return std::make_unique<MemWriter>(this);
}

oci::Result<void> MemDestination::PutManifest(const oci::RawManifest& m,
                                              const std::optional<std::string>& tag) {
  std::lock_guard lock(mu);
  manifests[m.digest] = m;
  if (tag) tags[*tag] = m;
  return {};
}

}  // namespace mc::testing
