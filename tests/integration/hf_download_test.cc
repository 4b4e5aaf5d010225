// `mc-engine download hf://…` against the Hub test server (protocols.md 5):
// the real binary, the real libcurl transport, a Hub and a CDN on loopback.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "tests/support/hub_fixture.h"
#include "tests/support/push_helpers.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

// Every file of `want` is in `dir` with the same bytes, and nothing else is
// there except the state directory (which holds only manifest.json).
void ExpectSameTree(const fs::path& want, const fs::path& dir,
                    const std::vector<std::string>& only = {}) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(want)) {
    if (!e.is_regular_file()) continue;
    std::string rel = fs::relative(e.path(), want).string();
    if (!only.empty() && std::find(only.begin(), only.end(), rel) == only.end()) continue;
    ++n;
    ASSERT_TRUE(fs::exists(dir / rel)) << rel;
    EXPECT_TRUE(ReadFile(dir / rel) == ReadFile(e.path())) << rel << " differs";
  }
  size_t got = 0;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->path().filename() == ".mc-download") {
      for (const auto& s : fs::directory_iterator(it->path())) {
        EXPECT_EQ(s.path().filename(), "manifest.json") << "left behind: " << s.path();
      }
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) ++got;
  }
  EXPECT_EQ(got, n);
}

class HfDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeTestModel(model_.path()); }
  TempDir model_;
  TempDir out_;
};

TEST_F(HfDownloadTest, FullSnapshotIsByteIdenticalAndPinsTheCommit) {
  HubServer hub(model_.path());
  std::string output;
  ASSERT_EQ(
      hub.Engine("download hf://org/model " + Quote(out_.path()) + " --jobs 4 --segment-size 256K",
                 &output),
      0)
      << output;
  ExpectSameTree(model_.path(), out_.path());
  std::string commit = hub.Commit();
  EXPECT_NE(output.find(commit), std::string::npos) << output;
  auto stats = hub.Stats();
  for (const auto& r : stats["log"]) {
    std::string path = r["path"];
    // Every resolve after the revision call uses the pinned commit, never "main".
    if (path.find("/resolve/") != std::string::npos) {
      EXPECT_NE(path.find(commit), std::string::npos) << path;
    }
    if (r["kind"] == "cdn") {
      EXPECT_FALSE(r["range"].is_null()) << "a CDN GET without Range";
      EXPECT_EQ(r["accept_encoding"], "identity");
    }
  }
  // 3 MiB at 256K segments: the big file came in many ranged requests.
  EXPECT_GE(stats["requests"]["cdn"].get<int>(), 13);
  // Pagination was followed: page size 3, more than 3 entries.
  EXPECT_GE(stats["requests"]["api"].get<int>(), 4);
}

TEST_F(HfDownloadTest, IncludeAndExcludeFollowHuggingfaceHubGlobs) {
  HubServer hub(model_.path());
  std::string output;
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()) +
                           " --include '*.safetensors' --include 'sub/' --exclude '*-00002-of-*'",
                       &output),
            0)
      << output;
  ExpectSameTree(model_.path(), out_.path(),
                 {"model-00001-of-00002.safetensors", "sub/dir/extra.bin"});
  EXPECT_FALSE(fs::exists(out_ / "config.json"));
  TempDir none;
  EXPECT_EQ(
      hub.Engine("download hf://org/model " + Quote(none.path()) + " --include 'nope*'", &output),
      2)
      << output;
  EXPECT_NE(output.find("no file matches"), std::string::npos) << output;
}

TEST_F(HfDownloadTest, RerunTransfersNothing) {
  HubServer hub(model_.path());
  std::string output;
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  auto first = hub.Stats();
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  auto second = hub.Stats();
  EXPECT_EQ(second["requests"]["cdn"], first["requests"]["cdn"]);
  EXPECT_EQ(second["requests"]["resolve"], first["requests"]["resolve"]);
  EXPECT_EQ(second["bytes"], first["bytes"]);
  ExpectSameTree(model_.path(), out_.path());
}

