// `mc-engine build DIR docker://…` against the real docker-registry: plain
// HTTP, TLS with --cert-dir, htpasswd through an --authfile, Bearer tokens;
// verified with skopeo and GNU tar. Re-runs upload nothing; a two-platform
// base gives an index sharing the model layer; a push killed with SIGKILL
// resumes on the next run.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/push_helpers.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Engine() { return Quote(EngineBinary()) + " --progress none"; }

TEST(BuildPushTest, PlainHttpPushRerunUploadsNothing) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model");
  std::string ref = reg.host() + "/models/demo:v1";
  std::string out;
  ASSERT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --digestfile " + Quote((tmp / "digest").string()) + " --metadata " +
                   Quote((tmp / "meta/publish-metadata.json").string()),
               &out, false),
            0)
      << out;
  std::string digest = ReadFile(tmp / "digest");
  ASSERT_EQ(Sh("skopeo inspect --tls-verify=false docker://" + ref, &out, false), 0) << out;
  EXPECT_EQ(json::parse(out)["Digest"], digest);
  EXPECT_TRUE(ImageHoldsModel(reg, ref, tmp / "model", tmp / "copy"));
  json meta = json::parse(ReadFile(tmp / "meta/publish-metadata.json"));
  EXPECT_EQ(meta["image"]["digest"], digest);
  EXPECT_EQ(meta["image"]["reference"], ref);

  int puts = reg.CountRequests("PUT", "/blobs/uploads/");
  int patches = reg.CountRequests("PATCH");
  ASSERT_EQ(
      Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref, &out, false),
      0)
      << out;
  EXPECT_EQ(out.substr(0, 71), digest);
  EXPECT_EQ(reg.CountRequests("PUT", "/blobs/uploads/"), puts);
  EXPECT_EQ(reg.CountRequests("PATCH"), patches);
}

TEST(BuildPushTest, TlsWithCertDir) {
  RegistryFixture reg({.tls = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model");
  std::string ref = reg.host() + "/models/tls:v1";
  std::string out;
  // Without the CA the certificate cannot be verified.
  EXPECT_NE(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref, &out),
            0);
  ASSERT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --cert-dir " + Quote(reg.cert_dir().string()),
               &out),
            0)
      << out;
  EXPECT_TRUE(ImageHoldsModel(reg, ref, tmp / "model", tmp / "copy"));
}

// Upload chunks written straight from their buffers (registry/curl_direct.h)
// over TLS, with Basic auth: the real registry gets every PATCH whole.
TEST(BuildPushTest, ChunkedUploadOverTlsWithAuth) {
  RegistryFixture reg({.tls = true, .htpasswd = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model", 9 << 20);
  std::string ref = reg.host() + "/models/chunks:v1";
  fs::path auth = reg.WriteAuthFile(reg.user(), reg.password(), "auth.json");
  std::string out;
  ASSERT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --base scratch --compression none --chunk-size 2M --cert-dir " +
                   Quote(reg.cert_dir().string()) + " --authfile " + Quote(auth.string()),
               &out),
            0)
      << out;
  EXPECT_GE(reg.CountRequests("PATCH"), 4);
  EXPECT_TRUE(ImageHoldsModel(reg, ref, tmp / "model", tmp / "copy"));
}

TEST(BuildPushTest, BasicAuthThroughAuthfileAndWrongPassword) {
  RegistryFixture reg({.htpasswd = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model");
  std::string ref = reg.host() + "/models/auth:v1";
  std::string out;
  fs::path good = reg.WriteAuthFile(reg.user(), reg.password(), "good.json");
  ASSERT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --authfile " + Quote(good.string()),
               &out),
            0)
      << out;
  EXPECT_TRUE(ImageHoldsModel(reg, ref, tmp / "model", tmp / "copy"));

  fs::path bad = reg.WriteAuthFile(reg.user(), "wrong-password", "bad.json");
  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --authfile " + Quote(bad.string()),
               &out),
            3)
      << out;
  EXPECT_NE(out.find(reg.host()), std::string::npos) << out;
  EXPECT_NE(out.find("bad.json"), std::string::npos) << out;
  EXPECT_EQ(out.find("wrong-password"), std::string::npos) << out;
}

