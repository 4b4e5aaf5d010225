#include "engine/attachments.h"

#include <deque>
#include <map>
#include <set>
#include <unordered_set>

#include "engine/sign.h"
#include "oci/attachments.h"
#include "oci/io.h"
#include "oci/media_types.h"
#include "registry/log.h"
#include "registry/remote.h"

namespace mc::engine {
namespace {

using oci::Digest;
using oci::ErrorCode;
namespace attach = oci::attach;

// Finds attachments at one registry repository; remembers its tag list and
// whether it has the referrers API.
class Finder {
 public:
  Finder(registry::RegistrySource& src, const AttachmentOptions& options)
      : src_(src), client_(src.client()), options_(options) {}

  oci::Result<std::vector<Attachment>> Find(const Digest& d, int depth) {
    std::vector<Attachment> out;
    const std::string stem = attach::DigestTag(d);
    for (const auto& suffix : attach::CosignSuffixes()) {
      if (!options_.signatures && suffix == ".sig") continue;
      MC_ASSIGN_OR_RETURN(auto m, Tagged(stem + suffix));
      if (!m) continue;
      Attachment a;
      a.kind = Attachment::Kind::kCosignTag;
      a.tag = stem + suffix;
      MC_ASSIGN_OR_RETURN(a.descriptor, attach::ReferrerDescriptor(*m));
      a.subject = d;
      a.found_by = "tag";
      a.depth = depth;
      out.push_back(std::move(a));
    }
    std::vector<std::pair<oci::Descriptor, std::string>> refs;
    if (api_ != Api::kNo) {
      MC_ASSIGN_OR_RETURN(auto listed, client_.GetReferrers(d));
      if (listed) {
        api_ = Api::kYes;
        for (auto& r : *listed) refs.emplace_back(std::move(r), "referrers-api");
      } else {
        api_ = Api::kNo;
      }
    }
    MC_ASSIGN_OR_RETURN(auto fallback, Tagged(stem));
    if (fallback) {
      auto idx = oci::ParseIndex(fallback->bytes, "fallback tag " + stem);
      if (!idx) {
        registry::Log()->warn("{}: tag {} is not an index of referrers; ignored", src_.Describe(),
                              stem);
      } else {
        for (auto& r : idx->manifests) refs.emplace_back(std::move(r), "fallback-tag");
      }
    }
    std::set<std::string> seen;
    for (auto& [desc, how] : refs) {
      if (!seen.insert(desc.digest.String()).second) continue;
      if (!options_.signatures && desc.artifact_type &&
          attach::IsSignatureType(*desc.artifact_type)) {
        continue;
      }
      Attachment a;
      a.kind = Attachment::Kind::kReferrer;
      a.descriptor = std::move(desc);
      a.subject = d;
      a.found_by = how;
      a.depth = depth;
      out.push_back(std::move(a));
    }
    return out;
  }

 private:
  enum class Api { kUnknown, kYes, kNo };

  // The manifest under `tag`, or nullopt. One tags/list answers "is it
  // there?" for every tag; a registry that refuses to list is asked per tag.
  oci::Result<std::optional<oci::RawManifest>> Tagged(const std::string& tag) {
    if (!tags_loaded_) {
      tags_loaded_ = true;
      auto tags = client_.ListTags();
      if (tags) {
        tags_ = std::unordered_set<std::string>(tags->begin(), tags->end());
      } else if (tags.error().code != ErrorCode::kUnauthorized &&
                 tags.error().code != ErrorCode::kNotFound) {
        return std::unexpected(tags.error());
      }
    }
    if (tags_ && !tags_->contains(tag)) return std::optional<oci::RawManifest>{};
    return client_.GetManifestIfPresent(tag);
  }

