// Golden bytes: the exact digests of the tar (diff_id), the layer, the config
// and the manifest of a small fixed model, built into an oci: layout with
// each compression and --jobs 1, 2 and 8. Any change to the output format
// (tar headers, ordering, shard boundaries, codec settings, config or
// manifest fields) fails here, so format drift between versions is a
// decision, never an accident. The tar is also checked with independent
// tools: GNU tar and Python's tarfile read it, and sha256sum of the
// decompressed layer gives the pinned diff_id.
//
// The base is scratch: the built-in base depends on the machine's busybox, and
// its own determinism is tested in builtin_base_test.cc and build_oci_test.cc.
//
// When a change of format is intended, rerun with MC_GOLDEN_PRINT=1 to print
// the new digests, and say why in the commit.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/paths.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// mc::testing::Run, callable from inside fixtures (where Test::Run hides it).
int Sh(const std::string& command, std::string* output = nullptr, bool merge_stderr = true) {
  return mc::testing::Run(command, output, merge_stderr);
}

// The fixed model: text files, an empty file, an executable, a nested
// directory, an empty directory, a symlink, and 9 MiB of weights (three
// compression shards, so --jobs changes how the work is split).
void MakeGoldenModel(const fs::path& m) {
  WriteFile(m / "config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64}\n");
  std::string vocab;
  for (int i = 0; i < 5000; ++i) vocab += "token" + std::to_string(i) + "\n";
  WriteFile(m / "tokenizer/vocab.txt", vocab);
  std::string weights(9 << 20, '\0');
  uint32_t x = 12345;
  for (size_t i = 0; i < weights.size(); ++i) {
    x = x * 1103515245u + 12345u;
    // Half the bytes repeat, half are noise: every codec has work to do.
    weights[i] = (i & 1) != 0 ? static_cast<char>(x >> 24) : static_cast<char>(i >> 12);
  }
  WriteFile(m / "model.safetensors", weights);
  WriteFile(m / "empty.txt", "");
  WriteFile(m / "run.sh", "#!/bin/sh\necho golden\n");
  ::chmod((m / "run.sh").c_str(), 0755);
  fs::create_directories(m / "empty_dir");
  fs::create_symlink("config.json", m / "config-link.json");
}

struct Digests {
  std::string manifest, config, layer, diff_id;
  bool operator==(const Digests&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Digests& d) {
  return os << "{\"" << d.manifest << "\", \"" << d.config << "\", \"" << d.layer << "\", \""
            << d.diff_id << "\"}";
}

// The pinned digests: manifest, config, layer, diff_id (the tar).
const std::map<std::string, Digests>& Golden() {
  // The config only names the tar (diff_id), so it is the same for every
  // compression; with none, the layer is the tar itself.
  static const std::string kTar =
      "sha256:20f6a9c14c203e564ec032672ae1b413664c2a8878842fc574e530503de86a72";
  static const std::string kConfig =
      "sha256:01ae88de3dcb1f23698553c14f3b207c24f5adcb5b70fd9ad4a59214a5dae2c9";
  static const std::map<std::string, Digests> golden = {
      {"gzip",
       {"sha256:511dcf602f1fac7a0915d3b3197f5cdd3c7762793e2dbda80584ea17533e9914", kConfig,
        "sha256:2b5ad33072f767a86b74052784a830e3b998232a0e00002fbf3f75ba1f1b9236", kTar}},
      {"zstd",
       {"sha256:4cd08aefcf189a216ef47fc0893ec01dac2088019b37033e523ce803a9507c5a", kConfig,
        "sha256:424c20f665afe243f23e72449e98aa9d8a7a7d662c92eb79ec63d4e4b0d9cbe2", kTar}},
      {"none",
       {"sha256:2dcdba817c983884a3572fa36ac84b2d5e5d6706ec7f487cc8277c424495025d", kConfig, kTar,
        kTar}},
  };
  return golden;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    model_ = new TempDir();
    MakeGoldenModel(model_->path() / "golden-model");
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }

  // Builds the model into a fresh layout; returns its digests and the layer blob.
  Digests Build(const std::string& compression, int jobs, fs::path* layer_blob) {
    fs::path layout = tmp_ / ("layout-" + std::to_string(jobs));
    std::string out;
    EXPECT_EQ(Sh("SOURCE_DATE_EPOCH=1700000000 " + Quote(EngineBinary()) +
                     " --progress none build --base scratch --no-cache --compression " +
                     compression + " --jobs " + std::to_string(jobs) + " " +
                     Quote((model_->path() / "golden-model").string()) + " " +
                     Quote("oci:" + layout.string() + ":golden"),
                 &out),
              0)
        << out;
    Digests d;
    json index = json::parse(ReadFile(layout / "index.json"));
    d.manifest = index["manifests"][0]["digest"].get<std::string>();
    auto blob = [&](const std::string& digest) {
      return layout / "blobs/sha256" / digest.substr(7);
    };
    json manifest = json::parse(ReadFile(blob(d.manifest)));
    d.config = manifest["config"]["digest"].get<std::string>();
    d.layer = manifest["layers"][0]["digest"].get<std::string>();
    json config = json::parse(ReadFile(blob(d.config)));
    d.diff_id = config["rootfs"]["diff_ids"][0].get<std::string>();
    EXPECT_EQ(manifest["layers"].size(), 1u);
    if (layer_blob) *layer_blob = blob(d.layer);
    return d;
  }

