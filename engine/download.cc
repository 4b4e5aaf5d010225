// The Downloader: a verified, resumable Hugging Face snapshot (download.h).
//
// `jobs` threads pull (file, segment) work from one pool, so small files and
// the segments of big ones share the connections. Each segment is a ranged GET
// written with pwrite at its offset in the part file. A free thread takes the
// next segment of the file with the fewest segments in flight (the first in
// listing order on a tie): files progress side by side, each on as few
// connections as the pool allows, so most bytes arrive at their file's hash
// cursor and are hashed on the spot, the read-back below stays small, and the
// files finish together instead of leaving one file's hashing for the end.
//
// SHA-256 of one file is serial, and we do not want to read a file back after
// downloading it. So each file keeps a "hashed up to" cursor: a chunk written
// exactly at the cursor is hashed on the spot (the leading segment is hashed
// as it streams); when a segment completes, whoever finishes it catches the
// cursor up by reading back the bytes that other segments already wrote (they
// are fresh in the page cache). Only one thread moves the cursor at a time
// (`catching_up`), and every chunk's bookkeeping is updated before any
// catch-up looks at it, so no byte is hashed twice or skipped.
//
// The same cursor makes resume cheap and safe: on a re-run the part file's
// completed bytes are rehashed from disk before new bytes are added.
//
// Durability without an fsync per file (which made a download wait for the
// disk, ~17% of the wall time on loopback): a verified file is renamed into
// place straight from the page cache, and the manifest records the kernel
// boot it was verified in. Page cache survives any process crash; only a
// kernel crash or reboot can lose it, and then the boot id differs, so every
// file of the manifest is re-hashed (not re-downloaded) before it is trusted.
// Where the boot id cannot be read, each file is fsynced as before.
//
// Nothing is written outside DIR: DIR/.mc-download and every directory a
// file lands in are opened below DIR with O_NOFOLLOW (engine/beneath.h), and
// part files, state files and final renames go through those descriptors. A
// symlink where a directory is expected (DIR/sub → /elsewhere) stops the
// download before any byte is fetched, with an error naming it.
#include "engine/download.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "engine/cancel.h"
#include "engine/download_state.h"
#include "engine/executor.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

namespace fs = std::filesystem;
using namespace download_internal;
using oci::ErrorCode;
using oci::Fail;

struct FileJob {
  HfFile file;
  fs::path final_path, part_path, state_path;  // for messages
  std::string parent_rel;                      // directory of the file below DIR ("" = DIR)
  std::string base_name;                       // its name there
  std::string part_name, state_name;           // in the state directory
  FileLocation loc;
  std::unique_ptr<FileHasher> hasher;
  int fd = -1;
  std::mutex mu;  // guards everything below
  PartState state;
  uint64_t hashed = 0;
  bool catching_up = false;
  size_t segments_left = 0;
  std::vector<size_t> pending;  // segments to fetch, in order (Run::sched_mu_)
  size_t next_pending = 0;      // Run::sched_mu_
  int in_flight = 0;            // Run::sched_mu_
  bool finishing = false;
  bool failed = false;
  std::mutex locate_mu;
  bool located = false;
  // Serializes writes of state_path with its removal: a segment that ends
  // just before the last one must not write the state after Finalize
  // removed it (a stale state file would outlive the verified file).
  std::mutex state_file_mu;
  bool state_file_removed = false;  // guarded by state_file_mu

  ~FileJob() {
    if (fd >= 0) ::close(fd);
  }
  uint64_t SegStart(size_t i) const { return i * state.segment_size; }
  uint64_t SegLen(size_t i) const { return std::min(state.segment_size, file.size - SegStart(i)); }
  // End of the bytes available for hashing from `from`, given what each
  // segment has written (under mu).
  uint64_t ContiguousEnd(uint64_t from) const {
    uint64_t end = from;
    for (size_t k = from / state.segment_size; k < state.done.size(); ++k) {
      uint64_t avail = SegStart(k) + state.done[k];
      if (avail > end) end = avail;
      if (state.done[k] < SegLen(k)) break;
    }
    return end;
  }
};

class Run {
 public:
  Run(HfClient& client, const DownloadOptions& options, const DirFd& root, const DirFd& state_dir,
      Manifest& manifest, std::shared_ptr<ProgressTask> progress)
      : client_(client),
        options_(options),
        root_(root),
        state_dir_(state_dir),
        manifest_(manifest),
        progress_(std::move(progress)) {}