  registry::RegistrySource& src_;
  registry::RegistryClient& client_;
  const AttachmentOptions& options_;
  bool tags_loaded_ = false;
  std::optional<std::unordered_set<std::string>> tags_;
  Api api_ = Api::kUnknown;
};

oci::Result<std::vector<Attachment>> ListAt(registry::RegistrySource& src,
                                            const std::vector<Digest>& roots,
                                            const AttachmentOptions& options) {
  std::vector<Attachment> out;
  if (!options.referrers) return out;
  Finder finder(src, options);
  std::set<Digest> visited(roots.begin(), roots.end());
  std::deque<std::pair<Digest, int>> queue;
  for (const auto& r : roots) queue.emplace_back(r, 1);
  while (!queue.empty()) {
    auto [d, depth] = queue.front();
    queue.pop_front();
    if (depth > options.max_depth) continue;
    MC_ASSIGN_OR_RETURN(auto found, finder.Find(d, depth));
    for (auto& a : found) {
      if (visited.insert(a.descriptor.digest).second) {
        queue.emplace_back(a.descriptor.digest, depth + 1);
      }
      out.push_back(std::move(a));
    }
  }
  return out;
}

// The manifests an image consists of: `top`, and the children of an index.
std::vector<Digest> ImageDigests(const oci::RawManifest& top) {
  std::vector<Digest> out = {top.digest};
  if (oci::media::IsIndex(top.media_type)) {
    auto idx = oci::ParseIndex(top.bytes);
    if (idx) {
      for (const auto& c : idx->manifests) out.push_back(c.digest);
    }
  }
  return out;
}

// Puts the cosign tag `tag` at the destination. Signatures and attestations
// the destination holds there already (a mirror's own) are kept: the
// source's layers are merged in, as containers/image does when it writes
// sigstore attachments. Other tags (.sbom) are replaced.
oci::Result<void> PutCosignTag(registry::RegistryDestination& dest, const oci::RawManifest& m,
                               const std::string& tag) {
  registry::RegistryClient& dc = dest.client();
  if (!tag.ends_with(".sig") && !tag.ends_with(".att")) return dc.PutManifest(m, tag);
  MC_ASSIGN_OR_RETURN(auto there, dc.GetManifestIfPresent(tag));
  if (!there || there->digest == m.digest) return dc.PutManifest(m, tag);
  auto theirs = oci::ParseManifest(there->bytes, tag);
  auto ours = oci::ParseManifest(m.bytes, tag);
  if (!theirs || !ours) return dc.PutManifest(m, tag);
  std::optional<std::string> config;
  if (auto blob = dc.GetBlob(theirs->config.digest)) {
    auto bytes = oci::ReadAll(*blob->body, 1 << 20);
    if (bytes && oci::Digest::Of(*bytes) == theirs->config.digest) config = *bytes;
  }
  MC_ASSIGN_OR_RETURN(auto merged, attach::MergeSignatureImages(*theirs, config, *ours));
  if (!merged) return {};  // the destination has every signature already
  MC_RETURN_IF_ERROR(PutBlobBytes(dest, merged->config, std::string(oci::media::kOciConfig)));
  auto raw = oci::RawManifest::FromBytes(oci::SerializeManifest(merged->manifest),
                                         std::string(oci::media::kOciManifest));
  return dc.PutManifest(raw, tag);
}

}  // namespace

oci::Result<std::vector<Attachment>> ListAttachments(oci::ImageSource& src,
                                                     const std::vector<Digest>& roots,
                                                     const AttachmentOptions& options) {
  auto* reg = dynamic_cast<registry::RegistrySource*>(&src);
  if (!reg) return std::vector<Attachment>{};
  return ListAt(*reg, roots, options);
}

oci::Result<AttachmentCopyResult> CopyAttachments(oci::ImageSource& src, const Digest& source_top,
                                                  const oci::RawManifest& copied,
                                                  oci::ImageDestination& dest,
                                                  const AttachmentOptions& options,
                                                  const CopyOptions& copy_options) {
  AttachmentCopyResult result;
  auto* rsrc = dynamic_cast<registry::RegistrySource*>(&src);
  auto* rdest = dynamic_cast<registry::RegistryDestination*>(&dest);
  if (!rsrc || !rdest) {
    result.skipped = true;
    return result;
  }
  if (!options.referrers) return result;

  std::vector<Digest> roots = ImageDigests(copied);
  if (source_top != copied.digest) {
    // A platform was picked from an index: what is attached to the index
    // would point at a manifest the destination does not get.
    MC_RETURN_IF_ERROR(RefuseAttachedIndex(src, source_top, options));
  }
  MC_ASSIGN_OR_RETURN(auto attachments, ListAt(*rsrc, roots, options));

  registry::RegistryClient& sc = rsrc->client();
  registry::RegistryClient& dc = rdest->client();
  // Subject digest → referrers the destination did not index itself.
  std::map<Digest, std::vector<oci::Descriptor>> fallback;
  for (const auto& a : attachments) {
    const std::string ref =
        a.kind == Attachment::Kind::kCosignTag ? a.tag : a.descriptor.digest.String();
    const std::string what =
        "copying " +
        (a.kind == Attachment::Kind::kCosignTag ? "tag " + a.tag
                                                : "referrer " + a.descriptor.digest.String()) +
        " of " + a.subject.Short();
    auto got = sc.GetManifest(ref);
    if (!got) return std::unexpected(got.error().Wrap(what));
    oci::RawManifest m = std::move(*got);
    if (a.kind == Attachment::Kind::kReferrer) {
      auto subject = attach::SubjectOf(m.bytes);
      if (!subject || subject->digest != a.subject) {
        return oci::Fail(ErrorCode::kInvalidInput,
                         what + ": its subject is " +
                             (subject ? subject->digest.String() : std::string("missing")) +
                             ", not the manifest it is listed for");
      }
    }
    // The blobs (or, for an index, its whole tree by digest).
    if (oci::media::IsIndex(m.media_type)) {
      auto tree = CopyImage(src, m.digest.String(), dest, std::nullopt, copy_options);
      if (!tree) return std::unexpected(tree.error().Wrap(what));
    } else {
      MC_ASSIGN_OR_RETURN(oci::Manifest man, oci::ParseManifest(m.bytes, what));
      std::vector<oci::Descriptor> blobs = {man.config};
      blobs.insert(blobs.end(), man.layers.begin(), man.layers.end());
      for (const auto& b : blobs) {
        auto r = CopyBlob(src, b, dest, copy_options);
        if (!r) return std::unexpected(r.error().Wrap(what));
      }
    }
    if (a.kind == Attachment::Kind::kCosignTag) {
      auto put = PutCosignTag(*rdest, m, a.tag);
      if (!put) return std::unexpected(put.error().Wrap(what));
      ++result.cosign_tags;
      continue;
    }
    auto put = dc.PutManifestWithSubject(m, m.digest.String());
    if (!put) return std::unexpected(put.error().Wrap(what));
    ++result.referrers;
    if (!put->empty()) {
      result.destination_api = true;
      continue;
    }
    MC_ASSIGN_OR_RETURN(auto desc, attach::ReferrerDescriptor(m));
    fallback[a.subject].push_back(std::move(desc));
  }
  for (const auto& [subject, descs] : fallback) {
    const std::string tag = attach::DigestTag(subject);
    const std::string what = "updating the referrers tag " + tag + " at " + dest.Describe();
    auto old = dc.GetManifestIfPresent(tag);
    if (!old) return std::unexpected(old.error().Wrap(what));
    bool changed = false;
    auto merged =
        attach::MergeReferrersIndex(*old ? (*old)->bytes : std::string(), descs, &changed);
    if (!merged) return std::unexpected(merged.error().Wrap(what));
    if (!changed && *old) continue;
    auto raw = oci::RawManifest::FromBytes(std::move(*merged), std::string(oci::media::kOciIndex));
    auto put = dc.PutManifest(raw, tag);
    if (!put) return std::unexpected(put.error().Wrap(what));
    ++result.fallback_updates;
  }
  return result;
}

oci::Result<void> RefuseAttachedIndex(oci::ImageSource& src, const Digest& index_digest,
                                      const AttachmentOptions& options) {
  auto* rsrc = dynamic_cast<registry::RegistrySource*>(&src);
  if (!rsrc || !options.referrers) return {};
  AttachmentOptions direct = options;
  direct.max_depth = 1;
  MC_ASSIGN_OR_RETURN(auto on_index, ListAt(*rsrc, {index_digest}, direct));
  if (on_index.empty()) return {};
  return oci::Fail(ErrorCode::kInvalidInput,
                   src.Describe() + ": " + std::to_string(on_index.size()) +
                       " signature(s)/referrer(s) are attached to the index " +
                       index_digest.String() +
                       ", which --platform does not copy (their subject would change); copy "
                       "the whole index, or pass --referrers=false");
}

nlohmann::ordered_json AttachmentsJson(const Digest& top,
                                       const std::vector<Attachment>& attachments) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& a : attachments) {
    nlohmann::ordered_json e;
    e["type"] = a.kind == Attachment::Kind::kCosignTag ? "cosign-tag" : "referrer";
    e["found"] = a.found_by;
    if (!a.tag.empty()) e["tag"] = a.tag;
    e["digest"] = a.descriptor.digest.String();
    e["mediaType"] = a.descriptor.media_type;
    e["artifactType"] = a.descriptor.artifact_type.value_or("");
    e["size"] = a.descriptor.size;
    e["subject"] = a.subject.String();
    e["annotations"] = a.descriptor.annotations;
    list.push_back(std::move(e));
  }
  nlohmann::ordered_json out;
  out["Digest"] = top.String();
  out["Attachments"] = std::move(list);
  return out;
}

}  // namespace mc::engine
