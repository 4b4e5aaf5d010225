// Registry-backed ImageDestination and ImageSource.
//
// The blob writer is where the store contract (oci/store.h) meets the
// distribution API: the producer streams a layer it is still hashing, so the
// digest arrives only at Commit and goes into the closing `PUT ?digest=`.
// When the digest is known up front (copy, base layers) a HEAD comes first
// and a mount is tried when the hint names a repository on the same registry
// (protocols.md 1.9 step 1); a mount needs a token with pull on the source
// (2.4), so mounts use their own client whose scopes include it.
#include "registry/remote.h"

#include <nlohmann/json.hpp>

#include "registry/auth.h"
#include "registry/credentials.h"
#include "registry/curl_transport.h"
#include "registry/http_util.h"
#include "registry/log.h"
#include "registry/retry.h"

namespace mc::registry {
namespace {

class RegistryBlobWriter final : public oci::BlobWriter {
 public:
  // Nothing to upload (present or mounted).
  explicit RegistryBlobWriter(std::optional<oci::Digest> known)
      : known_(std::move(known)), done_(true) {}
  // `slot`: where the session is persisted (null: not resumable).
  RegistryBlobWriter(std::unique_ptr<UploadSession> session, std::shared_ptr<oci::ResumeSlot> slot)
      : session_(std::move(session)), slot_(std::move(slot)) {}
  ~RegistryBlobWriter() override { Abort(); }

  oci::Result<void> Write(std::span<const std::byte> data) override {
    if (done_) return {};  // the caller may write anyway; the registry has the blob
    if (!session_) return oci::Fail(oci::ErrorCode::kInternal, "write to a finished upload");
    return session_->Write(data);
  }
  // The session keeps the buffer (no copy) until the registry acknowledged it.
  oci::Result<void> WriteBuffer(oci::Buffer buffer) override {
    if (done_) return {};
    if (!session_) return oci::Fail(oci::ErrorCode::kInternal, "write to a finished upload");
    return session_->WriteBuffer(std::move(buffer));
  }
  uint64_t max_retained_bytes() const override {
    return session_ ? session_->max_retained_bytes() : 0;
  }
  oci::Result<void> Commit(const oci::Digest& digest, uint64_t size) override {
    if (done_) {
      if (known_ && *known_ != digest) {
        return oci::Fail(oci::ErrorCode::kVerificationFailed,
                         "blob " + known_->Short() + " was produced as " + digest.Short());
      }
      return {};
    }
    if (!session_) return oci::Fail(oci::ErrorCode::kInternal, "commit of a finished upload");
    MC_RETURN_IF_ERROR(session_->Commit(digest, size));
    session_.reset();
    done_ = true;
    if (slot_) slot_->Clear();
    return {};
  }
  void Abort() override {
    if (!session_) return;
    session_->Abort();
    session_.reset();
    if (slot_) slot_->Clear();
  }
  void Suspend() override {
    if (!session_) return;
    if (!slot_) return Abort();  // nobody could resume it: don't leave it behind
    // The chunk on the wire finishes (so the registry's size is a chunk
    // boundary our saved URL agrees with); the session and its slot stay.
    session_->Detach();
    Log()->info("upload to {} suspended at byte {}; the next run resumes it",
                session_->url().empty() ? "the registry" : RedactUrl(session_->url()),
                session_->committed());
    session_.reset();
  }
  uint64_t resume_offset() const override { return session_ ? session_->resume_offset() : 0; }
  bool done() const override { return done_; }

