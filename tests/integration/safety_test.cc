// Safe inputs (issue 12), with the real binary: symlinks leaving the model
// directory are refused unless the user opts in (and nothing is published
// then), `download` never writes through a symlinked directory, every
// numeric flag rejects values outside its range with exit 2, and corrupt
// state files only cost a warning.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// mc::testing::Run, callable from inside fixtures (where Test::Run hides it).
int Sh(const std::string& command, std::string* output = nullptr, bool merge_stderr = true) {
  return mc::testing::Run(command, output, merge_stderr);
}

// Runs the engine with arguments `args`; stdout and stderr into *out.
int Engine(const std::string& args, std::string* out, const std::string& env = "") {
  return Sh("env -u HF_TOKEN " + env + " timeout 120 " + Quote(EngineBinary()) +
                " --progress none " + args,
            out);
}

std::string Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) == std::string::npos ? "'" + needle + "' not in: " + haystack : "";
}

// Manifests index.json of a layout lists (0 when there is no index).
size_t IndexEntries(const fs::path& layout) {
  if (!fs::exists(layout / "index.json")) return 0;
  json index = json::parse(ReadFile(layout / "index.json"));
  return index.value("manifests", json::array()).size();
}

class SymlinkPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(tmp_ / "m/config.json", "{\"model_type\":\"llama\"}");
    WriteFile(tmp_ / "m/weights/a.bin", std::string(5000, 'a'));
    fs::create_symlink("weights/a.bin", tmp_ / "m/inside-link");  // stays a link
    WriteFile(tmp_ / "outside/secret.json", "{\"auths\":{\"x\":\"c2VjcmV0\"}}");
    WriteFile(tmp_ / "outside/dir/f.txt", "from a directory outside");
  }
  fs::path Model() const { return tmp_ / "m"; }
  std::string Layout() const { return "oci:" + (tmp_ / "layout").string() + ":latest"; }

  // The build is refused (exit 2) with a one-line error naming the link and
  // its target and --follow-symlinks; the layout has no image.
  void ExpectRefused(const std::string& link, const std::string& target) {
    std::string out;
    EXPECT_EQ(Engine("build " + Quote(Model().string()) + " " + Quote(Layout()), &out), 2) << out;
    EXPECT_EQ(Contains(out, (Model() / link).string()), "");
    EXPECT_EQ(Contains(out, target), "");
    EXPECT_EQ(Contains(out, "--follow-symlinks"), "");
    EXPECT_EQ(IndexEntries(tmp_ / "layout"), 0u);
  }

  // With --follow-symlinks the build succeeds and `link` holds `content`
  // as a regular file in the image (extracted with GNU tar).
  void ExpectFollowed(const std::string& link, const std::string& content) {
    std::string out;
    ASSERT_EQ(
        Engine("build --follow-symlinks " + Quote(Model().string()) + " " + Quote(Layout()), &out),
        0)
        << out;
    fs::path x = tmp_ / "x";
    fs::remove_all(x);
    fs::create_directories(x);
    ASSERT_EQ(
        Sh("skopeo copy --quiet " + Quote(Layout()) + " dir:" + Quote((tmp_ / "d").string()), &out),
        0)
        << out;
    json manifest = json::parse(ReadFile(tmp_ / "d/manifest.json"));
    fs::path blob = tmp_ / "d" / manifest["layers"].back()["digest"].get<std::string>().substr(7);
    ASSERT_EQ(Sh("tar -xzf " + Quote(blob.string()) + " -C " + Quote(x.string()), &out), 0) << out;
    EXPECT_FALSE(fs::is_symlink(x / "models" / link));
    EXPECT_EQ(ReadFile(x / "models" / link), content);
    EXPECT_TRUE(fs::is_symlink(x / "models/inside-link"));
    fs::remove_all(tmp_ / "d");
  }
  TempDir tmp_;
};

TEST_F(SymlinkPolicyTest, AbsoluteLinkToAFileOutside) {
  std::string target = (tmp_ / "outside/secret.json").string();
  fs::create_symlink(target, Model() / "cfg.json");
  ExpectRefused("cfg.json", target);
  ExpectFollowed("cfg.json", ReadFile(target));
}

