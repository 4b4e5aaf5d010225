// The copy engine (architecture.md "Copier"; ggcr's pkg/crane/copy.go and
// skopeo's copy.Image are the models).
//
// Why bottom-up with exact bytes: a manifest's digest is the sha256 of its
// bytes (protocols.md 1.5), and an index names its children by digest, so
// re-serialising anything would change every digest above it. We forward the
// bytes we fetched, verified against the digest that named them, and store a
// manifest only after everything it references is present — a registry may
// reject a manifest with missing blobs (distribution does), and a layout must
// never name a blob it lacks.
//
// Each blob goes through three steps, cheapest first: the destination has it
// (HEAD) → skip; Begin with mount_from and the writer reports done() (a
// cross-repository mount on the same registry) → nothing sent; otherwise the
// bytes are streamed through a VerifyingReader, so a corrupt source is caught
// before Commit and the destination aborts the blob. Large blobs are read as
// parallel ranges (copy_range.cc), and a broken read resumes by Range.
//
// Concurrency: children of an index are walked in parallel and blobs of an
// image in parallel, but actual transfers share one budget of `jobs` slots, so
// the copy never moves more than `jobs` blobs at once however wide the index.
// A per-digest once-map makes sure that two children sharing a layer transfer
// it once: the second waits for the first's outcome.
#include "engine/copy.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/cancel.h"
#include "engine/copy_internal.h"
#include "engine/executor.h"
#include "engine/resume_slot.h"
#include "oci/media_types.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

using oci::Descriptor;
using oci::Digest;
using oci::ErrorCode;
using oci::RawManifest;
using oci::Result;

// A counting semaphore with a runtime count.
class Slots {
 public:
  explicit Slots(int n) : free_(std::max(n, 1)) {}
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

class SlotGuard {
 public:
  explicit SlotGuard(Slots& s) : s_(s) { s_.Acquire(); }
  ~SlotGuard() { s_.Release(); }
  SlotGuard(const SlotGuard&) = delete;
  SlotGuard& operator=(const SlotGuard&) = delete;

 private:
  Slots& s_;
};

// Runs fn(0..n-1) on up to `threads` workers of an Executor; stops taking
// new items after the first error, which it returns. Every call has its own
// executor: a child of an index runs its own ParallelFor over its blobs from
// inside a task, and a shared fixed-size pool would deadlock on that nesting.
Result<void> ParallelFor(const std::string& stage, size_t n, int threads,
                         const std::function<Result<void>(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::optional<oci::Error> first;
  auto work = [&] {
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (first) return;
      }
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      auto r = fn(i);
      if (!r) {
        std::lock_guard lock(mu);
        if (!first) first = r.error();
        return;
      }
    }
  };
  size_t t = std::min<size_t>(n, static_cast<size_t>(std::max(threads, 1)));
  if (t > 0) {  // even one worker runs on the executor: it owns exceptions (executor.h)
    Executor executor(static_cast<int>(t), stage, [&](const oci::Error& e) {
      std::lock_guard lock(mu);
      if (!first) first = e;
    });
    for (size_t i = 0; i < t; ++i) executor.Post(work);
    executor.Join();
  }
  if (first) return std::unexpected(*first);
  return {};
}

// Blobs a copy must not try to fetch: foreign / non-distributable layers
// (image-spec layer.md: they are fetched from their `urls` by the runtime).
bool IsForeign(const Descriptor& d) {
  return d.media_type.find("nondistributable") != std::string::npos ||
         d.media_type.find("foreign") != std::string::npos;
}

enum class Outcome { kPresent, kMounted, kCopied };

class Copier {
 public:
  Copier(oci::ImageSource& src, oci::ImageDestination& dest, const CopyOptions& opts)
      : src_(src),
        dest_(dest),
        opts_(opts),
        jobs_(opts.jobs > 0 ? opts.jobs : 4),
        slots_(jobs_),
        ranged_slots_(std::max(opts.max_ranged_blobs, 1)) {}

  Result<CopyResult> Run(const std::string& tag_or_digest, const std::optional<std::string>& tag);
  // One blob, outside any manifest (CopyBlob).
  Result<void> One(const Descriptor& d) { return EnsureBlob(d); }

 private:
  std::string SrcSide() const { return "source " + src_.Describe(); }
  std::string DestSide() const { return "destination " + dest_.Describe(); }

  Result<RawManifest> FetchManifest(const std::string& ref, const std::string& media_type);
  Result<RawManifest> SelectPlatform(const RawManifest& index);
  Result<void> CopyTree(const RawManifest& m);
  Result<void> CopyChildren(const RawManifest& index);
  Result<void> CopyBlobs(const RawManifest& m);
  Result<void> EnsureBlob(const Descriptor& d);
  Result<Outcome> Transfer(const Descriptor& d);
  Result<uint64_t> Stream(const Descriptor& d, oci::BlobWriter& w);
  Result<std::unique_ptr<BufferStream>> OpenStream(const Descriptor& d, oci::BlobWriter& w,
                                                   bool* ranged);