// Verified files are not fsynced; a manifest from another kernel boot (a
// crash could have lost page cache) is not trusted: files are re-hashed, and
// one that lost its bytes is fetched again.
TEST_F(HfDownloadTest, ManifestFromAnotherBootIsRehashedNotTrusted) {
  HubServer hub(model_.path());
  std::string output;
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  fs::path manifest = out_ / ".mc-download" / "manifest.json";
  auto doc = nlohmann::json::parse(ReadFile(manifest));
  ASSERT_FALSE(doc.value("bootId", "").empty()) << doc.dump();
  const std::string shard = "model-00001-of-00002.safetensors";
  auto size = fs::file_size(out_ / shard);

  // Same boot: the manifest is trusted, nothing is fetched or re-hashed.
  auto first = hub.Stats();
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  EXPECT_EQ(hub.Stats()["bytes"]["cdn"], first["bytes"]["cdn"]);

  // Another boot: the intact files are re-hashed (no bytes fetched)...
  doc["bootId"] = "00000000-0000-0000-0000-000000000000";
  WriteFile(manifest, doc.dump());
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  EXPECT_EQ(hub.Stats()["bytes"]["cdn"], first["bytes"]["cdn"]);
  // ...and a file zeroed by a lost page cache (same size) is fetched again.
  doc = nlohmann::json::parse(ReadFile(manifest));
  EXPECT_NE(doc["bootId"], "00000000-0000-0000-0000-000000000000");
  doc["bootId"] = "00000000-0000-0000-0000-000000000000";
  WriteFile(manifest, doc.dump());
  WriteFile(out_ / shard, std::string(size, '\0'));
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  EXPECT_EQ(hub.Stats()["bytes"]["cdn"].get<uint64_t>(),
            first["bytes"]["cdn"].get<uint64_t>() + size);
  ExpectSameTree(model_.path(), out_.path());
}

TEST_F(HfDownloadTest, BrokenConnectionResumesTheSegmentWhereItStopped) {
  HubServer hub(model_.path(), {"--cut-after", "300000", "--cut-count", "2"});
  std::string output;
  ASSERT_EQ(
      hub.Engine("download hf://org/model " + Quote(out_.path()) + " --segment-size 1M", &output),
      0)
      << output;
  ExpectSameTree(model_.path(), out_.path());
  // A cut segment continues from its byte 300000, not from its start.
  bool resumed = false;
  auto stats = hub.Stats();
  for (const auto& r : stats["log"]) {
    if (r["kind"] == "cdn" && r["range"].is_string()) {
      std::string range = r["range"];
      uint64_t start = std::stoull(range.substr(6));
      if (start % (1 << 20) == 300000) resumed = true;
    }
  }
  EXPECT_TRUE(resumed) << stats["log"].dump() << output;
}

TEST_F(HfDownloadTest, InterruptedRunResumesWithoutRefetching) {
  uint64_t lfs_total = 0;
  for (const auto& e : fs::recursive_directory_iterator(model_.path())) {
    if (e.is_regular_file() && e.file_size() >= 65536) lfs_total += e.file_size();
  }
  {
    // The CDN dies after 2 MiB: the run fails with a network error.
    HubServer hub(model_.path(), {"--cdn-budget", std::to_string(2 << 20)});
    std::string output;
    EXPECT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()) +
                             " --segment-size 512K --jobs 2 --retry-times 1",
                         &output),
              6)
        << output;
    EXPECT_FALSE(fs::exists(out_ / "model-00001-of-00002.safetensors"));
  }
  HubServer hub(model_.path());
  std::string output;
  ASSERT_EQ(
      hub.Engine("download hf://org/model " + Quote(out_.path()) + " --segment-size 512K", &output),
      0)
      << output;
  ExpectSameTree(model_.path(), out_.path());
  uint64_t again = hub.Stats()["bytes"]["cdn"].get<uint64_t>();
  EXPECT_LE(again, lfs_total - (1 << 20)) << "the second run fetched what the first had";
}

