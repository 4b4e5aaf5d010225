// `build --type modelpack`: CNCF ModelPack artifacts, checked with tools that
// are not ours: the spec's own JSON schema through Debian's python3-jsonschema,
// GNU tar and Python's tarfile for every layer, sha256sum for the diffIds,
// skopeo for reading and comparing manifests, and real docker-registry
// instances for pushing and mirroring.
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/model_registry.h"
#include "oci/digest.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Engine() {
  return "SOURCE_DATE_EPOCH=1700000000 " + Quote(EngineBinary()) + " --progress none";
}

// Debian's python3 runs the Python checks: python3-jsonschema is installed for
// it, and it starts in milliseconds (a pyenv shim earlier in PATH takes most
// of a second per call, and CheckLayers calls it once per layer).

// A safetensors file: the 8-byte little-endian header length, the JSON header
// (padded with spaces to 8 bytes, as the reference writer does), the data.
std::string Safetensors(
    const std::vector<std::tuple<std::string, std::string, std::vector<int>>>& tensors,
    uint32_t seed) {
  json h = {{"__metadata__", {{"format", "pt"}}}};
  uint64_t offset = 0;
  for (const auto& [name, dtype, shape] : tensors) {
    uint64_t n = 1;
    for (int d : shape) n *= static_cast<uint64_t>(d);
    uint64_t bytes = n * (dtype == "F32" ? 4 : 2);
    h[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header = h.dump();
  while (header.size() % 8) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + RandomBytes(offset, seed);
}

// Weights (two shards and a nested one), configs, tokenizer, a model card, a
// license, code, a dataset, a file we cannot name, a symlink, an empty dir.
void MakeMixedModel(const fs::path& m, bool links = true) {
  WriteFile(m / "model-00001-of-00002.safetensors", Safetensors({{"w1", "BF16", {1024, 1024}}}, 1));
  WriteFile(m / "model-00002-of-00002.safetensors",
            Safetensors({{"w2", "BF16", {512, 1024}}, {"norm", "F32", {1024}}}, 2));
  WriteFile(m / "nested/deeper/extra.safetensors", Safetensors({{"e", "BF16", {64, 64}}}, 3));
  WriteFile(
      m / "config.json",
      R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16"})");
  WriteFile(m / "generation_config.json", R"({"do_sample":true})");
  WriteFile(m / "tokenizer.json", RandomBytes(100000, 4));
  WriteFile(m / "tokenizer_config.json", R"({"model_max_length":4096})");
  WriteFile(m / "special_tokens_map.json", "{}");
  WriteFile(m / "README.md",
            "---\nlicense: apache-2.0\nlanguage:\n- en\n- fr\n---\n# Demo model\n");
  WriteFile(m / "LICENSE", "Apache License 2.0 (test)\n");
  WriteFile(m / "modeling_demo.py", "import torch\n");
  WriteFile(m / "data/train.parquet", RandomBytes(5000, 5));
  WriteFile(m / "notes.xyz", "what is this?\n");
  if (!links) return;
  fs::create_symlink("config.json", m / "config-link.json");
  fs::create_directories(m / "empty_dir");
}

struct ExpectedLayer {
  std::string media_type;  // without the compression suffix
  std::string filepath;
  std::vector<std::string> files;  // regular files and links in the layer
  bool untested = false;
};

const std::vector<ExpectedLayer>& Expected() {
  static const std::vector<ExpectedLayer> layers = {
      {"application/vnd.cncf.model.weight.v1.tar",
       "model-00001-of-00002.safetensors",
       {"model-00001-of-00002.safetensors"}},
      {"application/vnd.cncf.model.weight.v1.tar",
       "model-00002-of-00002.safetensors",
       {"model-00002-of-00002.safetensors"}},
      {"application/vnd.cncf.model.weight.v1.tar",
       "nested/deeper/extra.safetensors",
       {"nested/deeper/extra.safetensors"}},
      {"application/vnd.cncf.model.weight.config.v1.tar",
       ".",
       {"config-link.json", "config.json", "generation_config.json", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json"}},
      {"application/vnd.cncf.model.doc.v1.tar", ".", {"LICENSE", "README.md"}},
      {"application/vnd.cncf.model.doc.v1.tar", "notes.xyz", {"notes.xyz"}, true},
      {"application/vnd.cncf.model.code.v1.tar", "modeling_demo.py", {"modeling_demo.py"}},
      {"application/vnd.cncf.model.dataset.v1.tar", "data/train.parquet", {"data/train.parquet"}},
  };
  return layers;
}

std::string Sha256OfFile(const fs::path& p) {
  std::string out;
  EXPECT_EQ(Sh("sha256sum " + Quote(p.string()), &out, false), 0);
  return out.substr(0, 64);
}

std::string Sha256OfCommand(const std::string& cmd) {
  std::string out;
  EXPECT_EQ(Sh(cmd + " | sha256sum", &out, false), 0);
  return "sha256:" + out.substr(0, 64);
}

struct Artifact {
  std::string manifest_bytes;
  json manifest;
  json config;
  fs::path dir;  // skopeo dir: copy
};

// skopeo reads the artifact (and copies it into dir:).
Artifact CopyOut(const std::string& ref, const fs::path& to, const std::string& flags = "") {
  std::string out;
  EXPECT_EQ(
      Sh("skopeo copy --quiet " + flags + " " + Quote(ref) + " dir:" + Quote(to.string()), &out), 0)
      << out;
  Artifact a;
  a.dir = to;
  a.manifest_bytes = ReadFile(to / "manifest.json");
  a.manifest = json::parse(a.manifest_bytes);
  a.config =
      json::parse(ReadFile(to / a.manifest["config"]["digest"].get<std::string>().substr(7)));
  return a;
}

std::string Build(const fs::path& model, const std::string& dest, const std::string& extra = "") {
  std::string out;
  int rc = Sh(Engine() + " build " + Quote(model.string()) + " " + Quote(dest) + " " + extra, &out,
              false);
  EXPECT_EQ(rc, 0) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string Layout(const fs::path& dir) { return "oci:" + dir.string() + ":v1"; }

void ExpectSchemaValid(const json& config, const fs::path& tmp) {
  fs::path file = tmp / "config-to-validate.json";
  WriteFile(file, config.dump());
  std::string out;
  int rc =
      Sh("/usr/bin/python3 " +
             Quote((SourceDir() / "tests/support/modelpack_validate.py").string()) + " " +
             Quote((SourceDir() / "tests/support/testdata/modelpack/config-schema.json").string()) +
             " " + Quote(file.string()),
         &out);
  EXPECT_EQ(rc, 0) << "the config does not validate against the ModelPack schema (needs Debian's "
                      "python3-jsonschema, scripts/install-deps.sh):\n"
                   << out << "\n"
                   << config.dump(2);
}

// Layer i of `a` holds exactly the expected files, equal to the model's,
// read by GNU tar and by Python's tarfile; its digest and diffId are right.
void CheckLayers(const Artifact& a, const fs::path& model, const fs::path& tmp,
                 const std::string& suffix) {
  const auto& expected = Expected();
  ASSERT_EQ(a.manifest["layers"].size(), expected.size()) << a.manifest.dump(2);
  ASSERT_EQ(a.config["modelfs"]["diffIds"].size(), expected.size());
  std::string decompress = suffix == "+gzip"   ? "gzip -dc "
                           : suffix == "+zstd" ? "zstd -dc "
                                               : "cat ";
  fs::path x = tmp / ("x" + suffix);
  fs::create_directories(x);
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i) + " " + expected[i].filepath);
    const json& l = a.manifest["layers"][i];
    EXPECT_EQ(l["mediaType"], expected[i].media_type + suffix);
    EXPECT_EQ(l["annotations"]["org.cncf.model.filepath"], expected[i].filepath);
    EXPECT_EQ(l["annotations"].contains("org.cncf.model.file.mediatype.untested"),
              expected[i].untested);
    json meta =
        json::parse(l["annotations"]["org.cncf.model.file.metadata+json"].get<std::string>());
    EXPECT_EQ(meta["mtime"], "2023-11-14T22:13:20Z");
    EXPECT_EQ(meta["uid"], 0);
    EXPECT_EQ(meta["gid"], 0);
    if (expected[i].filepath == ".") {
      EXPECT_EQ(meta["typeflag"], 53);  // '5'
    } else {
      EXPECT_EQ(meta["typeflag"], 48);  // '0'
      EXPECT_EQ(meta["name"], fs::path(expected[i].filepath).filename().string());
      EXPECT_EQ(meta["size"], fs::file_size(model / expected[i].filepath));
      EXPECT_EQ(meta["mode"], 0644);
    }
    fs::path blob = a.dir / l["digest"].get<std::string>().substr(7);
    EXPECT_EQ(Sha256OfCommand("cat " + Quote(blob.string())), l["digest"]);
    EXPECT_EQ(Sha256OfCommand(decompress + Quote(blob.string())),
              a.config["modelfs"]["diffIds"][i]);
    // Python's tarfile: names, owners, mtime and every file's content.
    std::string out;
    ASSERT_EQ(Sh(decompress + Quote(blob.string()) + " | /usr/bin/python3 " +
                     Quote((SourceDir() / "tests/support/tar_inspect.py").string()) + " -",
                 &out, false),
              0)
        << out;
    std::vector<std::string> files;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      json m = json::parse(line);
      EXPECT_EQ(m["uid"], 0);
      EXPECT_EQ(m["gid"], 0);
      EXPECT_EQ(m["mtime"], 1700000000);
      std::string name = m["name"];
      EXPECT_FALSE(name.starts_with("/") || name.starts_with("./") || name.starts_with("models"))
          << name;
      if (m["type"] == "5") {
        EXPECT_EQ(m["mode"], 0755);
        continue;
      }
      files.push_back(name);
      if (m["type"] == "0") {
        EXPECT_EQ(m["sha256"], Sha256OfFile(model / name)) << name;
      } else if (m["type"] == "2") {
        EXPECT_EQ(m["linkname"], fs::read_symlink(model / name).string());
      }
    }
    EXPECT_EQ(files, expected[i].files);
    // GNU tar: every layer unpacks into one tree.
    ASSERT_EQ(Sh(decompress + Quote(blob.string()) + " | tar -xf - -C " + Quote(x.string()), &out),
              0)
        << out;
  }
  // The union of the layers is the model (the empty directory aside).
  std::string out;
  EXPECT_EQ(
      Sh("diff -r --no-dereference -x empty_dir " + Quote(model.string()) + " " + Quote(x.string()),
         &out),
      0)
      << out;
  EXPECT_FALSE(fs::exists(x / "empty_dir"));
}

class ModelPackTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeMixedModel(model_); }
  TempDir tmp_;
  fs::path model_ = tmp_ / "model";
};

