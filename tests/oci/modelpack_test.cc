// The pure parts of ModelPack artifacts: classification, layer planning,
// media types, annotations and the config fields derived from headers.
#include "oci/modelpack.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mc::oci::modelpack {
namespace {

using nlohmann::json;

TEST(ModelPackClassify, ByName) {
  struct Case {
    const char* path;
    uint64_t size;
    Kind kind;
    bool untested;
  } cases[] = {
      {"model-00001-of-00002.safetensors", 5, Kind::kWeight, false},
      {"pytorch_model.bin", 5, Kind::kWeight, false},
      {"sub/model.GGUF", 5, Kind::kWeight, false},
      {"model.onnx", 5, Kind::kWeight, false},
      {"model.onnx_data", 5, Kind::kWeight, false},
      {"variables/variables.data-00000-of-00001", 5, Kind::kWeight, false},
      {"variables/variables.index", 5, Kind::kWeight, false},
      {"config.json", 5, Kind::kWeightConfig, false},
      {"generation_config.json", 5, Kind::kWeightConfig, false},
      {"model.safetensors.index.json", 5, Kind::kWeightConfig, false},
      {"tokenizer.json", 5, Kind::kWeightConfig, false},
      {"tokenizer.model", 5, Kind::kWeightConfig, false},
      {"spiece.model", 5, Kind::kWeightConfig, false},
      {"vocab.txt", 5, Kind::kWeightConfig, false},
      {"merges.txt", 5, Kind::kWeightConfig, false},
      {"chat_template.jinja", 5, Kind::kWeightConfig, false},
      {"README.md", 5, Kind::kDoc, false},
      {"LICENSE", 5, Kind::kDoc, false},
      {"USE_POLICY.md", 5, Kind::kDoc, false},
      {"notes.txt", 5, Kind::kDoc, false},
      {"figure.png", 5, Kind::kDoc, false},
      {"modeling_llama.py", 5, Kind::kCode, false},
      {"requirements.txt", 5, Kind::kCode, false},
      {"scripts/run.sh", 5, Kind::kCode, false},
      {"data/train.parquet", 5, Kind::kDataset, false},
      {"eval.jsonl", 5, Kind::kDataset, false},
      {"eval.csv", 5, Kind::kDataset, false},
      {".gitattributes", 5, Kind::kDoc, true},
      {"blob.xyz", 5, Kind::kDoc, true},
      {"blob.xyz", kUnknownWeightThreshold, Kind::kWeight, true},
  };
  for (const auto& c : cases) {
    Classification got = Classify(c.path, c.size);
    EXPECT_EQ(got.kind, c.kind) << c.path;
    EXPECT_EQ(got.untested, c.untested) << c.path;
  }
}

TEST(ModelPackMediaTypes, Names) {
  EXPECT_EQ(LayerMediaType(Kind::kWeight, Compression::kNone),
            "application/vnd.cncf.model.weight.v1.tar");
  EXPECT_EQ(LayerMediaType(Kind::kWeightConfig, Compression::kGzip),
            "application/vnd.cncf.model.weight.config.v1.tar+gzip");
  EXPECT_EQ(LayerMediaType(Kind::kDataset, Compression::kZstd),
            "application/vnd.cncf.model.dataset.v1.tar+zstd");
}

TEST(ModelPackParamSize, Format) {
  EXPECT_EQ(FormatParamSize(6738415616), "6.7B");
  EXPECT_EQ(FormatParamSize(124439808), "124.4M");
  EXPECT_EQ(FormatParamSize(8000000000), "8B");
  EXPECT_EQ(FormatParamSize(1500), "1.5K");
  EXPECT_EQ(FormatParamSize(500), "0.5K");
  EXPECT_EQ(FormatParamSize(999960), "1M");  // not "1000K"
  EXPECT_EQ(FormatParamSize(1000000000000), "1T");
  EXPECT_EQ(FormatParamSize(2500000000000000), "2.5Q");
  EXPECT_EQ(FormatParamSize(0), "");
}

TEST(ModelPackPrecision, Dtypes) {
  EXPECT_EQ(PrecisionOfDtype("BF16"), "bfloat16");
  EXPECT_EQ(PrecisionOfDtype("F8_E4M3"), "float8_e4m3");
  EXPECT_EQ(PrecisionOfDtype("I32"), "int32");
  EXPECT_FALSE(PrecisionOfDtype("F8_E8M0"));
  EXPECT_EQ(PrecisionOfTorchDtype("bfloat16"), "bfloat16");
  EXPECT_EQ(PrecisionOfTorchDtype("torch.float16"), "float16");
  EXPECT_FALSE(PrecisionOfTorchDtype("auto"));
}

TEST(ModelPackSafetensors, Counts) {
  auto counts =
      SafetensorsDtypeCounts(R"({"__metadata__":{"format":"pt"},)"
                             R"("a":{"dtype":"BF16","shape":[4,8],"data_offsets":[0,64]},)"
                             R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[64,70]},)"
                             R"("c":{"dtype":"F32","shape":[],"data_offsets":[70,74]}})");
  ASSERT_TRUE(counts) << counts.error().message;
  EXPECT_EQ((*counts)["BF16"], 35u);
  EXPECT_EQ((*counts)["F32"], 1u);  // a scalar is one element
  EXPECT_FALSE(SafetensorsDtypeCounts("not json"));
  EXPECT_FALSE(SafetensorsDtypeCounts(R"({"a":{"shape":[1]}})"));
  EXPECT_FALSE(SafetensorsDtypeCounts(R"({"a":{"dtype":"F16","shape":[-1]}})"));
}

