// A destination whose writers keep handed-over buffers, as a registry upload
// does with the chunk in flight and the one filling: up to `retain` bytes of
// buffers stay out of their pool after WriteBuffer returns (the oldest go
// back first). Producers size their pools with max_retained_bytes(); a pool
// without room for them would wait forever, so these writers are what tells.
#pragma once

#include <deque>
#include <memory>

#include "oci/store.h"
#include "tests/support/mem_blob_sink.h"

namespace mc::testing {

class RetainingDestination final : public oci::ImageDestination {
 public:
  explicit RetainingDestination(uint64_t retain) : retain_(retain) {}

  oci::Result<bool> Exists(const oci::Digest& d) override { return inner.Exists(d); }
  oci::Result<std::unique_ptr<oci::BlobWriter>> Begin(const oci::BlobHint& hint) override {
    MC_ASSIGN_OR_RETURN(auto w, inner.Begin(hint));
    return std::unique_ptr<oci::BlobWriter>(new Writer(std::move(w), retain_));
  }
  oci::Result<void> PutManifest(const oci::RawManifest& m,
                                const std::optional<std::string>& tag) override {
    return inner.PutManifest(m, tag);
  }
  std::string Describe() const override { return "retaining:"; }

  MemDestination inner;

 private:
  class Writer final : public oci::BlobWriter {
   public:
    Writer(std::unique_ptr<oci::BlobWriter> inner, uint64_t retain)
        : inner_(std::move(inner)), retain_(retain) {}
    oci::Result<void> Write(std::span<const std::byte> data) override {
      return inner_->Write(data);
    }
    oci::Result<void> WriteBuffer(oci::Buffer b) override {
      MC_RETURN_IF_ERROR(inner_->Write(b.bytes()));
      kept_bytes_ += b.size();
      kept_.push_back(std::move(b));
      while (kept_bytes_ > retain_) {
        kept_bytes_ -= kept_.front().size();
        kept_.pop_front();
      }
      return {};
    }
    uint64_t max_retained_bytes() const override { return retain_; }
    oci::Result<void> Commit(const oci::Digest& d, uint64_t size) override {
      kept_.clear();
      return inner_->Commit(d, size);
    }
    void Abort() override {
      kept_.clear();
      inner_->Abort();
    }

   private:
    std::unique_ptr<oci::BlobWriter> inner_;
    const uint64_t retain_;
    std::deque<oci::Buffer> kept_;
    uint64_t kept_bytes_ = 0;
  };

  const uint64_t retain_;
};

}  // namespace mc::testing
