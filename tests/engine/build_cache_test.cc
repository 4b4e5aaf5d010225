// BuildCache: the state file is advisory. Whatever is in it (not JSON, the
// wrong types anywhere, a stale entry), Lookup answers without throwing and
// Store writes a valid file again.
#include "engine/build_cache.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace mc::engine
