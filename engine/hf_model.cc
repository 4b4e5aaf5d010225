// `build hf://…`: a Hugging Face snapshot streamed straight into the layer.
//
// The tree listing gives every file's size, so the tar entries (names under
// the prefix, parent directories first, in archive order) exist before any
// byte arrives. The layer pipeline then asks for each file's content in entry
// order; we answer with a reader that keeps the next `prefetch` ranged
// segments of that file in flight on their own threads and hands their bytes
// over in order. Memory is bounded by prefetch × segment_size per open file,
// and nothing touches the disk. Each file is verified on the way through
// (sha256 for LFS files, the git blob sha1 for small ones), so a corrupted
// byte fails the build with kVerificationFailed before a manifest exists.
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <set>

#include "engine/download.h"
#include "engine/hf_hub.h"
#include "oci/tar.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;
using oci::Fail;

// Streams one file: segments fetched ahead in parallel, consumed in order.
class PrefetchReader final : public oci::Reader {
 public:
  PrefetchReader(std::shared_ptr<HfClient> client, std::shared_ptr<FileLocation> loc,
                 uint64_t segment_size, int prefetch)
      : client_(std::move(client)),
        loc_(std::move(loc)),
        segment_size_(segment_size),
        prefetch_(std::max(1, prefetch)) {
    segments_ = (loc_->file.size + segment_size_ - 1) / segment_size_;
    while (in_flight_.size() < static_cast<size_t>(prefetch_) && next_ < segments_) Launch();
  }

  ~PrefetchReader() override {
    stop_->store(true);
    in_flight_.clear();  // waits for the fetches, which stop at their next chunk
  }

  oci::Result<size_t> Read(std::span<std::byte> out) override {
    while (pos_ == current_.size()) {
      if (in_flight_.empty()) return 0;
      auto result = in_flight_.front().get();
      in_flight_.pop_front();
      if (!result) return std::unexpected(result.error());
      current_ = std::move(*result);
      pos_ = 0;
      if (next_ < segments_) Launch();
    }
    size_t n = std::min(out.size(), current_.size() - pos_);
    std::memcpy(out.data(), current_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  void Launch() {
    uint64_t begin = next_++ * segment_size_;
    uint64_t len = std::min(segment_size_, loc_->file.size - begin);
    in_flight_.push_back(std::async(
        std::launch::async,
        [client = client_, loc = loc_, stop = stop_, begin, len]() -> oci::Result<oci::Bytes> {
          oci::Bytes buf(len);
          MC_RETURN_IF_ERROR(client->FetchRange(
              *loc, begin, len,
              [&](uint64_t off, std::span<const std::byte> data) -> oci::Result<void> {
                std::memcpy(buf.data() + (off - begin), data.data(), data.size());
                return {};
              },
              stop.get()));
          return buf;
        }));
  }

  std::shared_ptr<HfClient> client_;
  std::shared_ptr<FileLocation> loc_;
  uint64_t segment_size_;
  int prefetch_;
  uint64_t segments_ = 0;
  uint64_t next_ = 0;
  std::shared_ptr<std::atomic<bool>> stop_ = std::make_shared<std::atomic<bool>>(false);
  std::deque<std::future<oci::Result<oci::Bytes>>> in_flight_;
  oci::Bytes current_;
  size_t pos_ = 0;
};

std::vector<oci::TarEntry> MakeEntries(const std::string& prefix,
                                       const std::vector<HfFile>& files) {
  std::set<std::string> dirs;
  for (size_t p = prefix.find('/'); p != std::string::npos; p = prefix.find('/', p + 1)) {
    dirs.insert(prefix.substr(0, p));
  }
  dirs.insert(prefix);
  std::vector<oci::TarEntry> entries;
  for (const auto& f : files) {
    std::string name = prefix + "/" + f.path;
    for (size_t p = name.find('/', prefix.size() + 1); p != std::string::npos;
         p = name.find('/', p + 1)) {
      dirs.insert(name.substr(0, p));
    }
    oci::TarEntry e;
    e.type = oci::TarEntry::Type::kFile;
    e.name = std::move(name);
    e.size = f.size;
    e.mode = 0644;
    entries.push_back(std::move(e));
  }
  for (const auto& d : dirs) {
    oci::TarEntry e;
    e.type = oci::TarEntry::Type::kDirectory;
    e.name = d;
    e.mode = 0755;
    entries.push_back(std::move(e));
  }
  oci::SortTarEntries(entries);  // the order oci::ScanDirectory gives
  return entries;
}

}  // namespace

oci::Result<ModelInput> OpenHfModel(std::shared_ptr<registry::Transport> transport,
                                    std::string_view source, const HfModelOptions& options) {
  MC_ASSIGN_OR_RETURN(HfRepoRef ref, ParseHfSource(source));
  MC_ASSIGN_OR_RETURN(std::string prefix, oci::NormalizePrefix(options.prefix));
  if (options.segment_size < (64 << 10) || options.prefetch < 1) {
    return Fail(ErrorCode::kInvalidInput, "hf:// streaming: segment size must be >= 64K");
  }
  auto client = std::make_shared<HfClient>(std::move(transport), options.hub);
  MC_ASSIGN_OR_RETURN(std::string commit, client->ResolveCommit(ref));
  MC_ASSIGN_OR_RETURN(auto listed, client->ListFiles(ref.repo_id, commit));
  auto files = FilterHfFiles(listed, options.include, options.exclude);
  if (files.empty()) {
    return Fail(ErrorCode::kNotFound, ref.String() + "@" + commit.substr(0, 12) + ": " +
                                          (listed.empty() ? "the repository has no files"
                                                          : "no file matches --include/--exclude"));
  }
  ModelInput input;
  input.source = ref.String();
  input.revision = commit;
  input.entries = MakeEntries(prefix, files);
  auto by_name = std::make_shared<std::map<std::string, HfFile>>();
  for (const auto& f : files) (*by_name)[prefix + "/" + f.path] = f;
  uint64_t segment_size = options.segment_size;
  int prefetch = options.prefetch;
  std::string repo_id = ref.repo_id;
  input.content = [client, by_name, commit, repo_id, segment_size, prefetch](
                      const oci::TarEntry& entry) -> oci::Result<std::unique_ptr<oci::Reader>> {
    auto it = by_name->find(entry.name);
    if (it == by_name->end()) {
      return Fail(ErrorCode::kInternal, "hf:// content asked for an unknown entry " + entry.name);
    }
    auto loc = std::make_shared<FileLocation>();
    loc->repo_id = repo_id;
    loc->commit = commit;
    loc->file = it->second;
    std::string what = repo_id + "/" + it->second.path;
    if (it->second.size > 0) MC_RETURN_IF_ERROR(client->Locate(*loc));
    std::unique_ptr<oci::Reader> reader =
        std::make_unique<PrefetchReader>(client, loc, segment_size, prefetch);
    return NewHfVerifyingReader(std::move(reader), it->second, what);
  };
  return input;
}

}  // namespace mc::engine