  oci::ImageSource& src_;
  oci::ImageDestination& dest_;
  const CopyOptions& opts_;
  const int jobs_;
  Slots slots_;
  Slots ranged_slots_;

  std::mutex once_mu_;
  std::unordered_map<Digest, std::shared_future<Result<void>>> once_;  // guarded by once_mu_

  std::atomic<size_t> present_{0}, mounted_{0}, copied_{0}, manifests_{0};
  std::atomic<uint64_t> bytes_{0};
};

Result<RawManifest> Copier::FetchManifest(const std::string& ref, const std::string& media_type) {
  auto m = src_.GetManifest(ref);
  if (!m) return oci::Wrap(m.error(), SrcSide());
  RawManifest raw = std::move(*m);
  raw.digest = Digest::Of(raw.bytes);
  if (ref.starts_with("sha256:") && raw.digest.String() != ref) {
    return oci::Fail(ErrorCode::kVerificationFailed,
                     SrcSide() + ": manifest " + ref.substr(0, 19) + " has digest " +
                         raw.digest.Short() + ": the source is corrupt or was tampered with");
  }
  if (raw.media_type.empty()) raw.media_type = media_type;
  if (raw.media_type.empty()) {
    MC_ASSIGN_OR_RETURN(raw.media_type, oci::DetectManifestMediaType(raw.bytes));
  }
  return raw;
}

Result<RawManifest> Copier::SelectPlatform(const RawManifest& index) {
  MC_ASSIGN_OR_RETURN(oci::Index idx, oci::ParseIndex(index.bytes, SrcSide() + " index"));
  std::string have;
  for (const Descriptor& d : idx.manifests) {
    if (!d.platform) continue;
    if (opts_.platform->Matches(*d.platform)) return FetchManifest(d.digest.String(), d.media_type);
    have += (have.empty() ? "" : ", ") + d.platform->String();
  }
  return oci::Fail(ErrorCode::kNotFound, SrcSide() + " has no image for platform " +
                                             opts_.platform->String() +
                                             " (it has: " + (have.empty() ? "none" : have) + ")");
}

Result<CopyResult> Copier::Run(const std::string& tag_or_digest,
                               const std::optional<std::string>& tag) {
  MC_ASSIGN_OR_RETURN(RawManifest top, FetchManifest(tag_or_digest, ""));
  if (opts_.platform && oci::media::IsIndex(top.media_type)) {
    MC_ASSIGN_OR_RETURN(top, SelectPlatform(top));
  }
  // A mirror that already holds this manifest holds its whole tree (store.h):
  // one HEAD instead of one per blob, and the tag is moved only if it must be
  // (ggcr's remote.Write does the same).
  bool whole_tree = false;
  if (auto have = dest_.ManifestDigest(top.digest.String()); have && *have == top.digest) {
    whole_tree = true;
  } else {
    MC_RETURN_IF_ERROR(CopyTree(top));
  }
  MC_RETURN_IF_ERROR(CheckCancelled());
  // Present by digest (the HEAD above) is all an untagged copy needs.
  bool tagged = whole_tree && !tag;
  if (whole_tree && tag) {
    auto at_tag = dest_.ManifestDigest(*tag);
    tagged = at_tag && *at_tag == top.digest;
  }
  if (!tagged) {
    if (auto r = dest_.PutManifest(top, tag); !r) {
      return oci::Wrap(r.error(), DestSide() + ": storing manifest " + top.digest.Short());
    }
    ++manifests_;
  }
  if (whole_tree && tagged) {
    registry::Log()->info("{} already holds {}; nothing to copy", dest_.Describe(),
                          top.digest.Short());
  } else if (whole_tree) {
    registry::Log()->info("{} already holds {}; tagged it {}", dest_.Describe(), top.digest.Short(),
                          tag.value_or(""));
  }
  CopyResult out;
  out.already_present = whole_tree;
  out.tagged_existing = whole_tree && !tagged;
  out.manifest = std::move(top);
  out.blobs_present = present_;
  out.blobs_mounted = mounted_;
  out.blobs_copied = copied_;
  out.bytes_copied = bytes_;
  out.manifests = manifests_;
  return out;
}

Result<void> Copier::CopyTree(const RawManifest& m) {
  if (oci::media::IsIndex(m.media_type)) return CopyChildren(m);
  if (oci::media::IsManifest(m.media_type)) return CopyBlobs(m);
  return oci::Fail(ErrorCode::kInvalidInput, SrcSide() + ": manifest " + m.digest.Short() +
                                                 " has media type \"" + m.media_type +
                                                 "\", which mc-engine cannot copy (OCI or "
                                                 "Docker schema 2 images and indexes only)");
}

