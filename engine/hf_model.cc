// `build hf://…`: a Hugging Face snapshot streamed straight into the layer.
//
// The tree listing gives every file's size, so the tar entries (names under
// the prefix, parent directories first, in archive order) exist before any
// byte arrives. The layer pipeline then asks for each file's content in entry
// order, and one HfStreamer serves them all:
//
//   Open(file i) ─▶ queue: segments of i, then of the next file (read ahead)
//   `prefetch` workers: take a segment and a buffer from the pool, fetch the
//     range into it (the transport hands libcurl's buffer straight to us),
//     hash it when the file's earlier segments are hashed, mark it ready
//   reader of file i: hands the ready segments out in order, returns each
//     buffer to the pool, and checks the file's digest before its last byte
//
// So the network keeps going across file boundaries (the next file is located
// and fetched while the tar thread finishes this one), each file is verified
// off the tar thread (sha256 for LFS files, the git blob sha1 for small
// ones; a mismatch is kVerificationFailed before a manifest exists), memory
// is the fixed pool (prefetch + 1 segment buffers, reused: no page faults
// per segment), and nothing touches the disk.
//
// Order: readers should open files in entry order for the read-ahead to pay;
// any order works (a file not read ahead is queued when it is opened). A file
// not opened yet may hold at most half the pool, so the files being read can
// always get buffers and a full pool always drains. Read-ahead covers the next
// file, and more small ones up to half a pool of bytes.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "engine/download.h"
#include "engine/executor.h"
#include "engine/hf_hub.h"
#include "oci/buffer.h"
#include "oci/tar.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;
using oci::Fail;

class HfStreamer : public std::enable_shared_from_this<HfStreamer> {
 public:
  struct File {
    std::string name;  // tar entry name
    HfFile file;
  };

  HfStreamer(std::shared_ptr<HfClient> client, std::string repo_id, std::string commit,
             std::vector<File> files, uint64_t segment_size, int prefetch)
      : client_(std::move(client)),
        repo_id_(std::move(repo_id)),
        commit_(std::move(commit)),
        files_(std::move(files)),
        segment_size_(segment_size),
        max_buffers_(static_cast<size_t>(prefetch) + 1),
        workers_(prefetch, "hf:// prefetch", [this](const oci::Error& e) { Stop(e); }) {
    for (size_t i = 0; i < files_.size(); ++i) index_[files_[i].name] = i;
    queued_.assign(files_.size(), false);
    for (int t = 0; t < prefetch; ++t) workers_.Post([this] { Work(); });
  }

  ~HfStreamer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    stop_flag_ = true;
    cv_.notify_all();
    workers_.Join();
  }

  oci::Result<std::unique_ptr<oci::Reader>> Open(const std::string& name);

 private:
  // A prefetch task threw (executor.h): every reader that waits gets `e`.
  void Stop(const oci::Error& e) {
    {
      std::lock_guard lock(mu_);
      if (!failure_) failure_ = e;
      stop_ = true;
    }
    stop_flag_ = true;
    cv_.notify_all();
  }

  struct Segment {
    uint64_t begin = 0, length = 0;
    oci::Buffer buffer;  // while fetched and not yet consumed
    bool ready = false;  // fetched and hashed, or failed
    std::optional<oci::Error> error;
  };
  struct FileState {
    FileLocation loc;
    std::mutex locate_mu;
    bool located = false;
    std::unique_ptr<FileHasher> hasher;
    std::vector<Segment> segments;  // guarded by mu_ (buffer contents: see Work)
    size_t hashed = 0;              // segments hashed so far (mu_)
    bool failed = false;            // a segment failed: later ones do not wait (mu_)
    bool opened = false;            // handed to a reader (mu_)
    bool abandoned = false;         // its reader went away early (mu_)
    size_t held = 0;                // pool buffers it holds (mu_)
  };
  class Reader;

  // Creates the state of file i and queues its segments (under mu_).
  std::shared_ptr<FileState> Queue(size_t i);
  // Queues the files after file `after` (under mu_): at least one, and small
  // ones until about half the pool's worth of bytes is queued ahead.
  void ReadAhead(size_t after);
  void Work();
  oci::Result<void> Fetch(FileState& st, Segment& seg, std::byte* into);
  // Returns a buffer of `st` to the pool (under mu_).
  void Release(FileState& st, oci::Buffer buffer);
  void Abandon(FileState& st);

  std::shared_ptr<HfClient> client_;
  std::string repo_id_, commit_;
  std::vector<File> files_;
  std::map<std::string, size_t> index_;
  uint64_t segment_size_;
  size_t max_buffers_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<size_t, std::shared_ptr<FileState>> pending_;  // read ahead, not yet opened
  std::vector<bool> queued_;                              // file i was ever queued
  std::deque<std::pair<std::shared_ptr<FileState>, size_t>> queue_;
  std::vector<oci::Buffer> free_;  // segment buffers, reused (never zero-filled)
  size_t buffers_ = 0;             // allocated so far (≤ max_buffers_)
  size_t ahead_held_ = 0;          // buffers held by files not opened yet (< max_buffers_ / 2)
  bool stop_ = false;
  std::optional<oci::Error> failure_;   // why stop_ was set early (mu_)
  std::atomic<bool> stop_flag_{false};  // for FetchRange
  Executor workers_;                    // last: its tasks use everything above
};

