// download's resume state is advisory: LoadManifest and LoadPartState answer
// "nothing usable" for any malformed file, never throw, and what Save*
// writes loads back.
#include "engine/download_state.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/paths.h"

namespace mc::engine::download_internal {
namespace {

using mc::testing::TempDir;
using mc::testing::WriteFile;
using nlohmann::json;

HfFile BigFile() {
  HfFile f;
  f.path = "model.safetensors";
  f.size = 1000;
  f.lfs_sha256 = std::string(64, 'a');
  return f;
}

TEST(DownloadStateTest, ManifestRoundTripsAndMalformedOnesAreEmpty) {
  TempDir tmp;
  auto dir = OpenRootDir(tmp.path(), false);
  ASSERT_TRUE(dir);
  Manifest m;
  m.source = "hf://org/model";
  m.commit = std::string(40, 'c');
  m.boot_id = "boot";
  m.files["a/b.bin"] = VerifiedFile{12, std::string(64, 'b')};
  ASSERT_TRUE(SaveManifest(*dir, m));
  Manifest back = LoadManifest(*dir);
  EXPECT_EQ(back.commit, m.commit);
  ASSERT_EQ(back.files.count("a/b.bin"), 1u);
  EXPECT_EQ(back.files["a/b.bin"].size, 12u);

  const std::string good = mc::testing::ReadFile(tmp / "manifest.json");
  for (const std::string& bad :
       {good.substr(0, good.size() / 2), std::string("[]"), std::string("7"),
        std::string(R"({"source":1,"commit":"c","bootId":"b","files":{}})"),
        std::string(R"({"source":"s","commit":"c","bootId":"b","files":[]})"),
        std::string(R"({"source":"s","commit":"c","bootId":"b","files":{"x":3}})"),
        std::string(
            R"({"source":"s","commit":"c","bootId":"b","files":{"x":{"size":-1,"oid":"o"}}})"),
        std::string(
            R"({"source":"s","commit":"c","bootId":"b","files":{"x":{"size":1,"oid":2}}})")}) {
    SCOPED_TRACE(bad);
    WriteFile(tmp / "manifest.json", bad);
    Manifest got;
    EXPECT_NO_THROW(got = LoadManifest(*dir));
    EXPECT_TRUE(got.files.empty());
    EXPECT_TRUE(got.commit.empty());
  }
}

TEST(DownloadStateTest, PartStateRoundTripsAndMalformedOrStaleOnesAreIgnored) {
  TempDir tmp;
  auto dir = OpenRootDir(tmp.path(), false);
  ASSERT_TRUE(dir);
  HfFile f = BigFile();
  PartState s{f.path, f.size, FileOid(f), 300, {300, 10, 0, 0}};
  ASSERT_TRUE(SavePartState(*dir, "k.json", s));
  auto back = LoadPartState(*dir, "k.json", f);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->done, s.done);

  json good = json::parse(mc::testing::ReadFile(tmp / "k.json"));
  auto with = [&](const std::string& key, json value) {
    json j = good;
    j[key] = std::move(value);
    return j.dump();
  };
  for (const std::string& bad : {
           good.dump().substr(0, 15),
           std::string("null"),
           with("size", "1000"),
           with("done", "all"),
           with("done", json::array({1, "2", 3, 4})),
           with("done", json::array({300, 300})),      // wrong segment count
           with("done", json::array({301, 0, 0, 0})),  // more than a segment holds
           with("segmentSize", 0),
           with("oid", std::string(64, 'f')),  // another version of the file
           with("path", "other.bin"),
       }) {
    SCOPED_TRACE(bad);
    WriteFile(tmp / "k.json", bad);
    std::optional<PartState> got;
    EXPECT_NO_THROW(got = LoadPartState(*dir, "k.json", f));
    EXPECT_FALSE(got);
  }
  EXPECT_FALSE(LoadPartState(*dir, "missing.json", f));
}

}  // namespace
}  // namespace mc::engine::download_internal
