// publish-metadata.json shared by two UIDs that have nothing in common but a
// supplementary group, over a setgid workspace: the situation of Tekton tasks
// built from different images in one fsGroup (protocols.md 7.4), and the
// seed pipeline's failure. Runs the real binary as other UIDs via setpriv.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"

namespace mc::testing {
namespace {

constexpr gid_t kSharedGroup = 41000;
constexpr uid_t kUidA = 41001;
constexpr uid_t kUidB = 41002;

struct Attr {
  uid_t uid;
  gid_t gid;
  mode_t mode;
};

Attr AttrOf(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return {st.st_uid, st.st_gid, st.st_mode & 07777};
}

class MetadataCrossUid : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run commands as other UIDs (setpriv)";
    if (mc::testing::Run("command -v setpriv >/dev/null") != 0)
      GTEST_SKIP() << "setpriv (util-linux) missing";
    std::filesystem::permissions(tmp_.path(), std::filesystem::perms(0755));
    // The workspace as kubelet prepares it for an fsGroup: group-owned, 2775.
    ws_ = tmp_ / "workspace";
    std::filesystem::create_directory(ws_);
    ASSERT_EQ(::chown(ws_.c_str(), 0, kSharedGroup), 0);
    ASSERT_EQ(::chmod(ws_.c_str(), 02775), 0);
    file_ = ws_ / ".pipeline-metadata/publish-metadata.json";
  }

  // Runs `mc-engine metadata ARGS` as `uid` (primary group = uid, one
  // supplementary group: the shared one) with umask 022.
  static std::string As(uid_t uid, const std::string& args) {
    return "setpriv --reuid " + std::to_string(uid) + " --regid " + std::to_string(uid) +
           " --groups " + std::to_string(kSharedGroup) + " sh -c " +
           Quote("umask 022; exec " + Quote(EngineBinary()) + " metadata " + args);
  }
  int RunAs(uid_t uid, const std::string& args, std::string* out = nullptr) {
    return mc::testing::Run(As(uid, args), out);
  }

  void ExpectShared(uid_t owner) {
    Attr dir = AttrOf(file_.parent_path());
    EXPECT_EQ(dir.mode, 02775u);
    EXPECT_EQ(dir.gid, kSharedGroup);
    Attr file = AttrOf(file_);
    EXPECT_EQ(file.mode, 0664u);
    EXPECT_EQ(file.gid, kSharedGroup);
    EXPECT_EQ(file.uid, owner);
    Attr lock = AttrOf(file_.parent_path() / ".publish-metadata.json.lock");
    EXPECT_EQ(lock.mode, 0664u);
    EXPECT_EQ(lock.gid, kSharedGroup);
    ExpectNoStrayFiles();
  }

