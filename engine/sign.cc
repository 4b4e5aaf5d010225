#include "engine/sign.h"

#include "oci/attachments.h"
#include "oci/io.h"
#include "oci/media_types.h"
#include "registry/http_util.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;

// A layer of the .sig image that already signs `payload_digest` with `key`.
bool AlreadySigned(const oci::Manifest& sig, const oci::Digest& payload_digest,
                   const std::string& payload, const SigningKey& key) {
  for (const auto& l : sig.layers) {
    if (l.digest != payload_digest) continue;
    auto a = l.annotations.find(std::string(oci::attach::kSignatureAnnotation));
    if (a == l.annotations.end()) continue;
    auto der = registry::Base64Decode(a->second);
    if (der && key.Verify(payload, *der)) return true;
  }
  return false;
}

oci::Result<SignatureRecord> SignOne(registry::RegistryDestination& dest, const oci::Digest& digest,
                                     const SigningKey& key) {
  registry::RegistryClient& client = dest.client();
  SignatureRecord rec;
  rec.signed_digest = digest;
  rec.tag = oci::attach::DigestTag(digest) + ".sig";
  const std::string what = "signing " + dest.reference().Name() + "@" + digest.String();

  const std::string payload = oci::attach::SimpleSigningPayload(dest.reference().Name(), digest);
  const oci::Digest payload_digest = oci::Digest::Of(payload);

  std::optional<oci::Manifest> existing;
  std::optional<std::string> existing_config;
  MC_ASSIGN_OR_RETURN(auto old, client.GetManifestIfPresent(rec.tag));
  if (old) {
    auto m = oci::ParseManifest(old->bytes, rec.tag);
    if (!m) {
      return oci::Fail(ErrorCode::kConflict, what + ": the tag " + rec.tag +
                                                 " holds something that is not a cosign "
                                                 "signature image (" +
                                                 old->media_type + ")");
    }
    if (AlreadySigned(*m, payload_digest, payload, key)) {
      rec.already_signed = true;
      rec.signature_manifest = old->digest;
      return rec;
    }
    existing = std::move(*m);
    auto cfg = client.GetBlob(existing->config.digest);
    if (cfg) {
      auto bytes = oci::ReadAll(*cfg->body, 1 << 20);
      if (bytes && oci::Digest::Of(*bytes) == existing->config.digest) existing_config = *bytes;
    }
  }

  MC_ASSIGN_OR_RETURN(std::string der, key.Sign(payload));
  auto payload_desc = PutBlobBytes(dest, payload, std::string(oci::attach::kSimpleSigning));
  if (!payload_desc) return std::unexpected(payload_desc.error().Wrap(what));
  MC_ASSIGN_OR_RETURN(auto image,
                      oci::attach::AppendSignature(existing, existing_config, *payload_desc,
                                                   registry::Base64Encode(der)));
  auto cfg = PutBlobBytes(dest, image.config, std::string(oci::media::kOciConfig));
  if (!cfg) return std::unexpected(cfg.error().Wrap(what));
  auto raw = oci::RawManifest::FromBytes(oci::SerializeManifest(image.manifest),
                                         std::string(oci::media::kOciManifest));
  auto put = dest.PutManifest(raw, rec.tag);
  if (!put) return std::unexpected(put.error().Wrap(what));
  rec.signature_manifest = raw.digest;
  return rec;
}

}  // namespace

oci::Result<oci::Descriptor> PutBlobBytes(oci::ImageDestination& dest, const std::string& bytes,
                                          std::string media_type) {
  oci::Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = oci::Digest::Of(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  MC_ASSIGN_OR_RETURN(bool have, dest.Exists(d.digest));
  if (have) return d;
  oci::BlobHint hint;
  hint.digest = d.digest;
  hint.size = d.size;
  hint.media_type = d.media_type;
  hint.checked_absent = true;
  MC_ASSIGN_OR_RETURN(auto w, dest.Begin(hint));
  if (!w->done()) MC_RETURN_IF_ERROR(w->Write(oci::AsBytes(bytes)));
  MC_RETURN_IF_ERROR(w->Commit(d.digest, bytes.size()));
  return d;
}

oci::Result<std::vector<SignatureRecord>> SignImage(registry::RegistryDestination& dest,
                                                    const oci::RawManifest& image,
                                                    const SigningKey& key,
                                                    const SignOptions& options) {
  std::vector<SignatureRecord> out;
  MC_ASSIGN_OR_RETURN(auto top, SignOne(dest, image.digest, key));
  out.push_back(std::move(top));
  if (options.sign_all && oci::media::IsIndex(image.media_type)) {
    MC_ASSIGN_OR_RETURN(oci::Index idx, oci::ParseIndex(image.bytes));
    for (const auto& child : idx.manifests) {
      if (!oci::media::IsManifest(child.media_type) && !oci::media::IsIndex(child.media_type)) {
        continue;
      }
      MC_ASSIGN_OR_RETURN(auto rec, SignOne(dest, child.digest, key));
      out.push_back(std::move(rec));
    }
  }
  return out;
}

nlohmann::json SignatureRecordsJson(const std::vector<SignatureRecord>& records) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : records) {
    arr.push_back({{"digest", r.signed_digest.String()},
                   {"tag", r.tag},
                   {"type", "cosign"},
                   {"signatureManifest", r.signature_manifest.String()}});
  }
  return arr;
}

}  // namespace mc::engine