TEST(BuildPushTest, BearerTokenAuth) {
  RegistryFixture reg({.token_auth = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model");
  std::string ref = reg.host() + "/models/token:v1";
  std::string out;
  ASSERT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --creds " + Quote(reg.user() + ":" + reg.password()),
               &out),
            0)
      << out;
  EXPECT_TRUE(ImageHoldsModel(reg, ref, tmp / "model", tmp / "copy"));
  EXPECT_NE(reg.TokenLog().find("push"), std::string::npos) << reg.TokenLog();
}

// A two-platform base made by other tools: GNU tar layers, an OCI layout
// written here, pushed with `skopeo copy --all`.
void MakeTwoPlatformBase(const fs::path& dir) {
  fs::create_directories(dir / "blobs/sha256");
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", json::array()}};
  auto put = [&](const std::string& bytes) {
    std::string out;
    WriteFile(dir / "tmpblob", bytes);
    Sh("sha256sum " + Quote((dir / "tmpblob").string()), &out, false);
    std::string hex = out.substr(0, 64);
    fs::rename(dir / "tmpblob", dir / "blobs/sha256" / hex);
    return "sha256:" + hex;
  };
  for (std::string arch : {"amd64", "arm64"}) {
    fs::path root = dir / ("root-" + arch);
    WriteFile(root / "bin/sh", "#!fake shell for " + arch + "\n");
    WriteFile(root / "etc/os-release", "ID=" + arch + "\n");
    std::string out;
    Sh("tar --sort=name --mtime=@0 --owner=0 --group=0 -C " + Quote(root.string()) +
           " -cf - . | gzip -n > " + Quote((dir / "layer.tgz").string()),
       &out);
    std::string layer = ReadFile(dir / "layer.tgz");
    Sh("gzip -dc " + Quote((dir / "layer.tgz").string()) + " | sha256sum", &out, false);
    std::string diff = "sha256:" + out.substr(0, 64);
    std::string ld = put(layer);
    json cfg = {{"architecture", arch},
                {"os", "linux"},
                {"config", {{"Cmd", {"/bin/sh"}}}},
                {"rootfs", {{"type", "layers"}, {"diff_ids", {diff}}}},
                {"history", {{{"created_by", "test base"}}}}};
    std::string cb = cfg.dump();
    std::string cd = put(cb);
    json man = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                {"config",
                 {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                  {"digest", cd},
                  {"size", cb.size()}}},
                {"layers",
                 {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                   {"digest", ld},
                   {"size", layer.size()}}}}};
    std::string mb = man.dump();
    std::string md = put(mb);
    index["manifests"].push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                  {"digest", md},
                                  {"size", mb.size()},
                                  {"platform", {{"architecture", arch}, {"os", "linux"}}}});
  }
  std::string ib = index.dump();
  std::string id = put(ib);
  json top = {{"schemaVersion", 2},
              {"manifests",
               {{{"mediaType", "application/vnd.oci.image.index.v1+json"},
                 {"digest", id},
                 {"size", ib.size()},
                 {"annotations", {{"org.opencontainers.image.ref.name", "multi"}}}}}}};
  WriteFile(dir / "index.json", top.dump());
  WriteFile(dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

TEST(BuildPushTest, PlatformAllSharesTheModelLayerAndMountsBaseLayers) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model");
  MakeTwoPlatformBase(tmp / "base");
  std::string out;
  ASSERT_EQ(
      Sh("skopeo copy --quiet --all --dest-tls-verify=false oci:" + Quote((tmp / "base").string()) +
             ":multi docker://" + reg.host() + "/library/base:multi",
         &out),
      0)
      << out;
  std::string ref = reg.host() + "/models/multi:v1";
  ASSERT_EQ(Sh(Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
                   " --platform all --base docker://" + reg.host() + "/library/base:multi",
               &out),
            0)
      << out;
  ASSERT_EQ(Sh("skopeo inspect --raw --tls-verify=false docker://" + ref, &out, false), 0) << out;
  json index = json::parse(out);
  ASSERT_EQ(index["mediaType"], "application/vnd.oci.image.index.v1+json");
  ASSERT_EQ(index["manifests"].size(), 2u);
  std::set<std::string> model_layers, archs;
  for (const auto& d : index["manifests"]) {
    archs.insert(d["platform"]["architecture"].get<std::string>());
    ASSERT_EQ(Sh("skopeo inspect --raw --tls-verify=false docker://" + reg.host() +
                     "/models/multi@" + d["digest"].get<std::string>(),
                 &out, false),
              0)
        << out;
    json m = json::parse(out);
    ASSERT_EQ(m["layers"].size(), 2u);
    model_layers.insert(m["layers"][1]["digest"].get<std::string>());
  }
  EXPECT_EQ(archs, (std::set<std::string>{"amd64", "arm64"}));
  EXPECT_EQ(model_layers.size(), 1u);
  // Base layers came by cross-repository mount, not by upload.
  EXPECT_GE(reg.CountRequests("POST", "mount="), 2) << reg.Log();
  // And the arm64 image is runnable content: skopeo copies it whole.
  ASSERT_EQ(Sh("skopeo copy --quiet --override-arch arm64 --src-tls-verify=false docker://" + ref +
                   " dir:" + Quote((tmp / "arm").string()),
               &out),
            0)
      << out;
}