  static TempDir* model_;
  TempDir tmp_;
};

TempDir* GoldenTest::model_ = nullptr;

TEST_P(GoldenTest, DigestsArePinnedForEveryJobsValue) {
  const std::string compression = GetParam();
  const Digests& want = Golden().at(compression);
  fs::path layer;
  Digests one = Build(compression, 1, &layer);
  if (std::getenv("MC_GOLDEN_PRINT") != nullptr) {
    std::printf("golden %s %s\n", compression.c_str(), (::testing::PrintToString(one)).c_str());
  }
  EXPECT_EQ(one, want) << compression << " --jobs 1";
  EXPECT_EQ(Build(compression, 2, nullptr), want) << compression << " --jobs 2";
  EXPECT_EQ(Build(compression, 8, nullptr), want) << compression << " --jobs 8";

  // The tar, read by tools that are not ours: its sha256 is the diff_id.
  std::string decompress = compression == "gzip"   ? "gzip -dc "
                           : compression == "zstd" ? "zstd -qdc "
                                                   : "cat ";
  std::string out;
  ASSERT_EQ(
      Sh(decompress + Quote(layer.string()) + " > " + Quote((tmp_ / "layer.tar").string()), &out),
      0)
      << out;
  out.clear();
  ASSERT_EQ(Sh("sha256sum " + Quote((tmp_ / "layer.tar").string()), &out, false), 0);
  EXPECT_EQ("sha256:" + out.substr(0, 64), want.diff_id);
  // GNU tar: names, types, modes, owners and mtimes, in archive order
  // ("config-link.json" sorts before "config.json": '-' < '.').
  out.clear();
  ASSERT_EQ(
      Sh("TZ=UTC tar --numeric-owner --full-time -tvf " + Quote((tmp_ / "layer.tar").string()),
         &out, false),
      0)
      << out;
  EXPECT_EQ(out,
            "drwxr-xr-x 0/0               0 2023-11-14 22:13:20 models/\n"
            "lrwxrwxrwx 0/0               0 2023-11-14 22:13:20 models/config-link.json -> "
            "config.json\n"
            "-rw-r--r-- 0/0              56 2023-11-14 22:13:20 models/config.json\n"
            "-rw-r--r-- 0/0               0 2023-11-14 22:13:20 models/empty.txt\n"
            "drwxr-xr-x 0/0               0 2023-11-14 22:13:20 models/empty_dir/\n"
            "-rw-r--r-- 0/0         9437184 2023-11-14 22:13:20 models/model.safetensors\n"
            "-rwxr-xr-x 0/0              22 2023-11-14 22:13:20 models/run.sh\n"
            "drwxr-xr-x 0/0               0 2023-11-14 22:13:20 models/tokenizer/\n"
            "-rw-r--r-- 0/0           48890 2023-11-14 22:13:20 models/tokenizer/vocab.txt\n");
  // Python's tarfile: a POSIX archive it reads without error, same entries.
  out.clear();
  ASSERT_EQ(Sh("python3 -c 'import sys,tarfile\n"
               "t=tarfile.open(sys.argv[1])\n"
               "for m in t.getmembers(): print(m.name, m.type.decode(), oct(m.mode), m.uid, "
               "m.gid, m.mtime, m.size, m.linkname)' " +
                   Quote((tmp_ / "layer.tar").string()),
               &out, false),
            0)
      << out;
  EXPECT_EQ(out,
            "models 5 0o755 0 0 1700000000 0 \n"
            "models/config-link.json 2 0o777 0 0 1700000000 0 config.json\n"
            "models/config.json 0 0o644 0 0 1700000000 56 \n"
            "models/empty.txt 0 0o644 0 0 1700000000 0 \n"
            "models/empty_dir 5 0o755 0 0 1700000000 0 \n"
            "models/model.safetensors 0 0o644 0 0 1700000000 9437184 \n"
            "models/run.sh 0 0o755 0 0 1700000000 22 \n"
            "models/tokenizer 5 0o755 0 0 1700000000 0 \n"
            "models/tokenizer/vocab.txt 0 0o644 0 0 1700000000 48890 \n");
}

INSTANTIATE_TEST_SUITE_P(Compressions, GoldenTest, ::testing::Values("gzip", "zstd", "none"));

}  // namespace
}  // namespace mc::testing