  oci::Result<void> Execute(std::vector<std::unique_ptr<FileJob>>& jobs);
  // fsync each file before its rename (when the boot id is unavailable).
  void set_fsync_files(bool on) { fsync_files_ = on; }
  uint64_t transferred() const { return transferred_.load(); }

 private:
  void Worker();
  // The next segment to fetch (the file with the fewest in flight), or
  // nullptr when there is none; Done() returns the slot.
  FileJob* Next(size_t& seg);
  void Done(FileJob& job);
  oci::Result<void> FetchSegment(FileJob& job, size_t seg);
  oci::Result<void> OnChunk(FileJob& job, size_t seg, uint64_t offset,
                            std::span<const std::byte> data);
  oci::Result<bool> CatchUp(FileJob& job);
  oci::Result<void> Finalize(FileJob& job);
  void Record(oci::Error error);

  HfClient& client_;
  const DownloadOptions& options_;
  const DirFd& root_;
  const DirFd& state_dir_;
  Manifest& manifest_;
  std::shared_ptr<ProgressTask> progress_;
  std::vector<FileJob*> files_;  // with segments to fetch, in listing order
  std::mutex sched_mu_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> transferred_{0};
  std::mutex mu_;  // guards error_ and manifest_
  std::optional<oci::Error> error_;
  bool fsync_files_ = true;
};

void Run::Record(oci::Error error) {
  std::lock_guard lock(mu_);
  stop_ = true;
  // The first real error wins over the "stopped" errors it causes elsewhere.
  if (!error_ || (error_->code == ErrorCode::kCancelled && error.code != ErrorCode::kCancelled)) {
    error_ = std::move(error);
  }
}

oci::Result<void> Run::OnChunk(FileJob& job, size_t seg, uint64_t offset,
                               std::span<const std::byte> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(job.fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrorCode::kIo,
                  "writing " + job.part_path.string() + ": " + oci::ErrnoMessage(errno));
    }
    done += static_cast<size_t>(n);
  }
  std::lock_guard lock(job.mu);
  job.state.done[seg] = offset + data.size() - job.SegStart(seg);
  if (!job.catching_up && job.hashed == offset) {
    job.hasher->Update(data);
    job.hashed += data.size();
  }
  transferred_ += data.size();
  if (progress_) progress_->Add(data.size());
  return {};
}

// Moves the hash cursor over bytes already written; true when this call
// should finalize the file (everything written and hashed, once).
oci::Result<bool> Run::CatchUp(FileJob& job) {
  std::vector<std::byte> buf(1 << 20);
  for (;;) {
    uint64_t start, end;
    {
      std::lock_guard lock(job.mu);
      if (job.catching_up) return false;  // the thread catching up will see our bytes
      end = job.ContiguousEnd(job.hashed);
      if (end == job.hashed) {
        bool last = job.hashed == job.file.size && job.segments_left == 0 && !job.finishing;
        if (last) job.finishing = true;
        return last;
      }
      start = job.hashed;
      job.catching_up = true;
    }
    oci::Result<void> status;
    for (uint64_t pos = start; pos < end && status;) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - pos));
      ssize_t n = ::pread(job.fd, buf.data(), want, static_cast<off_t>(pos));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        status = Fail(ErrorCode::kIo, "reading back " + job.part_path.string() + ": " +
                                          (n < 0 ? oci::ErrnoMessage(errno) : "short file"));
        break;
      }
      job.hasher->Update(std::span(buf).first(static_cast<size_t>(n)));
      pos += static_cast<uint64_t>(n);
    }
    std::lock_guard lock(job.mu);
    job.catching_up = false;
    if (!status) return std::unexpected(status.error());
    job.hashed = end;
  }
}

oci::Result<void> Run::FetchSegment(FileJob& job, size_t seg) {
  {
    std::lock_guard lock(job.locate_mu);
    if (!job.located) {
      MC_RETURN_IF_ERROR(client_.Locate(job.loc));
      job.located = true;
    }
  }
  uint64_t done;
  {
    std::lock_guard lock(job.mu);
    done = job.state.done[seg];
  }
  uint64_t begin = job.SegStart(seg) + done;
  uint64_t len = job.SegLen(seg) - done;
  if (len > 0) {
    MC_RETURN_IF_ERROR(client_.FetchRange(
        job.loc, begin, len,
        [&](uint64_t off, std::span<const std::byte> data) { return OnChunk(job, seg, off, data); },
        &stop_));
    // Start writing this segment back now, so the fsync before the rename
    // waits for the last segment only, not for the whole file.
    if (fsync_files_)
      (void)::sync_file_range(job.fd, static_cast<off_t>(job.SegStart(seg)),
                              static_cast<off_t>(job.SegLen(seg)), SYNC_FILE_RANGE_WRITE);
  }
  std::optional<PartState> snapshot;
  {
    std::lock_guard lock(job.mu);
    if (--job.segments_left > 0) snapshot = job.state;
  }
  if (snapshot) {
    std::lock_guard lock(job.state_file_mu);
    if (!job.state_file_removed) {
      MC_RETURN_IF_ERROR(SavePartState(state_dir_, job.state_name, *snapshot));
    }
  }
  MC_ASSIGN_OR_RETURN(bool last, CatchUp(job));
  if (last) MC_RETURN_IF_ERROR(Finalize(job));
  return {};
}