TEST(BuildPushTest, KilledPushResumesOnTheNextRun) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  // As in production (nginx or a load balancer in front of the registry), the
  // proxy buffers request bodies: a PATCH cut by the kill never reaches the
  // registry half-written, so distribution's session stays resumable. (Without
  // a buffering proxy distribution invalidates the session and we restart the
  // blob — also tested by the upload unit tests.)
  // The proxy also cuts the 9th PATCH (never forwarded): the process is killed
  // while it recovers from that, with exactly 8 chunks at the registry.
  FaultOptions fo;
  fo.buffer_requests = true;
  fo.cut_request_after = 1 << 20;
  fo.cut_method = "PATCH";
  fo.cut_times = 3;  // the retries of chunk 9 are cut too: a wide window for the kill
  fo.cut_skip = 8;
  FaultProxy proxy(reg.host(), fo);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  TempDir tmp;
  MakeModel(tmp / "model", 96 << 20);
  std::string ref = proxy.host() + "/models/resume:v1";
  // --base scratch: the PATCHes counted are the model layer's alone.
  std::string cmd = EngineBinary() + " --progress none build " + (tmp / "model").string() +
                    " docker://" + ref +
                    " --base scratch --compression none --jobs 1 --chunk-size 2M";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  // Kill it once the cut happened.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (proxy.Log().find("cut") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the push finished before it could be killed";
  int patches_before = reg.CountRequests("PATCH");
  ASSERT_GE(patches_before, 8);
  uint64_t received = proxy.BodyBytes("PATCH");
  EXPECT_GE(received, 16u << 20);

  std::string out;
  ASSERT_EQ(Sh(cmd, &out), 0) << out;
  EXPECT_NE(out.find("resuming the upload"), std::string::npos) << out;
  int patches_after = reg.CountRequests("PATCH") - patches_before;
  // 96 MiB in 2 MiB chunks is 48 PATCHes from scratch; the resumed run sends fewer.
  EXPECT_LT(patches_after, 48 - 4) << out;
  // The registry was asked, not the saved offset trusted: at most what it
  // lacked plus one chunk went up again.
  uint64_t resent = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT") - received;
  EXPECT_LE(resent, (96u << 20) + (64u << 10) - received + (2u << 20)) << out;
  EXPECT_TRUE(ImageHoldsModel(reg, ref, tmp / "model", tmp / "copy"));
}

}  // namespace
}  // namespace mc::testing