  void ExpectNoStrayFilesExceptLock() {
    for (const auto& e : std::filesystem::directory_iterator(file_.parent_path())) {
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
  }

  void ExpectNoStrayFiles() {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(file_.parent_path())) {
      names.insert(e.path().filename());
    }
    EXPECT_EQ(names,
              (std::set<std::string>{".publish-metadata.json.lock", "publish-metadata.json"}));
    for (const auto& e : std::filesystem::directory_iterator(ws_)) {
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
  }

  nlohmann::json Doc() { return nlohmann::json::parse(ReadFile(file_)); }

  TempDir tmp_;
  std::filesystem::path ws_;
  std::filesystem::path file_;
};

TEST_F(MetadataCrossUid, TwoUidsUpdateInTurnAndModesSurvive) {
  std::string out;
  ASSERT_EQ(RunAs(kUidA, "set " + Quote(file_) + " model.source=hf://org/m model.files=3", &out), 0)
      << out;
  ExpectShared(kUidA);
  ASSERT_EQ(RunAs(kUidB, "set " + Quote(file_) + " image.digest=sha256:abc", &out), 0) << out;
  ExpectShared(kUidB);
  // The seed's failure: the first task's UID writing again after another UID.
  ASSERT_EQ(RunAs(kUidA, "append " + Quote(file_) + " mirrors '{\"reference\":\"m/x\"}'", &out), 0)
      << out;
  ExpectShared(kUidA);
  nlohmann::json doc = Doc();
  EXPECT_EQ(doc["schemaVersion"], 1);
  EXPECT_EQ(doc["model"]["source"], "hf://org/m");
  EXPECT_EQ(doc["model"]["files"], 3);
  EXPECT_EQ(doc["image"]["digest"], "sha256:abc");
  EXPECT_EQ(doc["mirrors"][0]["reference"], "m/x");
  out.clear();
  ASSERT_EQ(RunAs(kUidB, "get " + Quote(file_) + " image.digest", &out), 0);
  EXPECT_EQ(out, "sha256:abc\n");
  out.clear();
  EXPECT_EQ(RunAs(kUidB, "get " + Quote(file_) + " image.size", &out), 4) << out;
}

TEST_F(MetadataCrossUid, TwentyConcurrentAppendsFromBothUidsAllLand) {
  ASSERT_EQ(RunAs(kUidA, "set " + Quote(file_) + " model.source=x"), 0);
  std::string script;
  for (int i = 0; i < 20; ++i) {
    uid_t uid = i % 2 ? kUidB : kUidA;
    script += As(uid, "append " + Quote(file_) + " mirrors '{\"n\":" + std::to_string(i) + "}'") +
              " || echo FAILED " + std::to_string(i) + " &\n";
  }
  script += "wait\n";
  std::string out;
  ASSERT_EQ(mc::testing::Run("sh -c " + Quote(script), &out), 0);
  EXPECT_EQ(out.find("FAILED"), std::string::npos) << out;
  nlohmann::json doc = Doc();  // throws (fails the test) on invalid JSON
  ASSERT_TRUE(doc["mirrors"].is_array());
  std::set<int> seen;
  for (const auto& m : doc["mirrors"]) seen.insert(m["n"].get<int>());
  EXPECT_EQ(doc["mirrors"].size(), 20u);
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 19);
  EXPECT_EQ(doc["model"]["source"], "x");
  Attr file = AttrOf(file_);
  EXPECT_EQ(file.mode, 0664u);
  EXPECT_EQ(file.gid, kSharedGroup);
  ExpectNoStrayFiles();
}

TEST_F(MetadataCrossUid, CorruptFileIsRefusedAndLeftUnchanged) {
  ASSERT_EQ(RunAs(kUidA, "set " + Quote(file_) + " a=1"), 0);
  const std::string corrupt = "{\"schemaVersion\": 1, \"image\": {\"digest\": \"sha256:";
  // Truncated in place (keeps owner, mode and group).
  WriteFile(file_, corrupt);
  std::string out;
  EXPECT_EQ(RunAs(kUidB, "set " + Quote(file_) + " b=2", &out), 2) << out;
  EXPECT_NE(out.find("not valid JSON"), std::string::npos) << out;
  EXPECT_EQ(RunAs(kUidB, "append " + Quote(file_) + " mirrors 1"), 2);
  EXPECT_EQ(RunAs(kUidB, "get " + Quote(file_) + " a"), 2);
  EXPECT_EQ(ReadFile(file_), corrupt);
  // A newer schema is refused the same way.
  const std::string newer = "{\"schemaVersion\": 2, \"future\": true}\n";
  WriteFile(file_, newer);
  out.clear();
  EXPECT_EQ(RunAs(kUidA, "set " + Quote(file_) + " b=2", &out), 2);
  EXPECT_NE(out.find("newer"), std::string::npos) << out;
  EXPECT_EQ(ReadFile(file_), newer);
  ExpectNoStrayFiles();
}

TEST_F(MetadataCrossUid, SeedLayoutFailsWithAHintAndLeavesTheFileAlone) {
  // What the seed left behind: a 0755 directory and a 0644 file of UID A.
  std::filesystem::create_directories(file_.parent_path());
  WriteFile(file_, "{\"schemaVersion\": 1}\n");
  ASSERT_EQ(::chown(file_.parent_path().c_str(), kUidA, kUidA), 0);
  ASSERT_EQ(::chmod(file_.parent_path().c_str(), 0755), 0);
  ASSERT_EQ(::chown(file_.c_str(), kUidA, kUidA), 0);
  ASSERT_EQ(::chmod(file_.c_str(), 0644), 0);
  std::string out;
  EXPECT_EQ(RunAs(kUidB, "set " + Quote(file_) + " a=1", &out), 1) << out;
  EXPECT_NE(out.find("2775"), std::string::npos) << out;
  EXPECT_EQ(ReadFile(file_), "{\"schemaVersion\": 1}\n");
  ExpectNoStrayFilesExceptLock();
}

}  // namespace
}  // namespace mc::testing
