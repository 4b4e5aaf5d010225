#include "engine/metadata_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/paths.h"

namespace mc::engine {
namespace {

using mc::testing::ReadFile;
using mc::testing::TempDir;
using mc::testing::WriteFile;

mode_t ModeOf(const std::filesystem::path& p) {
  struct stat st;
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::vector<std::string> Listing(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t m) : old_(::umask(m)) {}
  ~UmaskGuard() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(MetadataStore, CreatesDirectoryAndFileWithSharedModesWhateverTheUmask) {
  TempDir tmp;
  UmaskGuard umask(077);
  auto file = tmp / "ws/.pipeline-metadata/publish-metadata.json";
  auto store = MetadataStore::Open(file);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->SetSection("image", {{"digest", "sha256:aa"}}));
  EXPECT_EQ(ModeOf(file.parent_path()), 02775u);
  EXPECT_EQ(ModeOf(file), 0664u);
  EXPECT_EQ(ModeOf(file.parent_path() / ".publish-metadata.json.lock"), 0664u);
  auto doc = nlohmann::json::parse(ReadFile(file));
  EXPECT_EQ(doc["schemaVersion"], 1);
  EXPECT_EQ(doc["image"]["digest"], "sha256:aa");
  EXPECT_EQ(Listing(file.parent_path()),
            (std::vector<std::string>{".publish-metadata.json.lock", "publish-metadata.json"}));
}

TEST(MetadataStore, KeepsFieldsItDoesNotOwn) {
  TempDir tmp;
  auto file = tmp / "m/publish-metadata.json";
  WriteFile(file, R"({"schemaVersion":1,"custom":{"x":[1,2]},"image":{"digest":"a","keep":true}})");
  auto store = MetadataStore::Open(file);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->MergeSection("image", {{"digest", "b"}}));
  ASSERT_TRUE(store->Append("mirrors", {{"reference", "r"}}));
  ASSERT_TRUE(store->Append("mirrors", {{"reference", "s"}}));
  auto doc = store->Get();
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["custom"]["x"], nlohmann::json({1, 2}));
  EXPECT_EQ((*doc)["image"]["digest"], "b");
  EXPECT_EQ((*doc)["image"]["keep"], true);
  EXPECT_EQ((*doc)["mirrors"].size(), 2u);
  EXPECT_EQ((*doc)["mirrors"][1]["reference"], "s");
}

TEST(MetadataStore, RefusesInvalidOrNewerDocumentsAndLeavesThemUntouched) {
  TempDir tmp;
  auto file = tmp / "m/publish-metadata.json";
  for (std::string bad : {std::string("{\"schemaVersion\":1, trunc"), std::string("[1,2]"),
                          std::string("{\"schemaVersion\":2}"),
                          std::string("{\"schemaVersion\":\"1\"}"), std::string("")}) {
    WriteFile(file, bad);
    auto store = MetadataStore::Open(file);
    ASSERT_TRUE(store);
    auto r = store->Append("mirrors", 1);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput) << bad;
    EXPECT_EQ(ReadFile(file), bad);
    EXPECT_FALSE(store->Get());
    for (const auto& name : Listing(file.parent_path())) {
      EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
    }
  }
}

TEST(MetadataStore, FailedMutationWritesNothing) {
  TempDir tmp;
  auto file = tmp / "m/publish-metadata.json";
  auto store = MetadataStore::Open(file);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->SetSection("model.source", "hf://a/b"));
  std::string before = ReadFile(file);
  auto r = store->Append("model.source", 1);  // a string, not an array
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_EQ(ReadFile(file), before);
}

TEST(MetadataStore, GetOfMissingFileIsNotFound) {
  TempDir tmp;
  auto store = MetadataStore::Open(tmp / "nope/publish-metadata.json");
  ASSERT_TRUE(store);
  auto r = store->Get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(tmp / "nope"));
}

TEST(MetadataStore, ConcurrentAppendsFromThreadsAllLand) {
  TempDir tmp;
  auto file = tmp / "m/publish-metadata.json";
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto store = MetadataStore::Open(file);
      ASSERT_TRUE(store);
      ASSERT_TRUE(store->Append("mirrors", i));
    });
  }
  for (auto& t : threads) t.join();
  auto doc = nlohmann::json::parse(ReadFile(file));
  ASSERT_EQ(doc["mirrors"].size(), 16u);
  std::vector<int> seen = doc["mirrors"].get<std::vector<int>>();
  std::sort(seen.begin(), seen.end());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(seen[i], i);
}

TEST(MetadataStore, ExplicitGroupIsApplied) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give files an arbitrary group";
  TempDir tmp;
  auto file = tmp / "g/publish-metadata.json";
  auto store = MetadataStore::Open(file, gid_t{4242});
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->SetSection("a", 1));
  struct stat st;
  ASSERT_EQ(::stat(file.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 4242u);
  EXPECT_EQ(st.st_mode & 07777, 02775u);
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 4242u);
}

TEST(MetadataPath, GetSetAppend) {
  nlohmann::json doc = nlohmann::json::object();
  ASSERT_TRUE(SetPath(doc, "image.digest", "sha256:x"));
  ASSERT_TRUE(AppendPath(doc, "mirrors", {{"digest", "d"}}));
  EXPECT_EQ(*GetPath(doc, "image.digest"), "sha256:x");
  EXPECT_EQ(*GetPath(doc, "mirrors.0.digest"), "d");
  ASSERT_TRUE(SetPath(doc, "mirrors.0.digest", "e"));
  EXPECT_EQ(*GetPath(doc, "mirrors.0.digest"), "e");
  EXPECT_EQ(GetPath(doc, "mirrors.1"), nullptr);
  ASSERT_TRUE(AppendPath(doc, "mirrors", {{"digest", "f"}}));
  EXPECT_EQ(*GetPath(doc, "mirrors.-1.digest"), "f");
  EXPECT_EQ(*GetPath(doc, "mirrors.-2.digest"), "e");
  EXPECT_EQ(GetPath(doc, "mirrors.-3"), nullptr);
  EXPECT_EQ(GetPath(doc, "mirrors.-0"), nullptr);
  EXPECT_EQ(GetPath(doc, "image.digest.x"), nullptr);
  EXPECT_EQ(GetPath(doc, "nope"), nullptr);
  EXPECT_FALSE(SetPath(doc, "image.digest.x", 1));
  EXPECT_FALSE(SetPath(doc, "a..b", 1));
  EXPECT_FALSE(SetPath(doc, "", 1));
  EXPECT_FALSE(SetPath(doc, "mirrors.5", 1));
}

TEST(MetadataPath, LooseValues) {
  EXPECT_EQ(ParseLooseValue("12"), 12);
  EXPECT_EQ(ParseLooseValue("true"), true);
  EXPECT_EQ(ParseLooseValue("{\"a\":1}"), nlohmann::json({{"a", 1}}));
  EXPECT_EQ(ParseLooseValue("sha256:abc"), "sha256:abc");
  EXPECT_EQ(ParseLooseValue("\"quoted\""), "quoted");
  EXPECT_EQ(ParseLooseValue(""), "");
}

}  // namespace
}  // namespace mc::engine
