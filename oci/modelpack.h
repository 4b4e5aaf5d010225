// CNCF ModelPack artifacts (modelpack/model-spec: docs/spec.md, docs/config.md,
// docs/annotations.md): which layer a model file belongs in, the layer media
// types and annotations, and the pure parts of the model config (parameter
// size, precision, safetensors headers, model card front matter).
//
// Everything here is a pure function of its arguments (no I/O, no threads);
// engine/modelpack.cc reads the files and assembles the artifact.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/compress.h"
#include "oci/error.h"
#include "oci/tar.h"

namespace mc::oci::modelpack {

// The layer kinds of spec.md "layers": weights, weight configs (config.json,
// tokenizer files), docs, code, datasets. The order is the layer order of an
// artifact (weights first, as the spec's example).
enum class Kind { kWeight, kWeightConfig, kDoc, kCode, kDataset };

// "weight", "weight.config", "doc", "code", "dataset".
std::string_view KindName(Kind kind);

// "application/vnd.cncf.model.<kind>.v1.tar[+gzip|+zstd]".
std::string LayerMediaType(Kind kind, Compression compression);

// Files over this size whose name says nothing are taken for weights (a large
// unknown file in a model repository is almost always one).
inline constexpr uint64_t kUnknownWeightThreshold = 128ull << 20;

struct Classification {
  Kind kind = Kind::kDoc;
  // The name matched none of our patterns: the kind is a guess (by size), and
  // the layer says so with org.cncf.model.file.mediatype.untested=true.
  bool untested = false;
};

// Classifies a model file by its path relative to the model root ("a/b.py")
// and its size. Case-insensitive on the name.
Classification Classify(std::string_view path, uint64_t size);

// Layer annotation keys (annotations.md).
inline constexpr std::string_view kAnnotationFilepath = "org.cncf.model.filepath";
inline constexpr std::string_view kAnnotationFileMetadata = "org.cncf.model.file.metadata+json";
inline constexpr std::string_view kAnnotationUntested = "org.cncf.model.file.mediatype.untested";

// One layer of an artifact: what it holds and how it is annotated.
struct PlannedLayer {
  Kind kind = Kind::kWeight;
  bool untested = false;
  std::vector<TarEntry> entries;  // sorted, parents before children
  // org.cncf.model.filepath: the file's path for a one-file layer; for a
  // layer of grouped small files, the deepest directory holding them all
  // ("." for the model root), as KitOps and modctl annotate directory layers.
  std::string filepath;
  // The tar entry `filepath` names (the file, or the directory), for
  // org.cncf.model.file.metadata+json.
  TarEntry described;
};

struct Plan {
  std::vector<PlannedLayer> layers;
  std::vector<std::string> skipped_empty_dirs;  // empty directories are not packed
};

// Splits a model's entries (names relative to the model root, sorted by
// TarNameLess, as ScanDirectory gives them with the prefix stripped) into
// ModelPack layers:
//  - every weight file gets a layer of its own, whatever its size (spec.md:
//    "If the model has multiple weight files, they SHOULD be packaged into
//    separate layers"), so runtimes and P2P fetchers can take files apart;
//  - other files of at least `small_file_limit` bytes get one too;
//  - smaller files of one kind (and one untested flag) share a layer;
//  - a symlink goes to the shared layer of the kind its name has, a hard link
//    to the layer of its target (or, target missing, as a file of its own kind);
//  - each layer repeats the directories above what it holds, so it unpacks on
//    its own in any order; empty directories hold no file and are skipped.
// Layers come in Kind order, then in path order of their first file.
// kInvalidInput when there is no regular file.
Result<Plan> PlanLayers(const std::vector<TarEntry>& entries,
                        uint64_t small_file_limit = 16ull << 20);

// The org.cncf.model.file.metadata+json value of a tar entry: the FileMetadata
// of annotations.md (name = the base name, mode = the permission bits stored
// in the tar, uid/gid 0, size, mtime RFC 3339, typeflag '0' or '5' as a
// number), as canonical JSON.
std::string FileMetadataJson(const TarEntry& entry, int64_t mtime);

// config.paramSize: "<count><scale>" with at most one decimal and a scale of
// K, M, B, T or Q (config.md), e.g. 6738415616 → "6.7B", 124439808 → "124.4M",
// 1500 → "1.5K". Counts under 1000 are written as K ("0.5K"); 0 gives "".
std::string FormatParamSize(uint64_t parameters);

// A safetensors dtype ("BF16", "F8_E4M3") as config.precision names it
// ("bfloat16", "float8_e4m3"); nullopt for dtypes the spec does not name.
std::optional<std::string> PrecisionOfDtype(std::string_view dtype);

// A torch dtype as config.json writes it ("bfloat16", "float16",
// "torch.float32") as config.precision names it; nullopt otherwise.
std::optional<std::string> PrecisionOfTorchDtype(std::string_view dtype);

// Element counts per dtype of one safetensors header (the JSON after the
// 8-byte length). kInvalidInput when it is not a safetensors header.
Result<std::map<std::string, uint64_t>> SafetensorsDtypeCounts(std::string_view header_json);

// config.format of a weight file name ("safetensors", "gguf", "onnx", "pt",
// "keras", "tflite"); "" when the name does not say.
std::string WeightFormat(std::string_view path);

// What a Hugging Face model card's YAML front matter says that the config can
// carry. Read with a small line parser (top-level `key: value`, `key: [a, b]`
// and `key:` followed by `- item` lines), enough for HF cards; anything else
// is ignored.
struct CardInfo {
  std::vector<std::string> licenses;  // SPDX expressions (see SpdxLicense)
  std::vector<std::string> authors;
  std::vector<std::string> languages;  // two-letter ISO 639-1 codes only
};
CardInfo ParseModelCard(std::string_view readme);

// An HF license id ("apache-2.0", "mit", "llama3") as an SPDX expression:
// the SPDX id for those that are one ("Apache-2.0", "MIT"), else
// "LicenseRef-<id>"; nullopt for "other" and "unknown" (say nothing).
std::optional<std::string> SpdxLicense(std::string_view hf_license);

}  // namespace mc::oci::modelpack