TEST_F(SymlinkPolicyTest, LinkToADirectoryOutside) {
  fs::create_symlink("../outside/dir", Model() / "extra");
  ExpectRefused("extra", "../outside/dir");
  ExpectFollowed("extra/f.txt", "from a directory outside");
}

TEST_F(SymlinkPolicyTest, RelativeDotDotLink) {
  fs::create_directories(Model() / "a/b");
  fs::create_symlink("../../../outside/secret.json", Model() / "a/b/passwd");
  ExpectRefused("a/b/passwd", "../../../outside/secret.json");
  ExpectFollowed("a/b/passwd", ReadFile(tmp_ / "outside/secret.json"));
}

TEST_F(SymlinkPolicyTest, ChainThatLeavesAndComesBack) {
  fs::create_symlink("../m/config.json", tmp_ / "outside/hop");
  fs::create_symlink("../outside/hop", Model() / "back");
  ExpectRefused("back", "../outside/hop");
  ExpectFollowed("back", ReadFile(Model() / "config.json"));
}

// A real Hugging Face cache layout builds without the flag: its links are
// followed into the repository's blobs/.
TEST_F(SymlinkPolicyTest, HuggingFaceCacheSnapshotBuildsWithoutTheFlag) {
  fs::path repo = tmp_ / "hub/models--org--x";
  std::string config = "{\"model_type\":\"bert\"}";
  std::string hex = oci::Digest::Of(config).hex();
  WriteFile(repo / "blobs" / hex, config);
  WriteFile(repo / "refs/main", "0123456789abcdef");
  fs::path snap = repo / "snapshots/0123456789abcdef";
  fs::create_directories(snap);
  fs::create_symlink("../../blobs/" + hex, snap / "config.json");
  std::string out;
  ASSERT_EQ(Engine("build " + Quote(snap.string()) + " " + Quote(Layout()), &out), 0) << out;
  EXPECT_EQ(IndexEntries(tmp_ / "layout"), 1u);
  ASSERT_EQ(
      Sh("skopeo copy --quiet " + Quote(Layout()) + " dir:" + Quote((tmp_ / "d").string()), &out),
      0)
      << out;
  json manifest = json::parse(ReadFile(tmp_ / "d/manifest.json"));
  fs::path blob = tmp_ / "d" / manifest["layers"].back()["digest"].get<std::string>().substr(7);
  ASSERT_EQ(Sh("tar -xzf " + Quote(blob.string()) + " -C " + Quote(tmp_.path().string()), &out), 0)
      << out;
  EXPECT_FALSE(fs::is_symlink(tmp_ / "models/config.json"));
  EXPECT_EQ(ReadFile(tmp_ / "models/config.json"), config);
}

// Against the real registry: a refused build pushes no manifest (the scan
// comes before any upload).
TEST_F(SymlinkPolicyTest, RefusalPushesNothingToARegistry) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  fs::create_symlink((tmp_ / "outside/secret.json").string(), Model() / "cfg.json");
  std::string out;
  EXPECT_EQ(Engine("build " + Quote(Model().string()) + " docker://" + reg.host() +
                       "/safety/model:v1 --tls-verify=false",
                   &out),
            2)
      << out;
  EXPECT_EQ(Contains(out, (Model() / "cfg.json").string()), "");
  EXPECT_EQ(reg.CountRequests("PUT", "/manifests/"), 0) << reg.Log();
  EXPECT_EQ(reg.CountRequests("POST", "/blobs/uploads/"), 0) << reg.Log();
  EXPECT_NE(
      Sh("skopeo inspect --tls-verify=false docker://" + reg.host() + "/safety/model:v1", &out), 0);
}