TEST(ModelPackCard, FrontMatter) {
  CardInfo c = ParseModelCard(
      "---\nlicense: apache-2.0\nlanguage:\n- en\n- fr\n- eng\nauthors: [\"A B\", 'C']\n"
      "tags:\n- x\n---\n# Title\nlicense: mit\n");
  EXPECT_EQ(c.licenses, std::vector<std::string>({"Apache-2.0"}));
  EXPECT_EQ(c.languages, std::vector<std::string>({"en", "fr"}));
  EXPECT_EQ(c.authors, std::vector<std::string>({"A B", "C"}));
  CardInfo other = ParseModelCard("---\nlicense: other\nlicense_name: llama3\n---\n");
  EXPECT_EQ(other.licenses, std::vector<std::string>({"LicenseRef-llama3"}));
  EXPECT_TRUE(ParseModelCard("# no front matter\nlicense: mit\n").licenses.empty());
  EXPECT_TRUE(ParseModelCard("---\nlicense: other\n---\n").licenses.empty());
  EXPECT_EQ(SpdxLicense("MIT"), "MIT");
  EXPECT_EQ(SpdxLicense("cc-by-nc-4.0"), "CC-BY-NC-4.0");
  EXPECT_EQ(SpdxLicense("llama3.1"), "LicenseRef-llama3.1");
  EXPECT_FALSE(SpdxLicense("unknown"));
}

TarEntry File(const std::string& name, uint64_t size) {
  TarEntry e;
  e.name = name;
  e.size = size;
  e.source = "/nonexistent/" + name;
  return e;
}
TarEntry Dir(const std::string& name) {
  TarEntry e;
  e.type = TarEntry::Type::kDirectory;
  e.name = name;
  e.mode = 0755;
  return e;
}

std::vector<std::string> Names(const PlannedLayer& l) {
  std::vector<std::string> out;
  for (const auto& e : l.entries) out.push_back(e.name);
  return out;
}

