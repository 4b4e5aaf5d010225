// `mc-engine inspect` against `skopeo inspect` of the same images: the
// summary field by field (and in skopeo's field order), for an oci: layout
// and for docker:// on a real docker-registry; --format against skopeo's
// --format for the template forms scripts use; exit 2 with no output for
// templates we do not support.
//
// The test image is written by hand (config and manifest JSON, a layer made
// by GNU tar + gzip) so that every field skopeo shows is set: a fractional
// created time, docker_version, a variant, labels with dots, an Env with
// characters Go's JSON escapes, layer annotations.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "tests/support/oci_test_image.h"
#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ojson = nlohmann::ordered_json;

std::string PutBlob(const fs::path& layout, const std::string& bytes) {
  oci::Digest d = oci::Digest::Of(bytes);
  WriteFile(layout / "blobs/sha256" / d.hex(), bytes);
  return d.String();
}

// An OCI layout tagged `tag` with one image whose config sets every field
// skopeo's summary shows. Returns the manifest digest.
std::string WriteRichLayout(const fs::path& work, const fs::path& layout, const std::string& tag) {
  fs::create_directories(work / "root/models");
  WriteFile(work / "root/models/config.json", "{\"model_type\":\"llama\"}\n");
  std::string out;
  EXPECT_EQ(mc::testing::Run(
                "tar -C " + Quote((work / "root").string()) +
                    " --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - models | gzip -n > " +
                    Quote((work / "layer.tar.gz").string()),
                &out),
            0)
      << out;
  std::string layer = ReadFile(work / "layer.tar.gz");
  std::string layer_digest = PutBlob(layout, layer);
  std::string diff_id;
  EXPECT_EQ(mc::testing::Run("gzip -dc " + Quote((work / "layer.tar.gz").string()) + " | sha256sum",
                             &diff_id, false),
            0);
  json config = {
      {"created", "2024-05-06T07:08:09.120000000Z"},
      {"architecture", "arm64"},
      {"variant", "v8"},
      {"os", "linux"},
      {"docker_version", "20.10.7"},
      {"config",
       {{"Env", {"PATH=/usr/bin:/bin", "NOTE=<a & b>"}},
        {"Labels", {{"org.opencontainers.image.version", "1.0"}, {"k", "v"}}},
        {"User", "1001"}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:" + diff_id.substr(0, 64)}}}}};
  std::string config_bytes = config.dump();
  std::string config_digest = PutBlob(layout, config_bytes);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", config_digest},
                     {"size", config_bytes.size()}}},
                   {"layers",
                    {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                      {"digest", layer_digest},
                      {"size", layer.size()},
                      {"annotations", {{"org.opencontainers.image.title", "model"}}}}}}};
  std::string manifest_bytes = manifest.dump();
  std::string manifest_digest = PutBlob(layout, manifest_bytes);
  json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", manifest_digest},
                   {"size", manifest_bytes.size()},
                   {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
  WriteFile(layout / "index.json", index.dump());
  WriteFile(layout / "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
  return manifest_digest;
}

struct Output {
  int rc = -1;
  std::string out;
};

Output Sh(const std::string& cmd) {
  Output o;
  o.rc = mc::testing::Run(cmd + " 2>/dev/null", &o.out, false);
  return o;
}

Output Ours(const std::string& args) {
  return Sh(Quote(EngineBinary()) + " --progress none inspect " + args);
}

Output Skopeo(const std::string& args) { return Sh("timeout 60 skopeo inspect " + args); }

// Every field skopeo prints is in ours, equal, and in the same order; fields
// newer skopeo versions print (LayersData, Variant) are checked against the
// manifest and config when this skopeo lacks them.
void ExpectSameSummary(const std::string& ours_text, const std::string& skopeo_text,
                       const json& manifest, const std::string& variant) {
  ojson ours = ojson::parse(ours_text, nullptr, false);
  ojson theirs = ojson::parse(skopeo_text, nullptr, false);
  ASSERT_TRUE(ours.is_object()) << ours_text;
  ASSERT_TRUE(theirs.is_object()) << skopeo_text;
  std::vector<std::string> their_keys, our_keys;
  for (const auto& [k, v] : theirs.items()) {
    their_keys.push_back(k);
    ASSERT_TRUE(ours.contains(k)) << "missing field " << k << " in " << ours_text;
    EXPECT_EQ(json::parse(ours[k].dump()), json::parse(v.dump())) << "field " << k;
  }
  for (const auto& [k, v] : ours.items()) {
    if (theirs.contains(k)) our_keys.push_back(k);
  }
  EXPECT_EQ(our_keys, their_keys) << "field order differs";
  if (!theirs.contains("LayersData")) {
    ASSERT_TRUE(ours.contains("LayersData"));
    ASSERT_EQ(ours["LayersData"].size(), manifest["layers"].size());
    for (size_t i = 0; i < manifest["layers"].size(); ++i) {
      const auto& want = manifest["layers"][i];
      const auto& got = ours["LayersData"][i];
      EXPECT_EQ(got["MIMEType"], want["mediaType"]);
      EXPECT_EQ(got["Digest"], want["digest"]);
      EXPECT_EQ(got["Size"], want["size"]);
      if (want.contains("annotations")) {
        EXPECT_EQ(json::parse(got["Annotations"].dump()), want["annotations"]);
      } else {
        EXPECT_TRUE(got["Annotations"].is_null());
      }
    }
  }
  if (!theirs.contains("Variant")) {
    if (variant.empty()) {
      EXPECT_FALSE(ours.contains("Variant"));
    } else {
      EXPECT_EQ(ours.value("Variant", ""), variant);
    }
  }
  // Go's encoder escapes <, > and & (json.MarshalIndent, four spaces).
  if (skopeo_text.find("\\u003c") != std::string::npos) {
    EXPECT_NE(ours_text.find("\\u003c"), std::string::npos);
  }
  EXPECT_NE(ours_text.find("\n    \"Digest\": "), std::string::npos) << ours_text;
}

// Template forms scripts use, each compared with skopeo's own --format.
const char* const kSharedTemplates[] = {
    "{{.Digest}}",
    "{{.Name}}",
    "{{.Created}}",
    "{{.Architecture}}/{{.Os}}",
    "{{.Labels.k}}",
    "{{.Labels.missing}}",
    "{{index .Labels \"org.opencontainers.image.version\"}}",
    "{{.Labels}}",
    "{{.Env}}",
    "{{.RepoTags}}",
    "{{range .Layers}}{{.}} {{end}}",
    "{{len .Layers}} layers",
    "{{if .Labels}}labelled{{else}}bare{{end}}",
    "{{range $i, $t := .RepoTags}}{{$i}}={{$t}};{{end}}",
    "{{printf \"%s@%s\" .Name .Digest}}",
    "{{.DockerVersion}}",
};

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (mc::testing::Run("skopeo --version >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "skopeo is not installed";
    layout_ = tmp_ / "layout";
    digest_ = WriteRichLayout(tmp_.path(), layout_, "v1");
    manifest_ = json::parse(ReadFile(layout_ / "blobs/sha256" / digest_.substr(7)));
  }
  std::string OciRef() const { return "oci:" + layout_.string() + ":v1"; }

  TempDir tmp_;
  fs::path layout_;
  std::string digest_;
  json manifest_;
};

TEST_F(InspectTest, OciSummaryMatchesSkopeoFieldByField) {
  Output ours = Ours(Quote(OciRef()));
  Output theirs = Skopeo(Quote(OciRef()));
  ASSERT_EQ(ours.rc, 0) << ours.out;
  ASSERT_EQ(theirs.rc, 0) << theirs.out;
  ExpectSameSummary(ours.out, theirs.out, manifest_, "v8");
  json j = json::parse(ours.out);
  EXPECT_EQ(j["Digest"], digest_);
  EXPECT_FALSE(j.contains("Name")) << "skopeo has no Name for oci:";
  EXPECT_EQ(j["RepoTags"], json::array());
  EXPECT_EQ(j["Created"], "2024-05-06T07:08:09.12Z");
}

TEST_F(InspectTest, DockerSummaryMatchesSkopeoFieldByField) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  const std::string repo = reg.host() + "/org/model";
  for (const char* tag : {"v1", "1.0.0", "latest"}) {
    std::string out;
    ASSERT_EQ(mc::testing::Run("skopeo copy --quiet --dest-tls-verify=false " + Quote(OciRef()) +
                                   " docker://" + repo + ":" + tag,
                               &out),
              0)
        << out;
  }
  const std::string ref = "docker://" + repo + ":v1";
  Output ours = Ours("--tls-verify=false " + ref);
  Output theirs = Skopeo("--tls-verify=false " + ref);
  ASSERT_EQ(ours.rc, 0) << ours.out;
  ASSERT_EQ(theirs.rc, 0) << theirs.out;
  ExpectSameSummary(ours.out, theirs.out, manifest_, "v8");
  json j = json::parse(ours.out);
  EXPECT_EQ(j["Name"], repo);
  // skopeo lists every tag of the repository, in the registry's order.
  EXPECT_EQ(j["RepoTags"], json::parse(theirs.out)["RepoTags"]);
  EXPECT_EQ(j["RepoTags"].size(), 3u);
  // By digest, the same summary (Digest included).
  Output by_digest = Ours("--tls-verify=false docker://" + repo + "@" + digest_);
  ASSERT_EQ(by_digest.rc, 0) << by_digest.out;
  EXPECT_EQ(json::parse(by_digest.out)["Digest"], digest_);

  // --no-tags, as skopeo's: no tag listing.
  Output no_tags = Ours("--no-tags --tls-verify=false " + ref);
  ASSERT_EQ(no_tags.rc, 0) << no_tags.out;
  EXPECT_EQ(json::parse(no_tags.out)["RepoTags"], json::array());
  EXPECT_EQ(json::parse(no_tags.out)["Name"], repo);

  for (const char* tmpl : kSharedTemplates) {
    Output a = Ours("--tls-verify=false --format " + Quote(tmpl) + " " + ref);
    Output b = Skopeo("--tls-verify=false --format " + Quote(tmpl) + " " + ref);
    ASSERT_EQ(b.rc, 0) << tmpl << ": skopeo failed: " << b.out;
    EXPECT_EQ(a.rc, 0) << tmpl << ": " << a.out;
    EXPECT_EQ(a.out, b.out) << tmpl;
  }
}