// `download` into DIR where DIR/sub is a symlink to a directory outside:
// refused with exit 2 naming it, and the outside directory is untouched.
TEST(DownloadBeneathDirTest, SymlinkedSubdirectoryIsRefusedAndOutsideUntouched) {
  TempDir model;
  MakeTestModel(model.path());  // has sub/dir/extra.bin
  HubServer hub(model.path());
  TempDir tmp;
  fs::create_directories(tmp / "outside");
  WriteFile(tmp / "outside/keep.txt", "keep");
  fs::create_directories(tmp / "dir");
  fs::create_symlink(tmp / "outside", tmp / "dir/sub");
  std::string before, after, out;
  ASSERT_EQ(Sh("find " + Quote((tmp / "outside").string()) + " -printf '%p %s %T@\\n'", &before),
            0);
  EXPECT_EQ(hub.Engine("download hf://org/model " + Quote((tmp / "dir").string()), &out), 2) << out;
  EXPECT_EQ(Contains(out, (tmp / "dir/sub").string()), "");
  EXPECT_EQ(Contains(out, "symlink"), "");
  after.clear();
  ASSERT_EQ(Sh("find " + Quote((tmp / "outside").string()) + " -printf '%p %s %T@\\n'", &after), 0);
  EXPECT_EQ(before, after);

  // The state directory itself as a link: refused the same way.
  fs::remove(tmp / "dir/sub");
  fs::remove_all(tmp / "dir/.mc-download");
  fs::create_symlink(tmp / "outside", tmp / "dir/.mc-download");
  EXPECT_EQ(hub.Engine("download hf://org/model " + Quote((tmp / "dir").string()), &out), 2) << out;
  EXPECT_EQ(Contains(out, (tmp / "dir/.mc-download").string()), "");
  after.clear();
  ASSERT_EQ(Sh("find " + Quote((tmp / "outside").string()) + " -printf '%p %s %T@\\n'", &after), 0);
  EXPECT_EQ(before, after);

  // Without the links the same download works.
  fs::remove(tmp / "dir/.mc-download");
  EXPECT_EQ(hub.Engine("download hf://org/model " + Quote((tmp / "dir").string()), &out), 0) << out;
  EXPECT_EQ(ReadFile(tmp / "dir/sub/dir/extra.bin"), ReadFile(model / "sub/dir/extra.bin"));
}

// Every numeric flag of every subcommand at its bad values: exit 2, and the
// message names the flag and its range. Nothing here reaches the network.
TEST(NumericFlagsTest, OutOfRangeValuesAreUsageErrors) {
  TempDir tmp;
  WriteFile(tmp / "m/config.json", "{}");
  std::string model = Quote((tmp / "m").string());
  std::string layout = Quote("oci:" + (tmp / "layout").string());
  std::string dl = "download hf://org/model " + Quote((tmp / "d").string()) + " ";
  std::string reg =
      "register --url http://127.0.0.1:9 --name n --version v --uri "
      "oci://127.0.0.1:9/r@sha256:" +
      std::string(64, '0') + " ";
  struct Case {
    std::string args;
    std::string want;  // in the message
  };
  std::vector<Case> cases = {
      {"build " + model + " " + layout + " --jobs 0", "range 1 to 256"},
      {"build " + model + " " + layout + " --jobs -3", "range 1 to 256"},
      {"build " + model + " " + layout + " -j 257", "range 1 to 256"},
      {"build " + model + " " + layout + " --retry-times -1", "range 0 to 100"},
      {"build " + model + " " + layout + " --retry-times 101", "range 0 to 100"},
      {"build " + model + " " + layout + " --chunk-size 0", "between 256K and 1G"},
      {"build " + model + " " + layout + " --chunk-size 100K", "between 256K and 1G"},
      {"build " + model + " " + layout + " --chunk-size 2G", "between 256K and 1G"},
      {"build " + model + " " + layout + " --chunk-size 5Q", "invalid size"},
      {"build " + model + " " + layout + " --max-layer-size 0",
       "--max-layer-size must be at least 1"},
      {"build " + model + " " + layout + " --compression-level 10", "between 0 and 9"},
      {"build " + model + " " + layout + " --compression-level -2", "between 0 and 9"},
      {"build " + model + " " + layout + " --compression zstd --compression-level 20",
       "between 0 and 19"},
      {"build " + model + " " + layout + " --compression none --compression-level 5",
       "--compression none"},
      {dl + "--jobs 0", "range 1 to 256"},
      {dl + "--jobs -3", "range 1 to 256"},
      {dl + "--jobs 1000", "range 1 to 256"},
      {dl + "--retry-times -1", "range 0 to 100"},
      {dl + "--segment-size 0", "--segment-size must be between 64K"},
      {dl + "--segment-size 1K", "--segment-size must be between 64K"},
      {dl + "--segment-size x", "invalid size"},
      {"copy " + layout + " " + layout + " --jobs 0", "range 1 to 256"},
      {"copy " + layout + " " + layout + " --jobs -1", "range 1 to 256"},
      {"copy " + layout + " " + layout + " --retry-times -1", "range 0 to 100"},
      {reg + "--retry-times -1", "range 0 to 100"},
      {reg + "--retry-times 1000", "range 0 to 100"},
      {"inspect " + layout + " --retry-times -1", "range 0 to 100"},
  };
  for (const auto& c : cases) {
    std::string out;
    EXPECT_EQ(Engine(c.args, &out, "HF_ENDPOINT=http://127.0.0.1:9"), 2) << c.args << "\n" << out;
    EXPECT_EQ(Contains(out, c.want), "") << c.args;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << c.args << "\n" << out;
  }
  EXPECT_FALSE(fs::exists(tmp / "layout"));
  EXPECT_FALSE(fs::exists(tmp / "d"));
}