// Ctrl-C in the middle of a segment on a slow link: the run stops at once
// (not when the segment ends) with exit 130, keeps what it got, and the next
// run fetches only the rest.
TEST_F(HfDownloadTest, SigintStopsMidSegmentAndTheNextRunResumes) {
  uint64_t lfs_total = 0;
  for (const auto& e : fs::recursive_directory_iterator(model_.path())) {
    if (e.is_regular_file() && e.file_size() >= 65536) lfs_total += e.file_size();
  }
  {
    // 100 kB/s per response: the 3 MiB shard alone takes half a minute, so
    // an exit within 10 s of the signal means the transfer stopped mid-segment.
    HubServer slow(model_.path(), {"--cdn-rate", "100000"});
    BackgroundCommand cmd("env -u HF_TOKEN HF_ENDPOINT=" + slow.url() + " " +
                              Quote(EngineBinary()) + " --progress none download hf://org/model " +
                              Quote(out_.path()),
                          model_ / "first.log");
    ASSERT_TRUE(cmd.WaitUntil([&] {
      return slow.Stats()["bytes"]["cdn"].get<uint64_t>() >= (256u << 10);
    })) << cmd.Output();
    auto start = std::chrono::steady_clock::now();
    cmd.Signal(SIGINT);  // once, as a user's Ctrl-C
    int status = cmd.Wait();
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string output = cmd.Output();
    EXPECT_EQ(status, 130) << output;
    EXPECT_LT(took, 10.0) << "waited for the segment to end: " << output;
    EXPECT_NE(output.find("interrupted"), std::string::npos) << output;
    EXPECT_FALSE(fs::exists(out_ / "model-00001-of-00002.safetensors"));
  }
  HubServer hub(model_.path());
  std::string output;
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 0) << output;
  ExpectSameTree(model_.path(), out_.path());
  EXPECT_LE(hub.Stats()["bytes"]["cdn"].get<uint64_t>(), lfs_total - (200u << 10))
      << "the second run fetched what the first had";
}

TEST_F(HfDownloadTest, TokenGoesToTheHubButNeverToTheCdn) {
  HubServer hub(model_.path(), {"--gated", "org/model", "--token", "hf_secret"});
  std::string output;
  ASSERT_EQ(
      hub.Engine("download hf://org/model " + Quote(out_.path()), &output, "HF_TOKEN=hf_secret"), 0)
      << output;
  ExpectSameTree(model_.path(), out_.path());
  auto stats = hub.Stats();
  EXPECT_TRUE(stats["hub_auth_seen"].get<bool>());
  EXPECT_FALSE(stats["cdn_auth_seen"].get<bool>());
  EXPECT_EQ(output.find("hf_secret"), std::string::npos);
  // --token-file works the same.
  TempDir other;
  WriteFile(other / "token", "hf_secret\n");
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(other / "out") + " --token-file " +
                           Quote(other / "token") + " --include config.json",
                       &output),
            0)
      << output;
}

TEST_F(HfDownloadTest, AuthAndNotFoundErrorsHaveTheirExitCodes) {
  HubServer hub(model_.path(), {"--gated", "org/model", "--token", "hf_secret"});
  std::string output;
  EXPECT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()), &output), 3) << output;
  EXPECT_NE(output.find("gated"), std::string::npos) << output;
  EXPECT_NE(output.find(hub.url() + "/org/model"), std::string::npos) << output;
  EXPECT_EQ(
      hub.Engine("download hf://org/model " + Quote(out_.path()), &output, "HF_TOKEN=hf_wrong"), 3)
      << output;
  EXPECT_NE(output.find("token was refused"), std::string::npos) << output;
  EXPECT_EQ(output.find("hf_wrong"), std::string::npos) << output;
  EXPECT_EQ(hub.Engine("download hf://org/missing " + Quote(out_.path()), &output), 4) << output;
  EXPECT_NE(output.find("check the name"), std::string::npos) << output;
  EXPECT_EQ(
      hub.Engine("download hf://org/model@v9 " + Quote(out_.path()), &output, "HF_TOKEN=hf_secret"),
      4)
      << output;
  output.clear();
  EXPECT_EQ(hub.Engine("download hf:/org/model " + Quote(out_.path()), &output), 2) << output;
  // One line.
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
}