TEST(ModelPackPlan, OneLayerPerWeightSmallFilesGroupedByKind) {
  TarEntry link;
  link.type = TarEntry::Type::kSymlink;
  link.name = "cfg-link.json";
  link.link_target = "config.json";
  TarEntry hard = File("sub/copy.safetensors", 100);
  hard.type = TarEntry::Type::kHardlink;
  hard.link_target = "sub/a.safetensors";
  std::vector<TarEntry> entries = {File("README.md", 10),
                                   link,
                                   File("big.csv", 20 << 20),
                                   File("config.json", 10),
                                   Dir("empty"),
                                   File("run.py", 10),
                                   Dir("sub"),
                                   File("sub/a.safetensors", 100),
                                   hard,
                                   File("sub/b.bin", 1),
                                   File("tokenizer.json", 10)};
  SortTarEntries(entries);
  auto plan = PlanLayers(entries);
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->layers.size(), 6u);
  const auto& l = plan->layers;
  // Weights, each alone (the hard link with its target), parents repeated.
  EXPECT_EQ(l[0].kind, Kind::kWeight);
  EXPECT_EQ(Names(l[0]),
            std::vector<std::string>({"sub", "sub/a.safetensors", "sub/copy.safetensors"}));
  EXPECT_EQ(l[0].filepath, "sub");  // two names: the directory holding them
  EXPECT_EQ(l[1].kind, Kind::kWeight);
  EXPECT_EQ(Names(l[1]), std::vector<std::string>({"sub", "sub/b.bin"}));
  EXPECT_EQ(l[1].filepath, "sub/b.bin");
  EXPECT_EQ(l[1].described.name, "sub/b.bin");
  // Small configs share one layer, with the symlink.
  EXPECT_EQ(l[2].kind, Kind::kWeightConfig);
  EXPECT_EQ(Names(l[2]),
            std::vector<std::string>({"cfg-link.json", "config.json", "tokenizer.json"}));
  EXPECT_EQ(l[2].filepath, ".");
  EXPECT_EQ(l[2].described.type, TarEntry::Type::kDirectory);
  EXPECT_EQ(l[3].kind, Kind::kDoc);
  EXPECT_EQ(l[3].filepath, "README.md");
  EXPECT_EQ(l[4].kind, Kind::kCode);
  EXPECT_EQ(l[4].filepath, "run.py");
  // A large non-weight file gets a layer of its own.
  EXPECT_EQ(l[5].kind, Kind::kDataset);
  EXPECT_EQ(l[5].filepath, "big.csv");
  EXPECT_EQ(plan->skipped_empty_dirs, std::vector<std::string>({"empty"}));
}

TEST(ModelPackPlan, UntestedApartAndNoFilesRefused) {
  std::vector<TarEntry> entries = {File("a.xyz", 1), File("b.md", 1), File("c.xyz", 1)};
  auto plan = PlanLayers(entries);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->layers.size(), 2u);
  EXPECT_FALSE(plan->layers[0].untested);
  EXPECT_EQ(Names(plan->layers[0]), std::vector<std::string>({"b.md"}));
  EXPECT_TRUE(plan->layers[1].untested);
  EXPECT_EQ(Names(plan->layers[1]), std::vector<std::string>({"a.xyz", "c.xyz"}));

  auto none = PlanLayers({Dir("only-a-dir")});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kInvalidInput);
}

TEST(ModelPackAnnotations, FileMetadata) {
  TarEntry f = File("sub/model.safetensors", 1234);
  json j = json::parse(FileMetadataJson(f, 1700000000));
  EXPECT_EQ(j, json::parse(R"({"name":"model.safetensors","mode":420,"uid":0,"gid":0,)"
                           R"("size":1234,"mtime":"2023-11-14T22:13:20Z","typeflag":48})"));
  json d = json::parse(FileMetadataJson(Dir("sub"), 0));
  EXPECT_EQ(d["typeflag"], 53);
  EXPECT_EQ(d["mode"], 493);
  EXPECT_EQ(d["size"], 0);
  EXPECT_EQ(d["mtime"], "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace mc::oci::modelpack