 private:
  std::unique_ptr<UploadSession> session_;
  std::shared_ptr<oci::ResumeSlot> slot_;
  std::optional<oci::Digest> known_;
  bool done_ = false;
};

// The state a resumable upload keeps in its slot: the newest session URL and
// the offset the registry acknowledged (informational: the registry is asked).
std::string EncodeUploadState(const UploadState& s, const std::optional<oci::Digest>& digest) {
  nlohmann::json j = {{"url", s.url}, {"offset", s.offset}};
  if (digest) j["digest"] = digest->String();
  return j.dump();
}

// Checked: a state file is advisory, so anything unexpected means "none".
std::optional<UploadState> DecodeUploadState(const std::string& text,
                                             const std::optional<oci::Digest>& digest) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto url = j.find("url");
  auto offset = j.find("offset");
  if (url == j.end() || !url->is_string() || url->get_ref<const std::string&>().empty() ||
      offset == j.end() || !offset->is_number_unsigned()) {
    return std::nullopt;
  }
  if (digest) {  // a copied blob: the session must be for this digest
    auto d = j.find("digest");
    if (d == j.end() || !d->is_string() || d->get_ref<const std::string&>() != digest->String())
      return std::nullopt;
  }
  return UploadState{url->get<std::string>(), offset->get<uint64_t>()};
}

std::string BaseUrl(const std::string& scheme, const Reference& ref) {
  return scheme + "://" + ref.ApiHost();
}

struct Stack {
  std::shared_ptr<Transport> base;
  std::shared_ptr<TokenCache> cache = std::make_shared<TokenCache>();
  Credential credential;
  std::string base_url;
};

// Picks the scheme (see remote.h) with unauthenticated GETs of /v2/.
oci::Result<std::string> ChooseScheme(const Reference& ref, const RemoteOptions& o,
                                      Transport& base) {
  if (!o.scheme.empty()) return BaseUrl(o.scheme, ref);
  // Only a registry answer counts: a TLS server answers plain http with 400
  // ("Client sent an HTTP request to an HTTPS server").
  auto plain_answers = [&]() {
    HttpRequest plain;
    plain.url = BaseUrl("http", ref) + "/v2/";
    plain.no_retry = true;
    auto p = base.Send(plain);
    bool ok =
        p && (p->status == 200 || p->status == 401 || p->Header("docker-distribution-api-version"));
    if (p) (void)p->ReadBody(64 << 10);
    if (ok) Log()->debug("{} answers plain http", ref.registry());
    return ok;
  };
  bool loopback = IsLoopbackHost(ref.Hostname());
  if (loopback && plain_answers()) {
    Log()->debug(
        "{} is a loopback address answering plain HTTP: using http:// without "
        "--tls-verify=false (loopback only)",
        ref.registry());
    return BaseUrl("http", ref);
  }
  std::string https = BaseUrl("https", ref);
  HttpRequest probe;
  probe.url = https + "/v2/";
  probe.no_retry = true;
  auto r = base.Send(probe);
  if (r) {
    (void)r->ReadBody(64 << 10);
    return https;
  }
  // The https failure (say, an unknown CA) is the telling error.
  if (!loopback && !o.transport.tls.verify && plain_answers()) return BaseUrl("http", ref);
  // A plain-HTTP server answers a TLS hello with HTTP: OpenSSL says "wrong
  // version number" (or "packet length too long"); name the flag that helps.
  const std::string& m = r.error().message;
  if (!loopback && o.transport.tls.verify &&
      (r.error().code == oci::ErrorCode::kNetwork ||
       r.error().code == oci::ErrorCode::kTransient) &&
      (m.find("wrong version number") != std::string::npos ||
       m.find("packet length too long") != std::string::npos)) {
    oci::Error e = r.error();
    e.message += ": " + ref.registry() +
                 " seems to speak plain HTTP, not HTTPS; if you trust it, pass --tls-verify=false";
    if (!o.flag_prefix.empty()) e.message += " (or --" + o.flag_prefix + "tls-verify=false)";
    return std::unexpected(e);
  }
  return std::unexpected(r.error());
}

oci::Result<Stack> BuildStack(const Reference& ref, const RemoteOptions& o) {
  Stack s;
  s.base = o.base_transport ? o.base_transport : NewHttpTransport(o.transport);
  if (o.anonymous) {
    Log()->debug("{}: accessing {} anonymously", o.side, ref.registry());
  } else {
    KeychainOptions kc;
    if (!o.creds.empty()) kc.creds = o.creds;
    kc.creds_flag = o.creds_flag;
    kc.authfile = o.authfile;
    MC_ASSIGN_OR_RETURN(s.credential, Keychain(kc).Resolve(ref.registry(), ref.repository()));
  }
  MC_ASSIGN_OR_RETURN(s.base_url, ChooseScheme(ref, o, *s.base));
  return s;
}

AuthFactory MakeAuthFactory(const Reference& ref, const Stack& s) {
  return [registry = ref.registry(), s](std::vector<std::string> scopes) {
    AuthConfig cfg;
    cfg.registry = registry;
    cfg.credential = s.credential;
    cfg.scopes = std::move(scopes);
    cfg.token_transport = s.base;
    cfg.cache = s.cache;
    return NewAuthTransport(s.base, std::move(cfg));
  };
}

oci::Error Side(const oci::Error& e, const RemoteOptions& o, const Reference& ref) {
  oci::Error named = e;
  // api_error.cc's hint names the common flags; this side has its own.
  static constexpr std::string_view kHint = "(--creds, --authfile)";
  if (size_t at = named.message.find(kHint); e.code == oci::ErrorCode::kUnauthorized &&
                                             !o.flag_prefix.empty() && at != std::string::npos) {
    named.message.replace(at, kHint.size(),
                          "(--" + o.flag_prefix + "creds, --" + o.flag_prefix + "authfile)");
  }
  return named.Wrap(o.side + " docker://" + ref.String());
}

}  // namespace

