// PlanLayers: --max-layer-size and --layer-per-file layouts (design.md "Image produced").
#include <set>

#include "tests/oci/tar_test_util.h"

namespace mc::oci {
namespace {

using namespace tartest;  // NOLINT

TarEntry D(std::string name) {
  TarEntry e;
  e.type = TarEntry::Type::kDirectory;
  e.name = std::move(name);
  e.mode = 0755;
  return e;
}
TarEntry F(std::string name, uint64_t size) {
  TarEntry e;
  e.type = TarEntry::Type::kFile;
  e.name = std::move(name);
  e.size = size;
  e.source = "/src/" + e.name;
  return e;
}
TarEntry L(std::string name, std::string target, uint64_t size) {
  TarEntry e = F(std::move(name), size);
  e.type = TarEntry::Type::kHardlink;
  e.link_target = std::move(target);
  return e;
}
TarEntry S(std::string name, std::string target) {
  TarEntry e;
  e.type = TarEntry::Type::kSymlink;
  e.name = std::move(name);
  e.mode = 0777;
  e.link_target = std::move(target);
  return e;
}

std::vector<std::vector<std::string>> LayerNames(const std::vector<std::vector<TarEntry>>& layers) {
  std::vector<std::vector<std::string>> out;
  for (const auto& l : layers) out.push_back(Names(l));
  return out;
}

uint64_t ContentBytes(const std::vector<TarEntry>& layer) {
  uint64_t n = 0;
  for (const TarEntry& e : layer) n += e.type == TarEntry::Type::kFile ? e.size : 0;
  return n;
}

// Invariants of every plan: each layer sorted with its parents present, every
// non-directory entry in exactly one layer, hard links beside their targets.
void CheckPlan(const std::vector<TarEntry>& entries,
               const std::vector<std::vector<TarEntry>>& layers) {
  ASSERT_FALSE(layers.empty());
  std::multiset<std::string> placed;
  std::set<std::string> dirs_placed;
  for (const auto& layer : layers) {
    std::set<std::string> names;
    for (size_t i = 0; i < layer.size(); ++i) {
      const TarEntry& e = layer[i];
      if (i > 0) {
        EXPECT_TRUE(TarNameLess(layer[i - 1].name, e.name)) << e.name;
      }
      auto slash = e.name.rfind('/');
      if (slash != std::string::npos) {
        EXPECT_TRUE(names.contains(e.name.substr(0, slash))) << e.name;
      }
      names.insert(e.name);
      if (e.type == TarEntry::Type::kDirectory) {
        dirs_placed.insert(e.name);
      } else {
        placed.insert(e.name);
      }
      if (e.type == TarEntry::Type::kHardlink) {
        const TarEntry* target = Find(layer, e.link_target);
        ASSERT_NE(target, nullptr) << e.name;
        EXPECT_EQ(target->type, TarEntry::Type::kFile);
      }
    }
  }
  for (const TarEntry& e : entries) {
    if (e.type == TarEntry::Type::kDirectory) {
      EXPECT_TRUE(dirs_placed.contains(e.name)) << e.name;
    } else {
      EXPECT_EQ(placed.count(e.name), 1u) << e.name;
    }
  }
}

std::vector<TarEntry> Model() {
  return {D("models"),      F("models/a", 3),     F("models/b", 3),
          D("models/d"),    F("models/d/c", 3),   S("models/d/s", "c"),
          F("models/e", 5), F("models/huge", 20), F("models/z", 1)};
}

TEST(TarPlanTest, OneLayerByDefault) {
  auto entries = Model();
  auto layers = PlanLayers(entries, 0, false);
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(Names(layers[0]), Names(entries));
  EXPECT_EQ(PlanLayers({}, 0, false).size(), 1u);
}

TEST(TarPlanTest, MaxLayerSizePacksInPathOrder) {
  auto entries = Model();
  auto layers = PlanLayers(entries, 6, false);
  CheckPlan(entries, layers);
  EXPECT_EQ(LayerNames(layers), (std::vector<std::vector<std::string>>{
                                    {"models", "models/a", "models/b"},
                                    {"models", "models/d", "models/d/c", "models/d/s"},
                                    {"models", "models/e"},
                                    {"models", "models/huge"},  // larger than the limit: alone
                                    {"models", "models/z"}}));
  for (const auto& l : layers) {
    if (Find(l, "models/huge") == nullptr) {
      EXPECT_LE(ContentBytes(l), 6u);
    }
  }
  // A limit above the total gives one layer.
  EXPECT_EQ(PlanLayers(entries, 1000, false).size(), 1u);
}

TEST(TarPlanTest, LayerPerFileWithSmallFilesSharing) {
  auto entries = Model();
  auto layers = PlanLayers(entries, 0, true, /*small_file_limit=*/5);
  CheckPlan(entries, layers);
  EXPECT_EQ(LayerNames(layers),
            (std::vector<std::vector<std::string>>{{"models", "models/a", "models/b", "models/d",
                                                    "models/d/c", "models/d/s", "models/z"},
                                                   {"models", "models/e"},
                                                   {"models", "models/huge"}}));
  // Only big files: the shared layer is empty and left out.
  std::vector<TarEntry> big = {D("models"), F("models/x", 50), F("models/y", 60)};
  EXPECT_EQ(
      LayerNames(PlanLayers(big, 0, true, 5)),
      (std::vector<std::vector<std::string>>{{"models", "models/x"}, {"models", "models/y"}}));
  // ...but not when it holds an empty directory.
  big.push_back(D("models/zz-empty"));
  EXPECT_EQ(PlanLayers(big, 0, true, 5).size(), 3u);
}

TEST(TarPlanTest, HardLinksFollowTheirTargetAcrossASplit) {
  std::vector<TarEntry> entries = {D("models"),
                                   F("models/a", 4),
                                   F("models/b", 4),
                                   D("models/sub"),
                                   L("models/sub/a2", "models/a", 4),
                                   L("models/z", "models/b", 4)};
  auto layers = PlanLayers(entries, 4, false);
  CheckPlan(entries, layers);
  EXPECT_EQ(LayerNames(layers), (std::vector<std::vector<std::string>>{
                                    {"models", "models/a", "models/sub", "models/sub/a2"},
                                    {"models", "models/b", "models/z"}}));
  EXPECT_EQ(Find(layers[0], "models/sub/a2")->type, TarEntry::Type::kHardlink);

  auto per_file = PlanLayers(entries, 0, true, 2);
  CheckPlan(entries, per_file);
  EXPECT_EQ(LayerNames(per_file), (std::vector<std::vector<std::string>>{
                                      {"models", "models/a", "models/sub", "models/sub/a2"},
                                      {"models", "models/b", "models/z"}}));
}

TEST(TarPlanTest, HardLinkWithoutItsTargetBecomesAFile) {
  std::vector<TarEntry> entries = {D("models"), F("models/a", 4), L("models/b", "models/gone", 7)};
  auto layers = PlanLayers(entries, 100, false);
  ASSERT_EQ(layers.size(), 1u);
  const TarEntry* b = Find(layers[0], "models/b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, TarEntry::Type::kFile);
  EXPECT_EQ(b->size, 7u);
  EXPECT_EQ(b->source, "/src/models/b");
  EXPECT_TRUE(b->link_target.empty());
}

TEST(TarPlanTest, ParentsWithoutEntriesAreSynthesised) {
  std::vector<TarEntry> entries = {F("opt/models/a", 1), F("opt/models/b", 1)};
  auto layers = PlanLayers(entries, 1, false);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(Names(layers[1]), (std::vector<std::string>{"opt", "opt/models", "opt/models/b"}));
  EXPECT_EQ(layers[1][0].type, TarEntry::Type::kDirectory);
  EXPECT_EQ(layers[1][0].mode, 0755u);
}

// The layers of a real model, unpacked over each other by GNU tar in any
// order, give back the model.
TEST(TarPlanTest, LayersUnpackToTheModel) {
  TempDir t;
  WriteFile(t / "m/config.json", "{}");
  WriteFile(t / "m/w/part-1", std::string(3000, '1'));
  WriteFile(t / "m/w/part-2", std::string(3000, '2'));
  WriteFile(t / "m/w/part-3", std::string(100, '3'));
  fs::create_hard_link(t / "m/w/part-1", t / "m/w/zz-link");
  Symlink("w/part-2", t / "m/latest");
  fs::create_directories(t / "m/empty");
  auto entries = ScanOk(t / "m");
  for (auto [max, per_file] : {std::pair<uint64_t, bool>{3000, false}, {0, true}}) {
    auto layers = PlanLayers(entries, max, per_file, 1000);
    EXPECT_EQ(layers.size(), per_file ? 3u : 4u);
    CheckPlan(entries, layers);
    fs::path out = t / ("out-" + std::to_string(max));
    for (size_t i = layers.size(); i-- > 0;) {  // reverse order: each stands alone
      fs::path tar = t / ("layer-" + std::to_string(i) + ".tar");
      WriteFile(tar, TarString(layers[i]));
      std::string log;
      ASSERT_EQ(GnuExtract(tar, out, &log), 0) << log;
    }
    std::string log;
    EXPECT_EQ(DiffTrees(t / "m", out / "models", &log), 0) << log;
    EXPECT_TRUE(fs::equivalent(out / "models/w/part-1", out / "models/w/zz-link"));
  }
}

}  // namespace
}  // namespace mc::oci