oci::Result<void> Run::Finalize(FileJob& job) {
  std::string what = job.loc.repo_id + "/" + job.file.path;
  std::string got = job.hasher->HexDigest();
  if (fsync_files_ && ::fsync(job.fd) != 0) {
    return Fail(ErrorCode::kIo,
                "syncing " + job.part_path.string() + ": " + oci::ErrnoMessage(errno));
  }
  ::close(job.fd);
  job.fd = -1;
  if (!job.hasher->expected().empty() && got != job.hasher->expected()) {
    ::unlinkat(state_dir_.get(), job.part_name.c_str(), 0);
    {
      std::lock_guard lock(job.state_file_mu);
      job.state_file_removed = true;
      ::unlinkat(state_dir_.get(), job.state_name.c_str(), 0);
    }
    return Fail(ErrorCode::kVerificationFailed,
                what + ": downloaded bytes do not match the Hub's " +
                    (job.file.is_lfs() ? "sha256 " : "git oid ") + job.hasher->expected() +
                    " (got " + got + "); the partial file was deleted, run again to retry");
  }
  MC_ASSIGN_OR_RETURN(DirFd parent, OpenBeneath(root_, job.parent_rel, /*create=*/true));
  if (::renameat(state_dir_.get(), job.part_name.c_str(), parent.get(), job.base_name.c_str()) !=
      0) {
    return Fail(ErrorCode::kIo, "renaming " + job.part_path.string() + " to " +
                                    job.final_path.string() + ": " + oci::ErrnoMessage(errno));
  }
  {
    std::lock_guard lock(job.state_file_mu);
    job.state_file_removed = true;
    ::unlinkat(state_dir_.get(), job.state_name.c_str(), 0);
  }
  std::lock_guard lock(mu_);
  manifest_.files[job.file.path] = VerifiedFile{job.file.size, FileOid(job.file)};
  return SaveManifest(state_dir_, manifest_);
}

FileJob* Run::Next(size_t& seg) {
  std::lock_guard lock(sched_mu_);
  FileJob* best = nullptr;
  for (FileJob* job : files_) {
    if (job->next_pending == job->pending.size()) continue;
    if (!best || job->in_flight < best->in_flight) best = job;
    if (best->in_flight == 0) break;
  }
  if (best) {
    seg = best->pending[best->next_pending++];
    ++best->in_flight;
  }
  return best;
}

void Run::Done(FileJob& job) {
  std::lock_guard lock(sched_mu_);
  --job.in_flight;
}

void Run::Worker() {
  for (;;) {
    if (stop_.load()) return;
    size_t seg = 0;
    FileJob* job = Next(seg);
    if (!job) return;
    if (Cancelled()) {
      Record(oci::Error{ErrorCode::kCancelled, "interrupted; run again to resume", 0, {}});
      return;
    }
    oci::Result<void> status;
    // Nothing may escape a worker thread (that would be std::terminate): an
    // unexpected exception fails the download like any other error.
    try {
      status = FetchSegment(*job, seg);
    } catch (const std::exception& e) {
      status = Fail(ErrorCode::kInternal, job->file.path + ": internal error: " + e.what());
    }
    Done(*job);
    if (!status) {
      {
        std::lock_guard lock(job->mu);
        job->failed = true;
      }
      Record(status.error());
    }
  }
}