// ------------------------------------------------------------ destination

RegistryDestination::RegistryDestination(Reference ref, std::string base_url, AuthFactory auth,
                                         UploadOptions upload)
    : ref_(std::move(ref)),
      base_url_(std::move(base_url)),
      auth_(std::move(auth)),
      upload_(std::move(upload)),
      client_(auth_({ref_.Scope("pull,push")}), base_url_, ref_.registry(), ref_.repository()) {}

oci::Result<bool> RegistryDestination::Exists(const oci::Digest& digest) {
  MC_ASSIGN_OR_RETURN(auto size, client_.HeadBlob(digest));
  return size.has_value();
}

RegistryClient& RegistryDestination::MountClient(const std::string& from) {
  std::lock_guard lock(mu_);
  auto& c = mount_clients_[from];
  if (!c) {
    c = std::make_unique<RegistryClient>(
        auth_({ref_.Scope("pull,push"), "repository:" + from + ":pull"}), base_url_,
        ref_.registry(), ref_.repository());
  }
  return *c;
}

oci::Result<std::unique_ptr<oci::BlobWriter>> RegistryDestination::BeginWith(
    const oci::BlobHint& hint, UploadOptions options) {
  const auto& slot = hint.resume;
  if (hint.digest) {
    if (!hint.checked_absent) {
      MC_ASSIGN_OR_RETURN(auto present, client_.HeadBlob(*hint.digest));
      if (present) {
        if (slot) slot->Clear();
        return std::make_unique<RegistryBlobWriter>(hint.digest);
      }
    }
    if (hint.mount_from && *hint.mount_from != ref_.repository()) {
      auto m = MountClient(*hint.mount_from).Mount(*hint.digest, *hint.mount_from, options);
      if (m && m->mounted) return std::make_unique<RegistryBlobWriter>(hint.digest);
      if (m) return std::make_unique<RegistryBlobWriter>(std::move(m->session), slot);
      Log()->warn("{}; uploading instead", m.error().message);
    }
  }
  MC_ASSIGN_OR_RETURN(auto session, client_.StartUpload(std::move(options)));
  return std::make_unique<RegistryBlobWriter>(std::move(session), slot);
}

oci::Result<std::unique_ptr<oci::BlobWriter>> RegistryDestination::Begin(
    const oci::BlobHint& hint) {
  UploadOptions options = upload_;
  const auto& slot = hint.resume;
  if (!slot) return BeginWith(hint, std::move(options));
  options.on_progress = [slot, digest = hint.digest](const UploadState& s) {
    slot->Save(EncodeUploadState(s, digest));
  };
  std::optional<UploadState> resume;
  if (auto text = slot->Load()) {
    resume = DecodeUploadState(*text, hint.digest);
    if (!resume) Log()->warn("{}: ignoring an unreadable upload state", Describe());
  }
  if (resume) {
    // The registry, not our file, says how much it holds (a PATCH may have
    // landed after the last state we saved, or the session may be gone).
    auto s = client_.ResumeUpload(resume->url, options);
    if (s) {
      Log()->info("resuming the upload to {} at byte {} (saved: {})", Describe(),
                  (*s)->resume_offset(), resume->offset);
      return std::make_unique<RegistryBlobWriter>(std::move(*s), slot);
    }
    if (s.error().code != oci::ErrorCode::kNotFound) return std::unexpected(s.error());
    Log()->info("{}: the registry no longer has the saved upload session; starting the blob again",
                Describe());
  }
  slot->Clear();
  return BeginWith(hint, std::move(options));
}

oci::Result<std::optional<oci::Digest>> RegistryDestination::ManifestDigest(
    const std::string& tag_or_digest) {
  MC_ASSIGN_OR_RETURN(auto d, client_.HeadManifest(tag_or_digest));
  if (!d || d->digest.empty()) return std::optional<oci::Digest>{};
  return std::optional<oci::Digest>{d->digest};
}