// Hands one file's ready segments out in order.
class HfStreamer::Reader final : public oci::Reader {
 public:
  Reader(std::shared_ptr<HfStreamer> owner, std::shared_ptr<FileState> st)
      : owner_(std::move(owner)), st_(std::move(st)) {}
  ~Reader() override {
    {
      std::lock_guard lock(owner_->mu_);
      if (current_) owner_->Release(*st_, std::move(current_));
    }
    if (next_ < st_->segments.size()) owner_->Abandon(*st_);
  }

  oci::Result<size_t> Read(std::span<std::byte> out) override {
    if (error_) return std::unexpected(*error_);  // sticky: never hand out bytes after it
    while (pos_ == length_) {
      std::unique_lock lock(owner_->mu_);
      if (current_) owner_->Release(*st_, std::move(current_));
      if (next_ == st_->segments.size()) {
        if (next_ == 0 && !verified_empty_) {  // an empty file: nothing was hashed
          verified_empty_ = true;
          MC_RETURN_IF_ERROR(Verify());
        }
        return 0;
      }
      Segment& seg = st_->segments[next_];
      owner_->cv_.wait(lock, [&] { return seg.ready || owner_->stop_; });
      if (!seg.ready) {
        if (owner_->failure_) return std::unexpected(*owner_->failure_);
        return Fail(ErrorCode::kCancelled, "hf:// streaming stopped");
      }
      if (seg.error) {
        error_ = seg.error;
        return std::unexpected(*error_);
      }
      current_ = std::move(seg.buffer);
      length_ = seg.length;
      pos_ = 0;
      ++next_;
      // Every byte is hashed once the last segment is ready: verify before
      // handing it out (the tar writer never reads past the last byte).
      if (next_ == st_->segments.size()) {
        if (auto v = Verify(); !v) {
          error_ = v.error();
          return std::unexpected(*error_);
        }
      }
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), length_ - pos_));
    std::memcpy(out.data(), current_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  oci::Result<void> Verify() const {
    const auto& expected = st_->hasher->expected();
    if (!expected.empty() && st_->hasher->HexDigest() != expected) {
      return Fail(ErrorCode::kVerificationFailed, st_->loc.repo_id + "/" + st_->loc.file.path +
                                                      ": content does not match its listed hash " +
                                                      expected);
    }
    return {};
  }

  std::shared_ptr<HfStreamer> owner_;
  std::shared_ptr<FileState> st_;
  oci::Buffer current_;
  uint64_t length_ = 0, pos_ = 0;
  size_t next_ = 0;
  bool verified_empty_ = false;
  std::optional<oci::Error> error_;
};

std::shared_ptr<HfStreamer::FileState> HfStreamer::Queue(size_t i) {
  auto st = std::make_shared<FileState>();
  st->loc.repo_id = repo_id_;
  st->loc.commit = commit_;
  st->loc.file = files_[i].file;
  st->hasher = std::make_unique<FileHasher>(files_[i].file);
  queued_[i] = true;
  uint64_t size = files_[i].file.size;
  for (uint64_t begin = 0; begin < size; begin += segment_size_) {
    st->segments.push_back(Segment{begin, std::min(segment_size_, size - begin), {}, false, {}});
  }
  for (size_t k = 0; k < st->segments.size(); ++k) queue_.emplace_back(st, k);
  cv_.notify_all();
  return st;
}

void HfStreamer::ReadAhead(size_t after) {
  const uint64_t want = std::max<uint64_t>(1, max_buffers_ / 2) * segment_size_;
  uint64_t ahead = 0;
  for (size_t i = after + 1; i < files_.size() && i <= after + 16 && ahead < want; ++i) {
    if (files_[i].file.size == 0) continue;
    if (!queued_[i]) pending_[i] = Queue(i);
    ahead += files_[i].file.size;
  }
}

oci::Result<std::unique_ptr<oci::Reader>> HfStreamer::Open(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return Fail(ErrorCode::kInternal, "hf:// content asked for an unknown entry " + name);
  }
  size_t i = it->second;
  std::lock_guard lock(mu_);
  std::shared_ptr<FileState> st;
  if (auto p = pending_.find(i); p != pending_.end()) {
    st = std::move(p->second);
    pending_.erase(p);
  } else {
    st = Queue(i);  // not read ahead (or opened again): fetch it now
  }
  if (!st->opened) ahead_held_ -= st->held;
  st->opened = true;
  ReadAhead(i);
  cv_.notify_all();  // its segments may take buffers now
  return std::make_unique<Reader>(shared_from_this(), std::move(st));
}

void HfStreamer::Release(FileState& st, oci::Buffer buffer) {
  --st.held;
  if (!st.opened) --ahead_held_;
  free_.push_back(std::move(buffer));
  cv_.notify_all();
}

