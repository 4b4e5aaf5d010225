// `mc-engine copy` against two real docker-registry instances. The source
// image is written by the test (GNU tar + gzip layers, hand-made JSON, a
// two-platform index sharing the model layer) and pushed by skopeo; results
// are checked with skopeo and GNU tar and the registries' access logs.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "tests/support/oci_test_image.h"
#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

constexpr size_t kModelBytes = 3 << 20;  // > one upload chunk, incompressible

struct Exec {
  int rc;
  std::string out;
};
Exec Engine(const std::string& args) {
  Exec e;
  e.rc = Run("timeout 120 " + EngineBinary() + " " + args, &e.out);
  return e;
}

// sha256 of the raw manifest at a docker:// reference, via skopeo ("" on failure).
std::string RemoteDigest(const std::string& ref, const std::string& flags = "--tls-verify=false") {
  std::string raw;
  if (Run("skopeo inspect --raw " + flags + " " + Quote(ref), &raw, false) != 0) return "";
  return oci::Digest::Of(raw).String();
}

int Uploads(const RegistryFixture& r) {
  return r.CountRequests("POST", "/blobs/uploads") + r.CountRequests("PATCH") +
         r.CountRequests("PUT", "/blobs/");
}

class CopyRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(src_.ok()) << src_.error();
    ASSERT_TRUE(dst_.ok()) << dst_.error();
    std::string err;
    ASSERT_TRUE(WriteTwoPlatformLayout(tmp_ / "layout", "v1", kModelBytes, &image_, &err)) << err;
    std::string out;
    ASSERT_EQ(mc::testing::Run("timeout 120 skopeo copy --all --preserve-digests " +
                                   src_.SkopeoFlags("dest-") +
                                   " oci:" + Quote((tmp_ / "layout").string()) + ":v1 docker://" +
                                   src_.host() + "/org/model:v1",
                               &out),
              0)
        << out;
    ASSERT_EQ(RemoteDigest("docker://" + src_.host() + "/org/model:v1"), image_.index_digest);
  }

  std::string Src(const std::string& repo = "org/model:v1") const {
    return "docker://" + src_.host() + "/" + repo;
  }
  std::string Dst(const std::string& repo = "mirror/model:v1") const {
    return "docker://" + dst_.host() + "/" + repo;
  }

  // skopeo pulls linux/`arch` from `ref` into dir:, GNU tar unpacks it, and
  // the model files must be there byte for byte.
  void ExpectFiles(const std::string& ref, const std::string& arch) {
    fs::path d = tmp_ / ("pull-" + arch);
    fs::remove_all(d);
    std::string out;
    ASSERT_EQ(mc::testing::Run("timeout 60 skopeo --override-arch " + arch +
                                   " copy --src-tls-verify=false " + Quote(ref) +
                                   " dir:" + Quote(d.string()),
                               &out),
              0)
        << out;
    std::string err;
    ASSERT_TRUE(UnpackSkopeoDir(d, d / "rootfs", &err)) << err;
    for (const auto& [path, content] : image_.model_files) {
      EXPECT_TRUE(ReadFile(d / "rootfs" / path) == content) << path;
    }
    EXPECT_EQ(ReadFile(d / "rootfs/etc/arch"), arch + "\n");
  }

  TempDir tmp_;
  RegistryFixture src_;
  RegistryFixture dst_;
  TestImage image_;
};

