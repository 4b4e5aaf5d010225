#include "oci/tar_list.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <vector>

namespace mc::oci {
namespace {

struct ReadContext {
  Reader* in;
  std::vector<std::byte> buf = std::vector<std::byte>(1 << 20);
  std::optional<Error> error;
};

la_ssize_t ReadCallback(struct archive*, void* client, const void** out) {
  auto* ctx = static_cast<ReadContext*>(client);
  auto n = ctx->in->Read(ctx->buf);
  if (!n) {
    ctx->error = n.error();
    return -1;
  }
  *out = ctx->buf.data();
  return static_cast<la_ssize_t>(*n);
}

std::string Clean(const char* p) {
  std::string s = p ? p : "";
  while (s.starts_with("./")) s.erase(0, 2);
  while (s.starts_with("/")) s.erase(0, 1);
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

Result<void> ListTar(Reader& in, const std::function<void(const TarListEntry&)>& visit) {
  std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(),
                                                                  archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  ReadContext ctx{&in};
  if (archive_read_open(a.get(), &ctx, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    if (ctx.error) return std::unexpected(*ctx.error);
    return Fail(ErrorCode::kInvalidInput,
                std::string("not a tar stream: ") + archive_error_string(a.get()));
  }
  struct archive_entry* e = nullptr;
  for (;;) {
    int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) return {};
    if (rc < ARCHIVE_WARN) {
      if (ctx.error) return std::unexpected(*ctx.error);
      return Fail(ErrorCode::kInvalidInput,
                  std::string("reading tar: ") + archive_error_string(a.get()));
    }
    TarListEntry entry;
    entry.name = Clean(archive_entry_pathname(e));
    entry.is_dir = archive_entry_filetype(e) == AE_IFDIR;
    entry.is_symlink = archive_entry_filetype(e) == AE_IFLNK;
    if (const char* l = archive_entry_symlink(e)) entry.link_target = l;
    if (const char* h = archive_entry_hardlink(e)) entry.link_target = Clean(h);
    visit(entry);
    archive_read_data_skip(a.get());
  }
}

}  // namespace mc::oci