void HfStreamer::Abandon(FileState& st) {
  std::lock_guard lock(mu_);
  st.abandoned = true;
  std::erase_if(queue_, [&](const auto& job) { return job.first.get() == &st; });
  for (auto& seg : st.segments) {
    if (seg.buffer) Release(st, std::move(seg.buffer));
  }
}

oci::Result<void> HfStreamer::Fetch(FileState& st, Segment& seg, std::byte* into) {
  {
    std::lock_guard lock(st.locate_mu);
    if (!st.located) {
      MC_RETURN_IF_ERROR(client_->Locate(st.loc));
      st.located = true;
    }
  }
  return client_->FetchRange(
      st.loc, seg.begin, seg.length,
      [&](uint64_t off, std::span<const std::byte> data) -> oci::Result<void> {
        std::memcpy(into + (off - seg.begin), data.data(), data.size());
        return {};
      },
      &stop_flag_);
}

void HfStreamer::Work() {
  for (;;) {
    std::shared_ptr<FileState> st;
    size_t k = 0;
    oci::Buffer buffer;
    bool skip = false;  // the file already failed: its reader stops there
    {
      std::unique_lock lock(mu_);
      // The first queued segment whose file may take a buffer now.
      auto job = queue_.end();
      cv_.wait(lock, [&] {
        if (stop_) return true;
        if (free_.empty() && buffers_ == max_buffers_) return false;
        job = std::find_if(queue_.begin(), queue_.end(), [&](const auto& j) {
          return j.first->opened || ahead_held_ < max_buffers_ / 2;
        });
        return job != queue_.end();
      });
      if (stop_) return;
      std::tie(st, k) = std::move(*job);
      queue_.erase(job);
      skip = st->failed;
      ++st->held;
      if (!st->opened) ++ahead_held_;
      if (!free_.empty()) {
        buffer = std::move(free_.back());
        free_.pop_back();
      } else {
        buffer = oci::Buffer::Heap(static_cast<size_t>(segment_size_));
        ++buffers_;
      }
    }
    Segment& seg = st->segments[k];
    oci::Result<void> status;
    try {
      status = skip ? Fail(ErrorCode::kCancelled, "an earlier segment failed")
                    : Fetch(*st, seg, buffer.data());
    } catch (const std::exception& e) {  // fails this file, not the stage
      status = Fail(ErrorCode::kInternal, st->loc.file.path + ": internal error: " + e.what());
    }
    std::unique_lock lock(mu_);
    if (status) {
      // Hash in file order; the earlier segments were queued first, so they
      // are fetched or in flight.
      cv_.wait(lock, [&] { return st->hashed == k || st->failed || st->abandoned || stop_; });
      if (st->hashed == k && !st->failed && !st->abandoned) {
        lock.unlock();  // only this thread may hash segment k
        st->hasher->Update(std::span<const std::byte>(buffer.data(), seg.length));
        lock.lock();
        ++st->hashed;
      }
    } else {
      st->failed = true;
      seg.error = status.error();
    }
    seg.ready = true;
    if (status && !st->abandoned) {
      seg.buffer = std::move(buffer);
    } else {
      Release(*st, std::move(buffer));
    }
    cv_.notify_all();
  }
}

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
  if (source.find('@') != std::string_view::npos && ref.revision != commit)
    input.version = ref.revision;
  input.entries = MakeEntries(prefix, files);
  // Files in entry (archive) order: the order the layer builder opens them.
  std::map<std::string, HfFile> by_name;
  for (const auto& f : files) by_name[prefix + "/" + f.path] = f;
  std::vector<HfStreamer::File> ordered;
  for (const auto& e : input.entries) {
    if (auto it = by_name.find(e.name); it != by_name.end())
      ordered.push_back({e.name, it->second});
  }
  // A few headers for a ModelPack config: plain ranged GETs of their own,
  // apart from the streamer (they come before the layers are built).
  input.peek = [client, by_name, repo_id = ref.repo_id, commit](
                   const oci::TarEntry& entry, uint64_t offset,
                   uint64_t length) -> oci::Result<std::string> {
    auto it = by_name.find(entry.name);
    if (it == by_name.end()) return Fail(ErrorCode::kNotFound, "no file " + entry.name);
    FileLocation loc;
    loc.repo_id = repo_id;
    loc.commit = commit;
    loc.file = it->second;
    MC_RETURN_IF_ERROR(client->Locate(loc));
    std::string out;
    MC_RETURN_IF_ERROR(client->FetchRange(
        loc, offset, length, [&](uint64_t, std::span<const std::byte> bytes) -> oci::Result<void> {
          out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          return {};
        }));
    return out;
  };
  auto streamer = std::make_shared<HfStreamer>(client, ref.repo_id, commit, std::move(ordered),
                                               options.segment_size, options.prefetch);
  input.content = [streamer](const oci::TarEntry& entry) { return streamer->Open(entry.name); };
  return input;
}

}  // namespace mc::engine