oci::Result<void> Run::Execute(std::vector<std::unique_ptr<FileJob>>& jobs) {
  size_t segments = 0;
  for (auto& job : jobs) {
    for (size_t s = 0; s < job->state.done.size(); ++s) {
      if (job->state.done[s] < job->SegLen(s)) job->pending.push_back(s);
    }
    segments += job->pending.size();
    if (!job->pending.empty()) files_.push_back(job.get());
    if (job->segments_left == 0) {  // every byte was there: rehash and finish
      MC_ASSIGN_OR_RETURN(bool last, CatchUp(*job));
      if (last) MC_RETURN_IF_ERROR(Finalize(*job));
    }
  }
  int threads = std::max(1, std::min<int>(options_.jobs, static_cast<int>(segments)));
  {
    Executor workers(threads, "download", [this](const oci::Error& e) { Record(e); });
    for (int t = 0; t < threads; ++t) workers.Post([this] { Worker(); });
    workers.Join();
  }
  // Keep what the segments reached, for the next run.
  for (auto& job : jobs) {
    struct stat st;
    if (job->fd >= 0 &&
        ::fstatat(state_dir_.get(), job->part_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      (void)SavePartState(state_dir_, job->state_name, job->state);
    }
  }
  if (error_) return std::unexpected(*error_);
  return {};
}

// Opens (or creates) the part file of a job and loads its resume state.
oci::Result<void> PrepareJob(FileJob& job, const DirFd& state_dir, uint64_t segment_size) {
  auto saved = LoadPartState(state_dir, job.state_name, job.file);
  struct stat st {};
  bool part_ok = saved &&
                 ::fstatat(state_dir.get(), job.part_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == job.file.size;
  if (part_ok) {
    job.state = *saved;
  } else {
    job.state = PartState{job.file.path, job.file.size, FileOid(job.file), segment_size, {}};
    size_t n = static_cast<size_t>((job.file.size + segment_size - 1) / segment_size);
    job.state.done.assign(n, 0);
  }
  job.fd = ::openat(state_dir.get(), job.part_name.c_str(),
                    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (part_ok ? 0 : O_TRUNC), 0644);
  if (job.fd < 0 || ::ftruncate(job.fd, static_cast<off_t>(job.file.size)) != 0) {
    return Fail(ErrorCode::kIo, "cannot create " + job.part_path.string() + ": " +
                                    oci::ErrnoMessage(errno) + " (is DIR writable?)");
  }
  job.hasher = std::make_unique<FileHasher>(job.file);
  for (size_t s = 0; s < job.state.done.size(); ++s) {
    if (job.state.done[s] < job.SegLen(s)) ++job.segments_left;
  }
  return {};
}

// True when dir/name is a regular file (not a link) of `size` bytes.
bool RegularFileOfSize(const DirFd* dir, const std::string& name, uint64_t size) {
  struct stat st;
  return dir != nullptr && ::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == size;
}

// Hashes an existing final file that the manifest does not know (a copy
// made by other means): if it matches, it needs no download. A link there is
// never read (it is replaced when the file is written).
bool ExistingFileMatches(const DirFd* dir, const std::string& name, const HfFile& file) {
  if (!RegularFileOfSize(dir, name, file.size) || FileOid(file).empty()) return false;
  int fd = ::openat(dir->get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  auto verifying = NewHfVerifyingReader(std::make_unique<oci::FdReader>(fd, dir->Child(name)), file,
                                        dir->Child(name));
  oci::NullWriter sink;
  return oci::Copy(*verifying, sink).has_value();
}

oci::Result<void> CreateEmptyFile(const DirFd& root, const FileJob& job) {
  FileHasher hasher(job.file);
  if (!hasher.expected().empty() && hasher.HexDigest() != hasher.expected()) {
    return Fail(ErrorCode::kVerificationFailed,
                job.file.path + ": the Hub lists it as empty but its hash is not an empty file's");
  }
  MC_ASSIGN_OR_RETURN(DirFd parent, OpenBeneath(root, job.parent_rel, /*create=*/true));
  return WriteFileAtomicAt(parent, job.base_name, "");
}

}  // namespace

oci::Result<DownloadResult> Download(std::shared_ptr<registry::Transport> transport,
                                     const DownloadOptions& options, Progress* progress) {
  MC_ASSIGN_OR_RETURN(HfRepoRef ref, ParseHfSource(options.source));
  if (options.segment_size < (64 << 10)) {
    return Fail(ErrorCode::kInvalidInput, "--segment-size must be at least 64K");
  }
  HfClient client(std::move(transport), options.hub);
  MC_ASSIGN_OR_RETURN(std::string commit, client.ResolveCommit(ref));
  MC_ASSIGN_OR_RETURN(auto listed, client.ListFiles(ref.repo_id, commit));
  auto files = FilterHfFiles(listed, options.include, options.exclude);
  if (files.empty()) {
    return Fail(ErrorCode::kInvalidInput,
                ref.String() + "@" + commit.substr(0, 12) + ": " +
                    (listed.empty() ? "the repository has no files"
                                    : "no file matches --include/--exclude"));
  }
  DownloadResult result{ref.String(), ref.repo_id, ref.revision, commit, files.size()};
  for (const auto& f : files) result.bytes += f.size;

  MC_ASSIGN_OR_RETURN(DirFd root, OpenRootDir(options.dir, /*create=*/true));
  fs::path state_path = options.dir / kDownloadStateDir;
  MC_ASSIGN_OR_RETURN(DirFd state_dir, OpenBeneath(root, kDownloadStateDir, /*create=*/true));
  Manifest manifest = LoadManifest(state_dir);
  const std::string boot_id = CurrentBootId();
  if (manifest.boot_id != boot_id) {
    // Verified in another boot without fsync: re-hash whatever is on disk.
    manifest.files.clear();
    manifest.boot_id = boot_id;
  }
  manifest.source = result.source;
  manifest.commit = commit;

  // Every directory a file lands in, checked before anything is written: a
  // link where a directory is expected is an error (missing ones are made later).
  for (const auto& f : files) {
    size_t slash = f.path.rfind('/');
    if (slash == std::string::npos) continue;
    auto opened = OpenBeneath(root, f.path.substr(0, slash), /*create=*/false);
    if (!opened && opened.error().code != ErrorCode::kNotFound) {
      return std::unexpected(opened.error());
    }
  }
  std::vector<std::unique_ptr<FileJob>> jobs;
  uint64_t to_fetch = 0;
  for (const auto& f : files) {
    if (f.path == kDownloadStateDir || f.path.starts_with(std::string(kDownloadStateDir) + "/")) {
      return Fail(ErrorCode::kInvalidInput, f.path + ": clashes with the download state directory");
    }
    auto job = std::make_unique<FileJob>();
    job->file = f;
    job->final_path = options.dir / f.path;
    size_t slash = f.path.rfind('/');
    job->parent_rel = slash == std::string::npos ? "" : f.path.substr(0, slash);
    job->base_name = slash == std::string::npos ? f.path : f.path.substr(slash + 1);
    // A link where a directory is expected stops the download here, before
    // anything is fetched; a missing directory is created when the file lands.
    std::optional<DirFd> parent;
    if (auto opened = OpenBeneath(root, job->parent_rel, /*create=*/false)) {
      parent = std::move(*opened);
    } else if (opened.error().code != ErrorCode::kNotFound) {
      return std::unexpected(opened.error());
    }
    const DirFd* parent_fd = parent ? &*parent : nullptr;
    auto known = manifest.files.find(f.path);
    bool verified = known != manifest.files.end() && known->second.oid == FileOid(f) &&
                    known->second.size == f.size &&
                    RegularFileOfSize(parent_fd, job->base_name, f.size);
    if (!verified && ExistingFileMatches(parent_fd, job->base_name, f)) {
      manifest.files[f.path] = VerifiedFile{f.size, FileOid(f)};
      verified = true;
    }
    if (verified) {
      ++result.files_skipped;
      continue;
    }
    manifest.files.erase(f.path);
    if (f.size == 0) {
      MC_RETURN_IF_ERROR(CreateEmptyFile(root, *job));
      manifest.files[f.path] = VerifiedFile{0, FileOid(f)};
      continue;
    }
    std::string key = StateKey(f.path);
    job->part_name = key + ".part";
    job->state_name = key + ".json";
    job->part_path = state_path / job->part_name;
    job->state_path = state_path / job->state_name;
    job->loc.repo_id = ref.repo_id;
    job->loc.commit = commit;
    job->loc.file = f;
    MC_RETURN_IF_ERROR(PrepareJob(*job, state_dir, options.segment_size));
    to_fetch += f.size;
    for (uint64_t d : job->state.done) to_fetch -= d;
    jobs.push_back(std::move(job));
  }
  MC_RETURN_IF_ERROR(SaveManifest(state_dir, manifest));
  registry::Log()->info("{}@{}: {} files, {} bytes; {} already verified", result.source, commit,
                        result.files, result.bytes, result.files_skipped);

  std::shared_ptr<ProgressTask> task;
  if (progress) task = progress->Start("download", ref.repo_id, to_fetch);
  Run run(client, options, root, state_dir, manifest, task);
  run.set_fsync_files(boot_id.empty());
  auto status = run.Execute(jobs);
  result.bytes_transferred = run.transferred();
  if (task) task->Finish();
  if (!status) return std::unexpected(status.error());
  return result;
}

}  // namespace mc::engine