TEST_F(HfDownloadTest, CorruptedBytesFailVerificationAndLeaveNoFile) {
  HubServer hub(model_.path(), {"--corrupt", "model-00002-of-00002.safetensors"});
  std::string output;
  EXPECT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()) + " --jobs 1", &output), 5)
      << output;
  EXPECT_NE(output.find("model-00002-of-00002.safetensors"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(out_ / "model-00002-of-00002.safetensors"));
  // The other files keep their resume state; the corrupted one has none.
  int parts = 0, states = 0;
  for (const auto& s : fs::directory_iterator(out_ / ".mc-download")) {
    if (s.path().extension() == ".part") ++parts;
    if (s.path().extension() != ".json" || s.path().filename() == "manifest.json") continue;
    ++states;
    auto state = nlohmann::json::parse(ReadFile(s.path()));
    EXPECT_NE(state["path"], "model-00002-of-00002.safetensors");
  }
  EXPECT_EQ(parts, states);
  // A corrupted small (git) file is caught by its blob sha1.
  HubServer hub2(model_.path(), {"--corrupt", "tokenizer/vocab.txt"});
  TempDir out2;
  EXPECT_EQ(hub2.Engine("download hf://org/model " + Quote(out2.path()), &output), 5) << output;
  EXPECT_FALSE(fs::exists(out2 / "tokenizer/vocab.txt"));
}

TEST_F(HfDownloadTest, RateLimitsRetriesAndServerQuirksAreHandled) {
  // 429 with RateLimit t=1 on the API, 503s from the CDN, presigned URLs
  // that expire after one use, and a CDN that ignores Range.
  HubServer hub(model_.path(),
                {"--rate-limit", "2", "--fail-cdn", "2", "--expire-after", "1", "--ignore-range"});
  std::string output;
  ASSERT_EQ(
      hub.Engine("download hf://org/model " + Quote(out_.path()) + " --segment-size 1M", &output),
      0)
      << output;
  ExpectSameTree(model_.path(), out_.path());
  auto stats = hub.Stats();
  // Each file with several segments was resolved again after its URL expired.
  EXPECT_GT(stats["requests"]["resolve"].get<int>(), 7);
}

TEST_F(HfDownloadTest, MetadataRecordsSourceCommitFilesAndBytes) {
  HubServer hub(model_.path());
  TempDir ws;
  fs::path meta = ws / ".pipeline-metadata/publish-metadata.json";
  WriteFile(meta, R"({"schemaVersion": 1, "image": {"digest": "sha256:keep"}})");
  std::string output;
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote(out_.path()) + " --metadata " +
                           Quote(meta) + " --exclude README.md",
                       &output),
            0)
      << output;
  auto doc = nlohmann::json::parse(ReadFile(meta));
  EXPECT_EQ(doc["model"]["source"], "hf://org/model");
  EXPECT_EQ(doc["model"]["revision"], hub.Commit());
  EXPECT_EQ(doc["model"]["files"], 6);
  uint64_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(model_.path())) {
    if (e.is_regular_file() && e.path().filename() != "README.md") bytes += e.file_size();
  }
  EXPECT_EQ(doc["model"]["bytes"], bytes);
  EXPECT_EQ(doc["image"]["digest"], "sha256:keep");
}

}  // namespace
}  // namespace mc::testing