// Behind Bearer tokens (and TLS): the tag list needs the same pull token as
// the manifest; the credentials come from --creds, as skopeo's.
TEST_F(InspectTest, TokenAuthRegistryListsTagsLikeSkopeo) {
  RegistryOptions options;
  options.tls = true;
  options.token_auth = true;
  RegistryFixture reg(options);
  ASSERT_TRUE(reg.ok()) << reg.error();
  const std::string repo = reg.host() + "/org/private";
  for (const char* tag : {"v1", "v2"}) {
    std::string out;
    ASSERT_EQ(mc::testing::Run("skopeo copy --quiet" + reg.SkopeoFlags("dest-") + " " +
                                   Quote(OciRef()) + " docker://" + repo + ":" + tag,
                               &out),
              0)
        << out;
  }
  const std::string ref = "docker://" + repo + ":v2";
  Output ours = Ours(reg.SkopeoFlags() + " " + ref);
  Output theirs = Skopeo(reg.SkopeoFlags() + " " + ref);
  ASSERT_EQ(ours.rc, 0) << ours.out;
  ASSERT_EQ(theirs.rc, 0) << theirs.out;
  ExpectSameSummary(ours.out, theirs.out, manifest_, "v8");
  EXPECT_EQ(json::parse(ours.out)["RepoTags"], json::parse("[\"v1\",\"v2\"]"));
  // Without credentials the token server refuses: exit 3, nothing on stdout.
  Output anonymous = Ours("--cert-dir " + Quote(reg.cert_dir().string()) + " " + ref);
  EXPECT_EQ(anonymous.rc, 3) << anonymous.out;
  EXPECT_EQ(anonymous.out, "");
}