TEST_F(ModelPackTest, MixedModelLayersConfigAndSchema) {
  std::string out;
  ASSERT_EQ(Sh(Engine() + " build --type modelpack --name demo " + Quote(model_.string()) + " " +
                   Quote(Layout(tmp_ / "layout")) + " --metadata " +
                   Quote((tmp_ / "meta/publish-metadata.json").string()),
               &out),
            0)
      << out;
  EXPECT_NE(out.find("empty directory empty_dir is not packed"), std::string::npos) << out;
  Artifact a = CopyOut(Layout(tmp_ / "layout"), tmp_ / "copied");
  EXPECT_EQ(a.manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(a.manifest["artifactType"], "application/vnd.cncf.model.manifest.v1+json");
  EXPECT_EQ(a.manifest["config"]["mediaType"], "application/vnd.cncf.model.config.v1+json");
  EXPECT_EQ(a.manifest["annotations"]["org.opencontainers.image.title"], "demo");
  CheckLayers(a, model_, tmp_.path(), "");
  json index = json::parse(ReadFile(tmp_ / "layout/index.json"));
  EXPECT_EQ(index["manifests"][0]["artifactType"], "application/vnd.cncf.model.manifest.v1+json");

  const json& c = a.config;
  ExpectSchemaValid(c, tmp_.path());
  EXPECT_EQ(c["descriptor"]["name"], "demo");
  EXPECT_EQ(c["descriptor"]["createdAt"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(c["descriptor"]["family"], "llama");
  EXPECT_EQ(c["descriptor"]["licenses"], json::array({"Apache-2.0"}));
  EXPECT_FALSE(c["descriptor"].contains("revision"));  // a plain directory has none
  EXPECT_EQ(c["config"]["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(c["config"]["format"], "safetensors");
  // 1024*1024 + 512*1024 + 1024 + 64*64 elements, read from the headers.
  EXPECT_EQ(c["config"]["paramSize"], "1.6M");
  EXPECT_EQ(c["config"]["precision"], "bfloat16,float32");
  EXPECT_EQ(c["config"]["capabilities"]["languages"], json::array({"en", "fr"}));
  EXPECT_EQ(c["modelfs"]["type"], "layers");

  // The schema check can fail: an image config's field is refused.
  json bad = c;
  bad["rootfs"] = {{"type", "layers"}};
  fs::path bad_file = tmp_ / "bad.json";
  WriteFile(bad_file, bad.dump());
  EXPECT_EQ(
      Sh("/usr/bin/python3 " +
             Quote((SourceDir() / "tests/support/modelpack_validate.py").string()) + " " +
             Quote((SourceDir() / "tests/support/testdata/modelpack/config-schema.json").string()) +
             " " + Quote(bad_file.string()),
         &out),
      1)
      << out;

  json meta = json::parse(ReadFile(tmp_ / "meta/publish-metadata.json"));
  EXPECT_EQ(meta["image"]["type"], "modelpack");
  EXPECT_EQ(meta["image"]["compression"], "none");
  EXPECT_EQ(meta["image"]["layers"], Expected().size());

  // inspect shows what the artifact is and what the model says.
  ASSERT_EQ(Sh(Engine() + " inspect " + Quote(Layout(tmp_ / "layout")), &out, false), 0) << out;
  json summary = json::parse(out);
  EXPECT_EQ(summary["ArtifactType"], "application/vnd.cncf.model.manifest.v1+json");
  EXPECT_EQ(summary["Created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(summary["ModelPack"]["config"]["paramSize"], "1.6M");
  EXPECT_EQ(summary["LayersData"][0]["Annotations"]["org.cncf.model.filepath"],
            "model-00001-of-00002.safetensors");
  ASSERT_EQ(Sh(Engine() + " inspect -f '{{.ArtifactType}} {{.ModelPack.config.paramSize}}' " +
                   Quote(Layout(tmp_ / "layout")),
               &out, false),
            0)
      << out;
  EXPECT_EQ(out, "application/vnd.cncf.model.manifest.v1+json 1.6M\n");
}

TEST_F(ModelPackTest, DeterministicAcrossJobsRunsAndCompression) {
  std::string d1 = Build(model_, Layout(tmp_ / "a"), "--type modelpack --jobs 1 --no-cache");
  std::string d2 = Build(model_, Layout(tmp_ / "b"), "--type modelpack --jobs 4 --no-cache");
  std::string d3 = Build(model_, Layout(tmp_ / "c"), "--type modelpack --jobs 2");
  ASSERT_TRUE(d1.starts_with("sha256:")) << d1;
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(d1, d3);
  // gzip and zstd: +gzip/+zstd media types over the very same tars.
  Artifact plain = CopyOut(Layout(tmp_ / "a"), tmp_ / "plain");
  for (std::string codec : {"gzip", "zstd"}) {
    SCOPED_TRACE(codec);
    std::string g1 = Build(model_, Layout(tmp_ / (codec + "1")),
                           "--type modelpack --compression " + codec + " --jobs 1");
    std::string g2 = Build(model_, Layout(tmp_ / (codec + "2")),
                           "--type modelpack --compression " + codec + " --jobs 4 --no-cache");
    EXPECT_EQ(g1, g2);
    Artifact a = CopyOut(Layout(tmp_ / (codec + "1")), tmp_ / ("out-" + codec));
    EXPECT_EQ(a.config["modelfs"], plain.config["modelfs"]);
    CheckLayers(a, model_, tmp_.path(), "+" + codec);
  }
}

TEST_F(ModelPackTest, ModelcarCacheIsNotReusedAndFlagsAreChecked) {
  // Same model, same destination, same cache: the modelpack build must not
  // take the modelcar's layers (the cache key holds the type).
  std::string car = Build(model_, Layout(tmp_ / "l"), "--base scratch");
  std::string pack = Build(model_, Layout(tmp_ / "l"), "--type modelpack");
  EXPECT_NE(car, pack);
  Artifact a = CopyOut(Layout(tmp_ / "l"), tmp_ / "pack");
  EXPECT_EQ(a.manifest["artifactType"], "application/vnd.cncf.model.manifest.v1+json");
  EXPECT_EQ(a.manifest["layers"].size(), Expected().size());
  // And the other way round: the modelcar re-run is still the modelcar.
  EXPECT_EQ(Build(model_, Layout(tmp_ / "l"), "--base scratch"), car);
  // A modelpack re-run takes its own cached layers (annotations included)
  // without reading the model, and gives the same artifact.
  std::string log;
  ASSERT_EQ(Sh(Engine() + " build --type modelpack " + Quote(model_.string()) + " " +
                   Quote(Layout(tmp_ / "l")),
               &log),
            0)
      << log;
  EXPECT_NE(log.find("not re-reading the model"), std::string::npos) << log;
  EXPECT_NE(log.find(pack), std::string::npos) << log;

  std::string out;
  for (std::string flags : {"--type modelpack --base scratch", "--type modelpack --prefix /m",
                            "--type modelpack --layer-per-file", "--type bogus", "--name x",
                            "--type modelpack --label a=b"}) {
    EXPECT_EQ(Sh(Engine() + " build " + Quote(model_.string()) + " " +
                     Quote(Layout(tmp_ / "refused")) + " " + flags,
                 &out),
              2)
        << flags << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  }
  fs::path empty = tmp_ / "empty-model";
  fs::create_directories(empty / "sub");
  EXPECT_EQ(Sh(Engine() + " build --type modelpack " + Quote(empty.string()) + " " +
                   Quote(Layout(tmp_ / "e")),
               &out),
            2)
      << out;
}

TEST_F(ModelPackTest, PushMirrorAndLegacyMediaTypes) {
  RegistryFixture src, dst;
  ASSERT_TRUE(src.ok()) << src.error();
  ASSERT_TRUE(dst.ok()) << dst.error();
  std::string ref = src.host() + "/models/demo:v1";
  std::string out;
  ASSERT_EQ(Sh(Engine() + " build --type modelpack " + Quote(model_.string()) + " docker://" + ref +
                   " --metadata " + Quote((tmp_ / "meta.json").string()),
               &out, false),
            0)
      << out;
  std::string pushed = out.substr(0, 71);
  // The same inputs give the same bytes in a layout and in a registry.
  std::string layout_digest = Build(model_, Layout(tmp_ / "layout"), "--type modelpack");
  EXPECT_EQ(pushed, layout_digest);
  std::string raw_src, raw_layout;
  ASSERT_EQ(Sh("skopeo inspect --raw --tls-verify=false docker://" + ref, &raw_src, false), 0);
  ASSERT_EQ(Sh("skopeo inspect --raw " + Quote(Layout(tmp_ / "layout")), &raw_layout, false), 0);
  EXPECT_EQ(raw_src, raw_layout);
  EXPECT_EQ("sha256:" + oci::Digest::Of(raw_src).hex(), pushed);
  // register points at the pushed artifact by digest, as for a modelcar.
  auto uri = engine::RegistrationUriFromMetadata(json::parse(ReadFile(tmp_ / "meta.json")));
  ASSERT_TRUE(uri) << uri.error().message;
  EXPECT_EQ(*uri, "oci://" + src.host() + "/models/demo@" + pushed);

  // Mirrored registry to registry: byte-identical manifest, readable by skopeo.
  std::string mirror = dst.host() + "/mirror/demo:v1";
  ASSERT_EQ(Sh(Engine() + " copy docker://" + ref + " docker://" + mirror, &out), 0) << out;
  std::string raw_dst;
  ASSERT_EQ(Sh("skopeo inspect --raw --tls-verify=false docker://" + mirror, &raw_dst, false), 0);
  EXPECT_EQ(raw_dst, raw_src);
  Artifact a = CopyOut("docker://" + mirror, tmp_ / "mirrored", "--src-tls-verify=false");
  EXPECT_EQ(a.manifest_bytes, raw_src);
  CheckLayers(a, model_, tmp_.path(), "");
  ASSERT_EQ(Sh(Engine() + " inspect docker://" + mirror, &out, false), 0) << out;
  EXPECT_EQ(json::parse(out)["ArtifactType"], "application/vnd.cncf.model.manifest.v1+json");

  // An artifact with the media types used before 2025-06-30 (vnd.cnai.*):
  // inspect recognises it, copy mirrors it unchanged.
  std::string legacy = raw_src;
  for (size_t p; (p = legacy.find("vnd.cncf.model.")) != std::string::npos;)
    legacy.replace(p, 15, "vnd.cnai.model.");
  for (size_t p; (p = legacy.find("org.cncf.model.")) != std::string::npos;)
    legacy.replace(p, 15, "org.cnai.model.");
  fs::path legacy_dir = tmp_ / "legacy";
  fs::copy(tmp_ / "layout", legacy_dir, fs::copy_options::recursive);
  std::string legacy_hex = oci::Digest::Of(legacy).hex();
  WriteFile(legacy_dir / "blobs/sha256" / legacy_hex, legacy);
  WriteFile(legacy_dir / "index.json",
            json({{"schemaVersion", 2},
                  {"mediaType", "application/vnd.oci.image.index.v1+json"},
                  {"manifests",
                   {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"artifactType", "application/vnd.cnai.model.manifest.v1+json"},
                     {"digest", "sha256:" + legacy_hex},
                     {"size", legacy.size()},
                     {"annotations", {{"org.opencontainers.image.ref.name", "v1"}}}}}}})
                .dump());
  ASSERT_EQ(Sh(Engine() + " inspect " + Quote(Layout(legacy_dir)), &out, false), 0) << out;
  json summary = json::parse(out);
  EXPECT_EQ(summary["ArtifactType"], "application/vnd.cnai.model.manifest.v1+json");
  EXPECT_EQ(summary["ModelPack"]["descriptor"]["name"], "model");
  EXPECT_EQ(summary["LayersData"][0]["MIMEType"], "application/vnd.cnai.model.weight.v1.tar");
  ASSERT_EQ(Sh(Engine() + " copy " + Quote(Layout(legacy_dir)) + " docker://" + dst.host() +
                   "/legacy/demo:v1",
               &out),
            0)
      << out;
  ASSERT_EQ(Sh("skopeo inspect --raw --tls-verify=false docker://" + dst.host() + "/legacy/demo:v1",
               &raw_dst, false),
            0);
  EXPECT_EQ(raw_dst, legacy);
}

TEST(ModelPackHfTest, StreamedBuildEqualsDownloadThenBuild) {
  // The Hub serves plain files: no symlink, no empty directory.
  TempDir tmp;
  MakeMixedModel(tmp / "hub-model", /*links=*/false);
  HubServer hub(tmp / "hub-model");
  const std::string env = "SOURCE_DATE_EPOCH=1700000000";
  std::string out;
  ASSERT_EQ(
      hub.Engine("build --type modelpack hf://org/model " + Quote(Layout(tmp / "a")), &out, env), 0)
      << out;
  ASSERT_EQ(hub.Engine("download hf://org/model " + Quote((tmp / "dir").string()), &out), 0) << out;
  ASSERT_EQ(hub.Engine("build --type modelpack " + Quote((tmp / "dir").string()) + " " +
                           Quote(Layout(tmp / "b")),
                       &out, env),
            0)
      << out;
  Artifact a = CopyOut(Layout(tmp / "a"), tmp / "out-a");
  Artifact b = CopyOut(Layout(tmp / "b"), tmp / "out-b");
  EXPECT_EQ(a.manifest_bytes, b.manifest_bytes);
  EXPECT_EQ(a.config, b.config);
  ExpectSchemaValid(a.config, tmp.path());
  // The config's facts came through ranged reads of the Hub's files.
  EXPECT_EQ(a.config["descriptor"]["name"], "model");
  EXPECT_EQ(a.config["descriptor"]["revision"], hub.Commit());
  EXPECT_FALSE(a.config["descriptor"].contains("version"));
  EXPECT_EQ(a.config["descriptor"]["family"], "llama");
  EXPECT_EQ(a.config["config"]["paramSize"], "1.6M");
  EXPECT_EQ(a.config["config"]["precision"], "bfloat16,float32");
  EXPECT_EQ(a.manifest["annotations"]["org.opencontainers.image.source"], "hf://org/model");
  ASSERT_EQ(a.manifest["layers"].size(), 8u);  // Expected() less the symlink's place
  EXPECT_EQ(a.manifest["layers"][0]["annotations"]["org.cncf.model.filepath"],
            "model-00001-of-00002.safetensors");
  EXPECT_EQ(a.manifest["layers"][3]["mediaType"],
            "application/vnd.cncf.model.weight.config.v1.tar");

  // A revision asked for by name is the descriptor's version.
  ASSERT_EQ(hub.Engine("build --type modelpack hf://org/model@main " + Quote(Layout(tmp / "c")),
                       &out, env),
            0)
      << out;
  Artifact c = CopyOut(Layout(tmp / "c"), tmp / "out-c");
  EXPECT_EQ(c.config["descriptor"]["version"], "main");
  EXPECT_EQ(c.config["descriptor"]["revision"], hub.Commit());
}

}  // namespace
}  // namespace mc::testing