// The three ways a state file goes bad.
enum class Corruption { kTruncated, kWrongTypes, kStale };
const char* Name(Corruption c) {
  return c == Corruption::kTruncated    ? "truncated"
         : c == Corruption::kWrongTypes ? "wrong types"
                                        : "stale";
}

std::string LastLine(std::string out) {
  while (!out.empty() && out.back() == '\n') out.pop_back();
  size_t nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

// The build cache's state.json: each corruption costs a rebuild (and, when
// malformed, a warning), never the run; the digest is the clean run's.
TEST(StateFilesTest, CorruptBuildCacheIsIgnoredAndRewritten) {
  TempDir tmp;
  WriteFile(tmp / "m/config.json", "{\"model_type\":\"llama\"}");
  WriteFile(tmp / "m/w.bin", std::string(300000, 'w'));
  std::string build = "build " + Quote((tmp / "m").string()) + " " +
                      Quote("oci:" + (tmp / "layout").string() + ":v1");
  std::string out;
  ASSERT_EQ(Engine(build, &out), 0) << out;
  const std::string clean = LastLine(out);
  ASSERT_TRUE(clean.starts_with("sha256:")) << out;
  fs::path state = tmp / ".mc-engine-cache/m/state.json";
  ASSERT_TRUE(fs::exists(state));
  const std::string good = ReadFile(state);
  json j = json::parse(good);
  ASSERT_EQ(j["builds"].size(), 1u);
  const std::string key = j["builds"].begin().key();

  for (Corruption c : {Corruption::kTruncated, Corruption::kWrongTypes, Corruption::kStale}) {
    SCOPED_TRACE(Name(c));
    json bad = json::parse(good);
    switch (c) {
      case Corruption::kTruncated:
        WriteFile(state, good.substr(0, good.size() / 2));
        break;
      case Corruption::kWrongTypes:
        bad["builds"][key]["layers"][0]["descriptor"] = "sha256:not-an-object";
        bad["builds"][key]["layers"][0]["files"] = "three";
        WriteFile(state, bad.dump());
        break;
      case Corruption::kStale:  // well-formed, but names a layer the layout does not have
        bad["builds"][key]["layers"][0]["descriptor"]["digest"] =
            oci::Digest::Of("some other layer").String();
        WriteFile(state, bad.dump());
        break;
    }
    ASSERT_EQ(Engine(build, &out), 0) << out;
    EXPECT_EQ(LastLine(out), clean) << out;
    if (c != Corruption::kStale) {
      EXPECT_EQ(Contains(out, "ignoring the build cache"), "");
      EXPECT_EQ(Contains(out, state.string()), "");
    }
    // Rewritten: valid again, and the next run is a cache hit.
    json again = json::parse(ReadFile(state), nullptr, false);
    ASSERT_TRUE(again.is_object()) << ReadFile(state);
    EXPECT_EQ(again["builds"][key], json::parse(good)["builds"][key]);
  }
  // Not a JSON object at all, and "builds" of the wrong type.
  for (const std::string& junk : {std::string("[1,2,3]"), std::string("{\"builds\":[]}")}) {
    WriteFile(state, junk);
    ASSERT_EQ(Engine(build, &out), 0) << out;
    EXPECT_EQ(LastLine(out), clean) << out;
    EXPECT_EQ(Contains(out, "ignoring the build cache"), "");
  }
}

// download's manifest.json and per-file resume state: bad ones are ignored
// with a warning, the files come out identical, the state is valid again.
TEST(StateFilesTest, CorruptDownloadStateIsIgnoredAndRewritten) {
  TempDir model;
  MakeTestModel(model.path());
  HubServer hub(model.path());
  TempDir tmp;
  fs::path dir = tmp / "d";
  std::string dl = "download hf://org/model " + Quote(dir.string()) + " --segment-size 256K";
  std::string out;
  ASSERT_EQ(hub.Engine(dl, &out), 0) << out;
  fs::path manifest = dir / ".mc-download/manifest.json";
  const std::string good = ReadFile(manifest);
  const std::string big = "model-00001-of-00002.safetensors";
  auto same_files = [&] {
    for (const std::string& f : {std::string("config.json"), big, std::string("sub/dir/extra.bin"),
                                 std::string("empty.txt")}) {
      EXPECT_TRUE(ReadFile(dir / f) == ReadFile(model / f)) << f << " differs";
    }
  };
  for (Corruption c : {Corruption::kTruncated, Corruption::kWrongTypes, Corruption::kStale}) {
    SCOPED_TRACE(Name(c));
    json bad = json::parse(good);
    switch (c) {
      case Corruption::kTruncated:
        WriteFile(manifest, good.substr(0, good.size() / 3));
        break;
      case Corruption::kWrongTypes:
        bad["files"][big]["size"] = "3 MiB";
        bad["commit"] = 42;
        WriteFile(manifest, bad.dump());
        break;
      case Corruption::kStale:  // another commit whose files had other hashes
        bad["commit"] = std::string(40, 'f');
        for (auto& [name, f] : bad["files"].items()) f["oid"] = std::string(64, 'e');
        WriteFile(manifest, bad.dump());
        break;
    }
    ASSERT_EQ(hub.Engine(dl, &out), 0) << out;
    if (c != Corruption::kStale) {
      EXPECT_EQ(Contains(out, "ignoring the download state file"), "");
      EXPECT_EQ(Contains(out, manifest.string()), "");
    }
    same_files();
    json again = json::parse(ReadFile(manifest), nullptr, false);
    ASSERT_TRUE(again.is_object());
    EXPECT_EQ(again["files"], json::parse(good)["files"]);
  }

  // The resume state of a partial file, corrupted three ways: the file is
  // fetched again from scratch and comes out right.
  const std::string key = oci::Digest::Of(big).hex().substr(0, 32);
  fs::path part = dir / ".mc-download" / (key + ".part");
  fs::path part_state = dir / ".mc-download" / (key + ".json");
  const size_t size = fs::file_size(model / big);
  for (Corruption c : {Corruption::kTruncated, Corruption::kWrongTypes, Corruption::kStale}) {
    SCOPED_TRACE(std::string("part state ") + Name(c));
    fs::remove(dir / big);
    WriteFile(manifest, good);
    WriteFile(part, std::string(size, 'x'));  // nothing of it is right
    json st = {{"path", big},
               {"size", size},
               {"oid", std::string(64, 'e')},
               {"segmentSize", 256 << 10},
               {"done", std::vector<uint64_t>((size + (256 << 10) - 1) / (256 << 10), 256 << 10)}};
    switch (c) {
      case Corruption::kTruncated:
        WriteFile(part_state, st.dump().substr(0, 20));
        break;
      case Corruption::kWrongTypes:
        st["done"] = "all of it";
        WriteFile(part_state, st.dump());
        break;
      case Corruption::kStale:  // another version of the file (oid differs)
        WriteFile(part_state, st.dump());
        break;
    }
    ASSERT_EQ(hub.Engine(dl, &out), 0) << out;
    if (c != Corruption::kStale) {
      EXPECT_EQ(Contains(out, "ignoring the download state file"), "");
      EXPECT_EQ(Contains(out, part_state.string()), "");
    }
    same_files();
    EXPECT_FALSE(fs::exists(part));
    EXPECT_FALSE(fs::exists(part_state));
  }
}

}  // namespace
}  // namespace mc::testing