Result<void> Copier::CopyChildren(const RawManifest& index) {
  MC_ASSIGN_OR_RETURN(oci::Index idx, oci::ParseIndex(index.bytes, SrcSide() + " index"));
  return ParallelFor("manifest walk", idx.manifests.size(), jobs_, [&](size_t i) -> Result<void> {
    const Descriptor& d = idx.manifests[i];
    MC_ASSIGN_OR_RETURN(RawManifest child, FetchManifest(d.digest.String(), d.media_type));
    MC_RETURN_IF_ERROR(CopyTree(child));
    if (auto r = dest_.PutChildManifest(child); !r) {
      return oci::Wrap(r.error(), DestSide() + ": storing manifest " + child.digest.Short());
    }
    ++manifests_;
    return {};
  });
}

Result<void> Copier::CopyBlobs(const RawManifest& m) {
  MC_ASSIGN_OR_RETURN(oci::Manifest man,
                      oci::ParseManifest(m.bytes, SrcSide() + " manifest " + m.digest.Short()));
  std::vector<Descriptor> blobs{man.config};
  for (const Descriptor& l : man.layers) {
    if (!IsForeign(l)) blobs.push_back(l);
  }
  // Largest first: the long transfers start early and the small ones fill in.
  std::stable_sort(blobs.begin(), blobs.end(),
                   [](const Descriptor& a, const Descriptor& b) { return a.size > b.size; });
  return ParallelFor("blob copy", blobs.size(), jobs_,
                     [&](size_t i) { return EnsureBlob(blobs[i]); });
}

Result<void> Copier::EnsureBlob(const Descriptor& d) {
  std::promise<Result<void>> promise;
  std::shared_future<Result<void>> future;
  bool mine = false;
  {
    std::lock_guard lock(once_mu_);
    auto it = once_.find(d.digest);
    if (it == once_.end()) {
      future = promise.get_future().share();
      once_.emplace(d.digest, future);
      mine = true;
    } else {
      future = it->second;
    }
  }
  if (mine) {
    auto r = Transfer(d);
    if (r) {
      switch (*r) {
        case Outcome::kPresent:
          ++present_;
          break;
        case Outcome::kMounted:
          ++mounted_;
          break;
        case Outcome::kCopied:
          ++copied_;
          break;
      }
      promise.set_value(Result<void>{});
    } else {
      promise.set_value(std::unexpected(r.error()));
    }
  }
  return future.get();
}

Result<Outcome> Copier::Transfer(const Descriptor& d) {
  MC_RETURN_IF_ERROR(CheckCancelled());
  SlotGuard slot(slots_);
  auto have = dest_.Exists(d.digest);
  if (!have) return oci::Wrap(have.error(), DestSide() + ": checking blob " + d.digest.Short());
  if (*have) return Outcome::kPresent;
  oci::BlobHint hint{d.digest, d.size, d.media_type, opts_.mount_from};
  // One slot per destination and digest: a re-run of the same copy finds it.
  hint.resume = UploadResumeSlot(
      StateDir{opts_.resume_dir, ""},
      "copy-" + oci::Digest::Of(dest_.Describe()).hex().substr(0, 16) + "-" + d.digest.hex());
  for (int attempt = 0;; ++attempt) {
    hint.checked_absent = attempt == 0;
    auto w = dest_.Begin(hint);
    if (!w) return oci::Wrap(w.error(), DestSide() + ": starting blob " + d.digest.Short());
    if ((*w)->done()) {
      if (auto c = (*w)->Commit(d.digest, static_cast<uint64_t>(d.size)); !c) {
        return oci::Wrap(c.error(), DestSide() + ": blob " + d.digest.Short());
      }
      return opts_.mount_from ? Outcome::kMounted : Outcome::kPresent;
    }
    auto r = Stream(d, **w);
    if (r) {
      bytes_ += *r;
      return Outcome::kCopied;
    }
    if (r.error().code == ErrorCode::kCancelled) {
      (*w)->Suspend();  // the next run resumes this upload
      return std::unexpected(r.error());
    }
    (*w)->Abort();
    if (!IsRetryable(r.error()) || attempt >= opts_.retry_times) return std::unexpected(r.error());
    registry::Log()->warn("blob {}: {}; retrying ({} of {})", d.digest.Short(), r.error().message,
                          attempt + 1, opts_.retry_times);
    SleepBackoff(attempt + 2);
  }
}

