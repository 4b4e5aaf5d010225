// BuildCache: the state file is advisory. Whatever is in it (not JSON, the
// wrong types anywhere, a stale entry), Lookup answers without throwing and
// Store writes a valid file again.
#include "engine/build_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/resume_slot.h"
#include "tests/support/paths.h"

namespace mc::engine {
namespace {

using mc::testing::ReadFile;
using mc::testing::TempDir;
using mc::testing::WriteFile;
using nlohmann::json;

std::vector<BuiltLayer> SomeLayers() {
  BuiltLayer l;
  l.descriptor = {"application/vnd.oci.image.layer.v1.tar+gzip", oci::Digest::Of("layer"), 5};
  l.diff_id = oci::Digest::Of("tar");
  l.tar_size = 10240;
  l.file_bytes = 3;
  l.files = 1;
  return {l};
}

TEST(BuildCacheTest, StoreThenLookup) {
  TempDir tmp;
  BuildCache cache((tmp / "c").string(), (tmp / "m").string());
  EXPECT_FALSE(cache.Lookup("k1"));  // no file
  cache.Store("k1", SomeLayers());
  auto hit = cache.Lookup("k1");
  ASSERT_TRUE(hit);
  ASSERT_EQ(hit->size(), 1u);
  EXPECT_EQ((*hit)[0].descriptor.digest, oci::Digest::Of("layer"));
  EXPECT_EQ((*hit)[0].diff_id, oci::Digest::Of("tar"));
  EXPECT_EQ((*hit)[0].files, 1u);
  EXPECT_FALSE(cache.Lookup("k2"));
}

TEST(BuildCacheTest, MalformedFilesAreIgnoredAndRewritten) {
  TempDir tmp;
  BuildCache cache((tmp / "c").string(), (tmp / "m").string());
  cache.Store("k1", SomeLayers());
  const std::string good = ReadFile(tmp / "c/state.json");
  json layer = json::parse(good)["builds"]["k1"]["layers"][0];
  auto with_layer = [&](const std::string& field, json value) {
    json j = json::parse(good);
    j["builds"]["k1"]["layers"][0][field] = std::move(value);
    return j.dump();
  };
  std::vector<std::string> bad = {
      good.substr(0, good.size() / 2),  // truncated
      "",
      "null",
      "[1, 2]",
      R"({"builds": []})",
      R"({"builds": {"k1": 7}})",
      R"({"builds": {"k1": {"layers": {}}}})",
      R"({"builds": {"k1": {"layers": []}}})",
      R"({"builds": {"k1": {"layers": [3]}}})",
      with_layer("descriptor", "sha256:abc"),
      with_layer("descriptor", json{{"mediaType", 1}, {"digest", "x"}, {"size", "big"}}),
      with_layer("diffId", 12),
      with_layer("diffId", "sha256:short"),
      with_layer("tarSize", -1),
      with_layer("fileBytes", "3"),
      with_layer("files", nullptr),
  };
  for (const std::string& content : bad) {
    SCOPED_TRACE(content);
    WriteFile(tmp / "c/state.json", content);
    EXPECT_NO_THROW({ EXPECT_FALSE(cache.Lookup("k1")); });
    EXPECT_NO_THROW(cache.Store("k1", SomeLayers()));
    json again = json::parse(ReadFile(tmp / "c/state.json"), nullptr, false);
    ASSERT_TRUE(again.is_object());
    EXPECT_EQ(again["builds"]["k1"]["layers"][0], layer);
    EXPECT_TRUE(cache.Lookup("k1"));
  }
}

// Nothing below the cache directory is followed: a link planted at the state
// file, at the default ".mc-engine-cache" or at "uploads" is neither read
// through nor written through, and a FIFO there does not hang the run.
TEST(BuildCacheTest, LinksBelowTheCacheDirectoryAreNeverFollowed) {
  TempDir tmp;
  WriteFile(tmp / "outside/secret", "do not touch");
  namespace fs = std::filesystem;
  {
    BuildCache cache((tmp / "c").string(), (tmp / "m").string());
    fs::create_directories(tmp / "c");
    fs::create_symlink(tmp / "outside/secret", tmp / "c/state.json");
    EXPECT_FALSE(cache.Lookup("k1"));
    cache.Store("k1", SomeLayers());
    EXPECT_FALSE(fs::is_symlink(tmp / "c/state.json"));  // replaced, not written through
    EXPECT_TRUE(cache.Lookup("k1"));
    EXPECT_EQ(ReadFile(tmp / "outside/secret"), "do not touch");
  }
  {
    // The default place, DIR/../.mc-engine-cache/<name>, with a planted link.
    fs::create_directories(tmp / "p/m");
    fs::create_symlink(tmp / "outside", tmp / "p/.mc-engine-cache");
    BuildCache cache("", (tmp / "p/m").string());
    EXPECT_EQ(cache.dir().path(), tmp / "p/.mc-engine-cache/m");
    cache.Store("k1", SomeLayers());
    EXPECT_FALSE(cache.Lookup("k1"));
    EXPECT_FALSE(fs::exists(tmp / "outside/m"));
    auto slot = UploadResumeSlot(cache.dir(), "layer");
    slot->Save("{}");
    EXPECT_FALSE(slot->Load());
    EXPECT_FALSE(fs::exists(tmp / "outside/m"));
  }
  {
    fs::create_directories(tmp / "d");
    fs::create_symlink(tmp / "outside", tmp / "d/uploads");
    auto slot = UploadResumeSlot(StateDir{tmp / "d", ""}, "x");
    slot->Save("{\"url\": \"secret\"}");
    EXPECT_FALSE(slot->Load());
    slot->Clear();
    EXPECT_FALSE(fs::exists(tmp / "outside/x.json"));
    EXPECT_EQ(ReadFile(tmp / "outside/secret"), "do not touch");
  }
  {
    // A slot file that is a link is not read; Clear removes the link only.
    fs::create_directories(tmp / "e/uploads");
    fs::create_symlink(tmp / "outside/secret", tmp / "e/uploads/y.json");
    auto slot = UploadResumeSlot(StateDir{tmp / "e", ""}, "y");
    EXPECT_FALSE(slot->Load());
    slot->Clear();
    EXPECT_FALSE(fs::is_symlink(tmp / "e/uploads/y.json"));
    EXPECT_EQ(ReadFile(tmp / "outside/secret"), "do not touch");
    // A regular slot file round-trips, mode 0600 (it may hold a session token).
    slot->Save("{}");
    EXPECT_EQ(slot->Load().value_or(""), "{}");
    auto perms = fs::status(tmp / "e/uploads/y.json").permissions();
    EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  }
  {
    fs::create_directories(tmp / "f");
    ASSERT_EQ(::mkfifo((tmp / "f/state.json").c_str(), 0644), 0);
    BuildCache cache((tmp / "f").string(), (tmp / "m").string());
    EXPECT_FALSE(cache.Lookup("k1"));  // returns at once
    cache.Store("k1", SomeLayers());
    EXPECT_TRUE(cache.Lookup("k1"));
  }
}

}  // namespace
}  // namespace mc::engine