TEST_F(InspectTest, FormatOnOciMatchesSkopeo) {
  for (const char* tmpl : kSharedTemplates) {
    Output a = Ours("--format " + Quote(tmpl) + " " + Quote(OciRef()));
    Output b = Skopeo("--format " + Quote(tmpl) + " " + Quote(OciRef()));
    ASSERT_EQ(b.rc, 0) << tmpl << ": skopeo failed: " << b.out;
    EXPECT_EQ(a.rc, 0) << tmpl << ": " << a.out;
    EXPECT_EQ(a.out, b.out) << tmpl;
  }
}

TEST_F(InspectTest, FormatJsonAndFieldsSkopeoLacks) {
  Output labels = Ours("--format '{{json .Labels}}' " + Quote(OciRef()));
  ASSERT_EQ(labels.rc, 0) << labels.out;
  EXPECT_EQ(labels.out, "{\"k\":\"v\",\"org.opencontainers.image.version\":\"1.0\"}\n");
  Output env = Ours("--format '{{json .Env}}' " + Quote(OciRef()));
  ASSERT_EQ(env.rc, 0) << env.out;
  EXPECT_EQ(env.out, "[\"PATH=/usr/bin:/bin\",\"NOTE=\\u003ca \\u0026 b\\u003e\"]\n");
  Output size = Ours("--format '{{(index .LayersData 0).Size}} {{.Variant}}' " + Quote(OciRef()));
  ASSERT_EQ(size.rc, 0) << size.out;
  EXPECT_EQ(size.out, std::to_string(manifest_["layers"][0]["size"].get<int64_t>()) + " v8\n");
  Output whole = Ours("--format '{{json .}}' " + Quote(OciRef()));
  ASSERT_EQ(whole.rc, 0) << whole.out;
  EXPECT_EQ(json::parse(whole.out), json::parse(Ours(Quote(OciRef())).out));
}