oci::Result<void> RegistryDestination::PutManifest(const oci::RawManifest& manifest,
                                                   const std::optional<std::string>& tag) {
  return client_.PutManifest(manifest, tag ? *tag : manifest.digest.String());
}

// ------------------------------------------------------------ source

RegistrySource::RegistrySource(Reference ref, std::string base_url,
                               std::shared_ptr<Transport> transport)
    : ref_(std::move(ref)),
      client_(std::move(transport), std::move(base_url), ref_.registry(), ref_.repository()) {}

oci::Result<oci::RawManifest> RegistrySource::GetManifest(const std::string& tag_or_digest) {
  return client_.GetManifest(tag_or_digest.empty() ? ref_.Identifier() : tag_or_digest);
}

oci::Result<std::unique_ptr<oci::Reader>> RegistrySource::OpenBlob(const oci::Descriptor& desc) {
  MC_ASSIGN_OR_RETURN(auto blob, client_.GetBlob(desc.digest));
  return std::move(blob.body);
}

namespace {

// The first `left` bytes of a stream.
class LimitReader final : public oci::Reader {
 public:
  LimitReader(std::unique_ptr<oci::Reader> inner, uint64_t left)
      : inner_(std::move(inner)), left_(left) {}
  oci::Result<size_t> Read(std::span<std::byte> out) override {
    if (left_ == 0) return 0;
    if (out.size() > left_) out = out.first(static_cast<size_t>(left_));
    MC_ASSIGN_OR_RETURN(size_t n, inner_->Read(out));
    left_ -= n;
    return n;
  }

 private:
  std::unique_ptr<oci::Reader> inner_;
  uint64_t left_;
};

}  // namespace

oci::Result<std::unique_ptr<oci::Reader>> RegistrySource::OpenBlobRange(const oci::Descriptor& desc,
                                                                        uint64_t offset,
                                                                        uint64_t length) {
  MC_ASSIGN_OR_RETURN(auto blob, client_.GetBlob(desc.digest, offset, length));
  if (blob.offset != offset) {
    return oci::Fail(oci::ErrorCode::kRangeNotSatisfiable,
                     Describe() + " ignored a Range request for blob " + desc.digest.Short());
  }
  return std::unique_ptr<oci::Reader>(new LimitReader(std::move(blob.body), length));
}

oci::Result<void> RegistrySource::StreamBlobRange(const oci::Descriptor& desc, uint64_t offset,
                                                  uint64_t length, const ByteSink& sink) {
  return client_.StreamBlobRange(desc.digest, offset, length, sink);
}

// ------------------------------------------------------------ factories

oci::Result<std::unique_ptr<RegistryDestination>> OpenRegistryDestination(
    const Reference& ref, const RemoteOptions& options) {
  auto stack = BuildStack(ref, options);
  if (!stack) return std::unexpected(Side(stack.error(), options, ref));
  auto dest = std::make_unique<RegistryDestination>(ref, stack->base_url,
                                                    MakeAuthFactory(ref, *stack), options.upload);
  if (auto ping = dest->client().Ping(); !ping) {
    return std::unexpected(Side(ping.error(), options, ref));
  }
  return dest;
}

oci::Result<std::unique_ptr<RegistrySource>> OpenRegistrySource(const Reference& ref,
                                                                const RemoteOptions& options) {
  auto stack = BuildStack(ref, options);
  if (!stack) return std::unexpected(Side(stack.error(), options, ref));
  auto transport = MakeAuthFactory(ref, *stack)({ref.Scope("pull")});
  auto src = std::make_unique<RegistrySource>(ref, stack->base_url, std::move(transport));
  if (auto ping = src->client().Ping(); !ping) {
    return std::unexpected(Side(ping.error(), options, ref));
  }
  return src;
}

oci::Result<std::unique_ptr<oci::ImageDestination>> OpenRemoteDestination(
    const Reference& ref, const RemoteOptions& options) {
  MC_ASSIGN_OR_RETURN(auto d, OpenRegistryDestination(ref, options));
  return std::unique_ptr<oci::ImageDestination>(std::move(d));
}

oci::Result<std::unique_ptr<oci::ImageSource>> OpenRemoteSource(const Reference& ref,
                                                                const RemoteOptions& options) {
  MC_ASSIGN_OR_RETURN(auto s, OpenRegistrySource(ref, options));
  return std::unique_ptr<oci::ImageSource>(std::move(s));
}

}  // namespace mc::registry