Result<std::unique_ptr<BufferStream>> Copier::OpenStream(const Descriptor& d, oci::BlobWriter& w,
                                                         bool* ranged) {
  *ranged = false;
  const uint64_t chunk = std::max<uint64_t>(opts_.range_chunk, 64 << 10);
  bool large = d.size >= 0 && static_cast<uint64_t>(d.size) >= opts_.range_threshold &&
               opts_.range_streams > 1;
  if (large) {
    auto r = OpenParallelRangeStream(src_, d, chunk, opts_.range_streams, opts_.retry_times,
                                     oci::RetainedBufferCount(w.max_retained_bytes(), chunk),
                                     opts_.range_fan_out_below);
    if (r) {
      *ranged = true;
      return r;
    }
    if (r.error().code != ErrorCode::kRangeNotSatisfiable) return std::unexpected(r.error());
  }
  // A small blob gets a buffer its size (a config is a few hundred bytes).
  size_t size =
      d.size >= 0
          ? static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(d.size) + 1, chunk))
          : static_cast<size_t>(chunk);
  size = std::max<size_t>(size, 4096);
  MC_ASSIGN_OR_RETURN(auto raw, src_.OpenBlob(d));
  return NewReaderStream(
      std::make_unique<ResumingReader>(src_, d, opts_.retry_times, std::move(raw)), size,
      oci::RetainedBufferCount(w.max_retained_bytes(), size));
}

// The consumer: takes the blob's buffers in order, hashes and counts them,
// and hands each whole buffer to the writer (no copy here; a registry upload
// keeps the buffer itself until the registry acknowledged it). The blob is
// verified before Commit, so a corrupt source never becomes visible.
Result<uint64_t> Copier::Stream(const Descriptor& d, oci::BlobWriter& w) {
  std::optional<SlotGuard> ranged_slot;
  if (d.size >= 0 && static_cast<uint64_t>(d.size) >= opts_.range_threshold) {
    ranged_slot.emplace(ranged_slots_);
  }
  std::string what = "blob " + d.digest.Short();
  const std::string reading = SrcSide() + ": reading " + what;
  const std::string from = what + " from " + src_.Describe();
  bool ranged = false;
  auto stream = OpenStream(d, w, &ranged);
  if (!stream) return oci::Wrap(stream.error(), reading);
  std::shared_ptr<ProgressTask> task;
  if (opts_.progress)
    task = opts_.progress->Start("copy", d.digest.Short(), std::max<int64_t>(d.size, 0));
  oci::Digester digester;
  uint64_t total = 0;
  for (;;) {
    MC_RETURN_IF_ERROR(CheckCancelled());
    auto next = (*stream)->Next();
    if (!next) return oci::Wrap(next.error(), reading);
    if (!*next) break;
    oci::Buffer buf = std::move(**next);
    digester.Update(buf.bytes());
    total += buf.size();
    if (d.size >= 0 && total > static_cast<uint64_t>(d.size)) {
      return oci::Fail(
          ErrorCode::kVerificationFailed,
          reading + ": " + from + ": more than the expected " + std::to_string(d.size) + " bytes");
    }
    if (task) task->Add(buf.size());
    // A writer resuming an earlier upload drops the prefix it holds (store.h).
    if (auto r = w.WriteBuffer(std::move(buf)); !r) {
      return oci::Wrap(r.error(), DestSide() + ": writing " + what);
    }
  }
  if (d.size >= 0 && total != static_cast<uint64_t>(d.size)) {
    return oci::Fail(ErrorCode::kVerificationFailed,
                     reading + ": " + from + ": size mismatch: got " + std::to_string(total) +
                         " bytes, expected " + std::to_string(d.size));
  }
  if (oci::Digest got = digester.Finish(); got != d.digest) {
    return oci::Fail(ErrorCode::kVerificationFailed, reading + ": " + from +
                                                         ": digest mismatch: got " + got.String() +
                                                         ", expected " + d.digest.String());
  }
  if (auto r = w.Commit(d.digest, total); !r) {
    return oci::Wrap(r.error(), DestSide() + ": committing " + what);
  }
  if (task) task->Finish();
  registry::Log()->debug("{}: {} bytes copied{}", what, total, ranged ? " (parallel ranges)" : "");
  return total;
}

}  // namespace

Result<CopyResult> CopyImage(oci::ImageSource& src, const std::string& tag_or_digest,
                             oci::ImageDestination& dest, const std::optional<std::string>& tag,
                             const CopyOptions& options) {
  Copier copier(src, dest, options);
  return copier.Run(tag_or_digest, tag);
}

Result<void> CopyBlob(oci::ImageSource& src, const oci::Descriptor& desc,
                      oci::ImageDestination& dest, const CopyOptions& options) {
  Copier copier(src, dest, options);
  return copier.One(desc);
}

}  // namespace mc::engine