TEST_F(InspectTest, UnsupportedTemplatesExitTwoWithoutOutput) {
  struct Case {
    const char* tmpl;
    const char* message;
  };
  for (const Case& c :
       {Case{"{{.Nope}}", "can't evaluate field Nope"},
        Case{"{{upper .Os}}", "function \"upper\" is not supported"},
        Case{"{{.Digest", "unclosed action"}, Case{"{{if .Labels}}x", "missing {{end}}"},
        Case{"{{template \"x\"}}", "not supported"},
        Case{"{{.Created.Year}}", "of a time is not supported"}}) {
    std::string out, err;
    int rc = mc::testing::Run(Quote(EngineBinary()) + " --progress none inspect --format " +
                                  Quote(c.tmpl) + " " + Quote(OciRef()) + " 2>" +
                                  Quote((tmp_ / "err").string()),
                              &out, false);
    err = ReadFile(tmp_ / "err");
    EXPECT_EQ(rc, 2) << c.tmpl << ": " << out << err;
    EXPECT_EQ(out, "") << c.tmpl;
    EXPECT_NE(err.find(c.message), std::string::npos) << c.tmpl << ": " << err;
    EXPECT_NE(err.find("--format"), std::string::npos) << err;
  }
  // A syntax error is reported before the image is even opened.
  Output missing = Sh(Quote(EngineBinary()) + " inspect --format '{{.Digest' oci:/nonexistent:v1");
  EXPECT_EQ(missing.rc, 2);
  std::string out;
  EXPECT_EQ(
      mc::testing::Run(
          Quote(EngineBinary()) + " inspect --format '{{.Digest}}' --raw " + Quote(OciRef()), &out),
      2)
      << out;
}

TEST_F(InspectTest, IndexDigestAndPlatformAsSkopeo) {
  std::string arch;
  mc::testing::Run("uname -m", &arch, false);
  if (arch.rfind("x86_64", 0) != 0) GTEST_SKIP() << "skopeo picks the host platform: " << arch;
  TestImage img;
  std::string error;
  fs::path multi = tmp_ / "multi";
  ASSERT_TRUE(WriteTwoPlatformLayout(multi, "v1", 4096, &img, &error)) << error;
  const std::string ref = "oci:" + multi.string() + ":v1";
  Output ours = Ours(Quote(ref));
  Output theirs = Skopeo(Quote(ref));
  ASSERT_EQ(ours.rc, 0) << ours.out;
  ASSERT_EQ(theirs.rc, 0) << theirs.out;
  json m = json::parse(ReadFile(multi / "blobs/sha256" / img.children.at("amd64").substr(7)));
  ExpectSameSummary(ours.out, theirs.out, m, "");
  // The index's digest, the linux/amd64 image's layers, as skopeo.
  EXPECT_EQ(json::parse(ours.out)["Digest"], img.index_digest);
  Output arm =
      Ours("--platform linux/arm64 --format '{{.Architecture}} {{.Digest}}' " + Quote(ref));
  ASSERT_EQ(arm.rc, 0) << arm.out;
  EXPECT_EQ(arm.out, "arm64 " + img.index_digest + "\n");
}

}  // namespace
}  // namespace mc::testing