TEST_F(CopyRegistryTest, MirrorKeepsDigestsAndFilesAndRerunUploadsNothing) {
  fs::path digestfile = tmp_ / "digest";
  fs::path meta = tmp_ / "meta/publish-metadata.json";
  auto r = Engine("copy " + Src() + " " + Dst() + " --digestfile " + Quote(digestfile.string()) +
                  " --metadata " + Quote(meta.string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(ReadFile(digestfile), image_.index_digest);
  EXPECT_EQ(RemoteDigest(Dst()), image_.index_digest);
  for (const auto& [arch, digest] : image_.children) {
    EXPECT_EQ(RemoteDigest("docker://" + dst_.host() + "/mirror/model@" + digest), digest) << arch;
  }
  // The shared model layer went up once.
  EXPECT_EQ(dst_.CountRequests("PUT", "digest=" + image_.shared_layer), 1) << dst_.Log();
  ExpectFiles(Dst(), "amd64");
  ExpectFiles(Dst(), "arm64");
  auto doc = nlohmann::json::parse(ReadFile(meta));
  ASSERT_EQ(doc["mirrors"].size(), 1u) << doc.dump();
  EXPECT_EQ(doc["mirrors"][0]["digest"], image_.index_digest);
  EXPECT_EQ(doc["mirrors"][0]["reference"], dst_.host() + "/mirror/model:v1");

  int before = Uploads(dst_);
  int src_gets = src_.CountRequests("GET", "/blobs/");
  int manifest_puts = dst_.CountRequests("PUT", "/manifests/");
  int blob_heads = dst_.CountRequests("HEAD", "/blobs/");
  auto again = Engine("copy " + Src() + " " + Dst());
  ASSERT_EQ(again.rc, 0) << again.out;
  EXPECT_EQ(Uploads(dst_), before) << dst_.Log();
  EXPECT_EQ(src_.CountRequests("GET", "/blobs/"), src_gets);
  // The mirror holds the index and the tag points at it: one HEAD decides,
  // no blob is asked about and no manifest is stored again.
  EXPECT_EQ(dst_.CountRequests("HEAD", "/blobs/"), blob_heads) << dst_.Log();
  EXPECT_EQ(dst_.CountRequests("PUT", "/manifests/"), manifest_puts) << dst_.Log();
  EXPECT_NE(again.out.find("nothing copied"), std::string::npos) << again.out;

  // A new tag for the same image: still no blob traffic, one manifest PUT.
  auto retag = Engine("copy " + Src() + " " + Dst("mirror/model:v2"));
  ASSERT_EQ(retag.rc, 0) << retag.out;
  EXPECT_EQ(Uploads(dst_), before) << dst_.Log();
  EXPECT_EQ(dst_.CountRequests("PUT", "/manifests/v2"), 1) << dst_.Log();
  EXPECT_EQ(RemoteDigest(Dst("mirror/model:v2")), image_.index_digest);
}

TEST_F(CopyRegistryTest, MetadataNamesTheSourceWhenSrcIsOmitted) {
  fs::path meta = tmp_ / "publish-metadata.json";
  WriteFile(meta, nlohmann::json{{"schemaVersion", 1},
                                 {"image",
                                  {{"reference", src_.host() + "/org/model:v1"},
                                   {"digest", image_.index_digest}}}}
                      .dump());
  auto r = Engine("copy " + Dst("mirror/fromdoc:v7") + " --metadata " + Quote(meta.string()));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(RemoteDigest(Dst("mirror/fromdoc:v7")), image_.index_digest);
  EXPECT_EQ(src_.CountRequests("GET", "/manifests/" + image_.index_digest), 1) << src_.Log();
  auto doc = nlohmann::json::parse(ReadFile(meta));
  EXPECT_EQ(doc["mirrors"][0]["reference"], dst_.host() + "/mirror/fromdoc:v7");
}

TEST_F(CopyRegistryTest, PlatformCopiesOneChild) {
  auto r = Engine("copy --platform linux/arm64 " + Src() + " " + Dst("one/model:arm"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(RemoteDigest(Dst("one/model:arm")), image_.children.at("arm64"));
  ExpectFiles(Dst("one/model:arm"), "arm64");
}

TEST_F(CopyRegistryTest, SameRegistryCopyMounts) {
  auto r = Engine("copy " + Src() + " " + Src("other/model:v1"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(RemoteDigest(Src("other/model:v1")), image_.index_digest);
  EXPECT_GE(src_.CountRequests("POST", "mount="), 1) << src_.Log();
  EXPECT_EQ(src_.CountRequests("PATCH", "/other/model/"), 0) << src_.Log();
  EXPECT_EQ(src_.CountRequests("PUT", "/other/model/blobs/"), 0) << src_.Log();
}

TEST_F(CopyRegistryTest, CorruptByteFailsWithExit5AndNoManifest) {
  FaultOptions fo;
  fo.flip_byte_at = 1000;
  fo.path_filter = "/blobs/" + image_.shared_layer;
  FaultProxy proxy(src_.host(), fo);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  auto r = Engine("copy --retry-times 1 docker://" + proxy.host() + "/org/model:v1 " + Dst());
  EXPECT_EQ(r.rc, 5) << r.out;
  EXPECT_NE(r.out.find("source"), std::string::npos) << r.out;
  EXPECT_EQ(dst_.CountRequests("PUT", "/manifests/"), 0) << dst_.Log();
  EXPECT_EQ(dst_.CountRequests("PUT", "digest=" + image_.shared_layer), 0) << dst_.Log();
  EXPECT_EQ(RemoteDigest(Dst()), "");
}

TEST_F(CopyRegistryTest, SourceConnectionCutMidBlobIsResumed) {
  FaultOptions fo;
  fo.cut_response_after = 1 << 20;
  fo.path_filter = "/blobs/" + image_.shared_layer;
  FaultProxy proxy(src_.host(), fo);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  auto r = Engine("copy docker://" + proxy.host() + "/org/model:v1 " + Dst());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(proxy.Log().find("cut"), std::string::npos) << proxy.Log();
  EXPECT_EQ(RemoteDigest(Dst()), image_.index_digest);
  ExpectFiles(Dst(), "amd64");
}

TEST_F(CopyRegistryTest, DestinationConnectionCutMidBlobIsResumed) {
  FaultOptions fo;
  fo.cut_request_after = 1 << 20;
  fo.cut_method = "";
  fo.path_filter = "/blobs/uploads/";
  FaultProxy proxy(dst_.host(), fo);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  auto r = Engine("copy " + Src() + " docker://" + proxy.host() + "/mirror/model:v1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(proxy.Log().find("cut"), std::string::npos) << proxy.Log();
  EXPECT_EQ(RemoteDigest(Dst()), image_.index_digest);
  ExpectFiles(Dst(), "arm64");
}

TEST_F(CopyRegistryTest, UnauthorizedSideIsNamedWithExit3) {
  RegistryOptions o;
  o.htpasswd = true;
  RegistryFixture locked(o);
  ASSERT_TRUE(locked.ok()) << locked.error();
  auto r = Engine("copy " + Src() + " docker://" + locked.host() + "/mirror/model:v1");
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("destination"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(locked.password()), std::string::npos);

  auto wrong = Engine("copy --src-creds " + Quote(locked.user() + ":nope") + " docker://" +
                      locked.host() + "/org/model:v1 " + Dst());
  EXPECT_EQ(wrong.rc, 3) << wrong.out;
  EXPECT_NE(wrong.out.find("source"), std::string::npos) << wrong.out;

  // With the right per-side credentials the copy goes through.
  auto ok = Engine("copy --dest-creds " + Quote(locked.user() + ":" + locked.password()) + " " +
                   Src() + " docker://" + locked.host() + "/mirror/model:v1");
  EXPECT_EQ(ok.rc, 0) << ok.out;
}

TEST_F(CopyRegistryTest, OciToDockerToOciRoundTrip) {
  fs::path layout = tmp_ / "layout";
  auto up = Engine("copy oci:" + Quote(layout.string()) + ":v1 " + Dst("rt/model:v1"));
  ASSERT_EQ(up.rc, 0) << up.out;
  EXPECT_EQ(RemoteDigest(Dst("rt/model:v1")), image_.index_digest);
  fs::path back = tmp_ / "back";
  auto down = Engine("copy " + Dst("rt/model:v1") + " oci:" + Quote(back.string()) + ":v2");
  ASSERT_EQ(down.rc, 0) << down.out;
  auto idx = nlohmann::json::parse(ReadFile(back / "index.json"));
  ASSERT_EQ(idx["manifests"].size(), 1u);
  EXPECT_EQ(idx["manifests"][0]["digest"], image_.index_digest);
  // Every blob of the original layout is back, byte for byte.
  for (const auto& e : fs::directory_iterator(layout / "blobs/sha256")) {
    fs::path mine = back / "blobs/sha256" / e.path().filename();
    EXPECT_TRUE(fs::exists(mine)) << e.path().filename();
  }
  // skopeo reads the result as a valid OCI layout.
  std::string out;
  EXPECT_EQ(mc::testing::Run("skopeo inspect --raw oci:" + Quote(back.string()) + ":v2", &out), 0)
      << out;
  EXPECT_EQ(oci::Digest::Of(out).String(), image_.index_digest);
}

}  // namespace
}  // namespace mc::testing
