#include "oci/attachments.h"

#include <gtest/gtest.h>

#include "oci/media_types.h"

namespace mc::oci::attach {
namespace {

using nlohmann::json;

Digest D(char c) { return *Digest::Parse("sha256:" + std::string(64, c)); }

TEST(AttachmentsTest, TagsAndPayload) {
  EXPECT_EQ(DigestTag(D('a')), "sha256-" + std::string(64, 'a'));
  std::string p = SimpleSigningPayload("127.0.0.1:5000/models/demo", D('b'));
  EXPECT_EQ(p,
            "{\"critical\":{\"identity\":{\"docker-reference\":\"127.0.0.1:5000/models/demo\"},"
            "\"image\":{\"docker-manifest-digest\":\"sha256:" +
                std::string(64, 'b') +
                "\"},\"type\":\"cosign container image signature\"},\"optional\":null}");
}

TEST(AttachmentsTest, AppendSignatureKeepsExistingLayers) {
  Descriptor payload{std::string(kSimpleSigning), D('1'), 200, {}, {}, {}, {}};
  auto first = AppendSignature(std::nullopt, std::nullopt, payload, "c2lnMQ==");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->manifest.layers.size(), 1u);
  EXPECT_EQ(first->manifest.layers[0].annotations.at(std::string(kSignatureAnnotation)),
            "c2lnMQ==");
  json cfg = json::parse(first->config);
  EXPECT_EQ(cfg["rootfs"]["diff_ids"], json::array({D('1').String()}));
  EXPECT_EQ(cfg["history"].size(), 1u);
  EXPECT_EQ(first->manifest.config.digest, Digest::Of(first->config));
  EXPECT_EQ(first->manifest.config.media_type, media::kOciConfig);

  Descriptor payload2 = payload;
  payload2.digest = D('2');
  auto second = AppendSignature(first->manifest, first->config, payload2, "c2lnMg==");
  ASSERT_TRUE(second);
  ASSERT_EQ(second->manifest.layers.size(), 2u);
  EXPECT_EQ(second->manifest.layers[0], first->manifest.layers[0]);
  cfg = json::parse(second->config);
  EXPECT_EQ(cfg["rootfs"]["diff_ids"], json::array({D('1').String(), D('2').String()}));
  EXPECT_EQ(cfg["history"].size(), 2u);
}

TEST(AttachmentsTest, MergeSignatureImagesAddsOnlyMissingLayers) {
  Descriptor p1{std::string(kSimpleSigning), D('1'), 200, {}, {}, {}, {}};
  Descriptor p2 = p1;
  p2.digest = D('2');
  auto mine = AppendSignature(std::nullopt, std::nullopt, p1, "bWluZQ==");
  auto theirs = AppendSignature(std::nullopt, std::nullopt, p2, "dGhlaXJz");
  ASSERT_TRUE(mine && theirs);
  auto merged = MergeSignatureImages(mine->manifest, mine->config, theirs->manifest);
  ASSERT_TRUE(merged);
  ASSERT_TRUE(merged->has_value());
  ASSERT_EQ((*merged)->manifest.layers.size(), 2u);
  EXPECT_EQ((*merged)->manifest.layers[0], mine->manifest.layers[0]);
  EXPECT_EQ((*merged)->manifest.layers[1], theirs->manifest.layers[0]);
  EXPECT_EQ(json::parse((*merged)->config)["rootfs"]["diff_ids"].size(), 2u);
  auto again = MergeSignatureImages((*merged)->manifest, (*merged)->config, theirs->manifest);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->has_value());
}

TEST(AttachmentsTest, SubjectAndReferrerDescriptor) {
  std::string bytes =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("artifactType":"application/spdx+json",)"
      R"("config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},)"
      R"("layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      D('c').String() + R"(","size":7},"annotations":{"org.example":"x"}})";
  auto subject = SubjectOf(bytes);
  ASSERT_TRUE(subject);
  EXPECT_EQ(subject->digest, D('c'));
  EXPECT_FALSE(SubjectOf("{\"layers\":[]}"));
  auto raw = RawManifest::FromBytes(bytes, std::string(media::kOciManifest));
  auto d = ReferrerDescriptor(raw);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->artifact_type, "application/spdx+json");
  EXPECT_EQ(d->annotations.at("org.example"), "x");
  EXPECT_EQ(d->digest, raw.digest);
  EXPECT_TRUE(IsSignatureType(kCosignSigArtifact));
  EXPECT_FALSE(IsSignatureType("application/spdx+json"));
}

TEST(AttachmentsTest, MergeReferrersIndex) {
  Descriptor a{std::string(media::kOciManifest), D('a'), 10, {}, {}, {}, "x/a"};
  Descriptor b{std::string(media::kOciManifest), D('b'), 11, {}, {}, {}, "x/b"};
  bool changed = false;
  auto first = MergeReferrersIndex("", {a}, &changed);
  ASSERT_TRUE(first);
  EXPECT_TRUE(changed);
  auto same = MergeReferrersIndex(*first, {a}, &changed);
  ASSERT_TRUE(same);
  EXPECT_FALSE(changed);
  EXPECT_EQ(*same, *first);
  auto both = MergeReferrersIndex(*first, {a, b}, &changed);
  ASSERT_TRUE(both);
  EXPECT_TRUE(changed);
  auto idx = ParseIndex(*both);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->manifests.size(), 2u);
  EXPECT_EQ(idx->manifests[0].digest, D('a'));
  EXPECT_EQ(idx->manifests[1].artifact_type, "x/b");
}

}  // namespace
}  // namespace mc::oci::attach
