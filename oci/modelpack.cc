// ModelPack layer planning and the pure parts of the model config.
//
// Classification. The spec types layers by what they hold but leaves the
// choice to the packager. We decide by the file name alone (reading content
// would cost a pass), with the conventions of Hugging Face repositories and
// of the other ModelPack packagers (modctl's and KitOps' defaults): known
// weight extensions, the transformers/tokenizers configuration files, docs
// and code by extension, datasets by their columnar formats. A name we do not
// know is a weight when it is large and a doc otherwise, and its layer carries
// org.cncf.model.file.mediatype.untested=true (annotations.md) so that a
// consumer knows the type is a guess. Nothing is left out: every file of the
// model lands in some layer, as in a modelcar.
//
// Layers. One per weight file (spec.md asks for it, and it is what lets a
// runtime or a P2P fetcher take weights apart); small files of one kind share
// a layer, as dozens of one-KiB layers would cost a registry round trip each.
// Every layer repeats its parent directories with the same metadata, so
// unpacking the layers in any order, or only some of them, gives the same tree.
#include "oci/modelpack.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "oci/image.h"

namespace mc::oci::modelpack {
namespace {

using nlohmann::json;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The extension after the last dot of a base name ("" when none or hidden only).
std::string_view Extension(std::string_view base) {
  size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  return base.substr(dot + 1);
}

template <size_t N>
bool OneOf(std::string_view s, const std::array<std::string_view, N>& set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

constexpr std::array<std::string_view, 34> kWeightExtensions = {
    "safetensors", "bin",       "pt",     "pth",        "ckpt",   "gguf",    "ggml",
    "onnx",        "onnx_data", "h5",     "hdf5",       "keras",  "tflite",  "pb",
    "msgpack",     "pkl",       "pickle", "joblib",     "npy",    "npz",     "ot",
    "engine",      "trt",       "plan",   "mlmodel",    "tensor", "weights", "llamafile",
    "nemo",        "pte",       "pt2",    "caffemodel", "mar",    "model"};

constexpr std::array<std::string_view, 9> kConfigExtensions = {
    "json", "json5", "jsonc", "yaml", "yml", "toml", "jinja", "tiktoken", "cfg"};

constexpr std::array<std::string_view, 31> kCodeExtensions = {
    "py", "ipynb", "sh",    "bash",  "js",  "mjs", "ts",    "c",     "cc", "cpp", "cxx",
    "h",  "hh",    "hpp",   "cu",    "cuh", "go",  "rs",    "java",  "r",  "jl",  "lua",
    "pl", "rb",    "swift", "scala", "kt",  "so",  "cmake", "patch", "sql"};

constexpr std::array<std::string_view, 16> kDocExtensions = {
    "md",  "markdown", "rst", "txt", "pdf",  "html", "htm", "png",
    "jpg", "jpeg",     "gif", "svg", "webp", "bmp",  "mp4", "cff"};

constexpr std::array<std::string_view, 6> kDatasetExtensions = {"parquet", "arrow", "csv",
                                                                "tsv",     "jsonl", "feather"};

// Base names (lower case) that are weight configs whatever their extension
// says: tokenizer vocabularies and SentencePiece models.
bool IsTokenizerFile(std::string_view base) {
  if (base == "vocab.txt" || base == "merges.txt" || base == "vocab.json") return true;
  if (base.ends_with(".model") && (base.find("tokenizer") != std::string_view::npos ||
                                   base.find("spiece") != std::string_view::npos ||
                                   base.find("sentencepiece") != std::string_view::npos)) {
    return true;
  }
  return false;
}

bool IsCodeFile(std::string_view base, std::string_view ext) {
  if (OneOf(ext, kCodeExtensions)) return true;
  if (base.starts_with("requirements") && ext == "txt") return true;
  return base == "makefile" || base == "dockerfile" || base == "cmakelists.txt" ||
         base == "package.json" || base == "pyproject.toml" || base == "setup.cfg";
}

bool IsDocFile(std::string_view base, std::string_view ext) {
  for (std::string_view p : {"readme", "license", "licence", "notice", "copying", "use_policy",
                             "citation", "model_card", "modelcard", "authors", "changelog"}) {
    if (base.starts_with(p)) return true;
  }
  return OneOf(ext, kDocExtensions);
}

// TensorFlow checkpoints: "model.ckpt.index", "variables.data-00000-of-00001".
bool IsCheckpointPart(std::string_view ext) { return ext == "index" || ext.starts_with("data-"); }

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kWeight:
      return "weight";
    case Kind::kWeightConfig:
      return "weight.config";
    case Kind::kDoc:
      return "doc";
    case Kind::kCode:
      return "code";
    case Kind::kDataset:
      return "dataset";
  }
  return "doc";
}

std::string LayerMediaType(Kind kind, Compression compression) {
  std::string mt = "application/vnd.cncf.model." + std::string(KindName(kind)) + ".v1.tar";
  if (compression == Compression::kGzip) mt += "+gzip";
  if (compression == Compression::kZstd) mt += "+zstd";
  return mt;
}

Classification Classify(std::string_view path, uint64_t size) {
  const std::string base = Lower(BaseName(path));
  const std::string ext(Extension(base));
  // Order matters where patterns overlap: tokenizer.model before *.model,
  // requirements.txt (code) before *.txt (doc), *.jsonl (dataset) apart from
  // *.json (config), "model.safetensors.index.json" is a config (a JSON map).
  if (IsTokenizerFile(base)) return {Kind::kWeightConfig, false};
  if (OneOf(std::string_view(ext), kDatasetExtensions)) return {Kind::kDataset, false};
  if (IsCodeFile(base, ext)) return {Kind::kCode, false};
  if (OneOf(std::string_view(ext), kConfigExtensions)) return {Kind::kWeightConfig, false};
  if (OneOf(std::string_view(ext), kWeightExtensions) || IsCheckpointPart(ext))
    return {Kind::kWeight, false};
  if (IsDocFile(base, ext)) return {Kind::kDoc, false};
  if (size >= kUnknownWeightThreshold) return {Kind::kWeight, true};
  return {Kind::kDoc, true};
}

namespace {

// One layer under construction: entries plus the parent directories they need.
struct Builder {
  PlannedLayer layer;
  std::set<std::string> names;
  std::vector<std::string> files;  // regular files and links, for the filepath

  void AddParents(const std::string& name, const std::map<std::string, const TarEntry*>& dirs) {
    for (size_t slash = name.find('/'); slash != std::string::npos;
         slash = name.find('/', slash + 1)) {
      std::string dir = name.substr(0, slash);
      if (!names.insert(dir).second) continue;
      auto it = dirs.find(dir);
      TarEntry d;
      if (it != dirs.end()) {
        d = *it->second;
      } else {
        d.type = TarEntry::Type::kDirectory;
        d.mode = 0755;
        d.name = dir;
      }
      layer.entries.push_back(std::move(d));
    }
  }
  void Add(const TarEntry& e, const std::map<std::string, const TarEntry*>& dirs) {
    AddParents(e.name, dirs);
    if (names.insert(e.name).second) {
      layer.entries.push_back(e);
      files.push_back(e.name);
    }
  }
};

// The deepest directory holding every name ("." for the root).
std::string CommonDirectory(const std::vector<std::string>& names) {
  std::string common;
  bool first = true;
  for (const auto& n : names) {
    size_t slash = n.rfind('/');
    std::string dir = slash == std::string::npos ? std::string() : n.substr(0, slash);
    if (first) {
      common = dir;
      first = false;
      continue;
    }
    while (!common.empty() && !(dir == common || dir.starts_with(common + "/"))) {
      size_t up = common.rfind('/');
      common = up == std::string::npos ? std::string() : common.substr(0, up);
    }
  }
  return common.empty() ? "." : common;
}

TarEntry DirectoryEntry(const std::string& name,
                        const std::map<std::string, const TarEntry*>& dirs) {
  if (auto it = dirs.find(name); it != dirs.end()) return *it->second;
  TarEntry d;
  d.type = TarEntry::Type::kDirectory;
  d.mode = 0755;
  d.name = name;
  return d;
}

bool HasChild(const std::vector<TarEntry>& entries, const std::string& dir) {
  const std::string p = dir + "/";
  return std::any_of(entries.begin(), entries.end(), [&](const TarEntry& e) {
    return e.type != TarEntry::Type::kDirectory && e.name.starts_with(p);
  });
}

}  // namespace

Result<Plan> PlanLayers(const std::vector<TarEntry>& entries, uint64_t small_file_limit) {
  std::map<std::string, const TarEntry*> dirs;
  for (const TarEntry& e : entries) {
    if (e.type == TarEntry::Type::kDirectory) dirs.emplace(e.name, &e);
  }
  Plan plan;
  std::vector<Builder> own;                                // one-file layers
  std::map<std::pair<Kind, bool>, Builder> shared;         // grouped small files
  std::map<std::string, std::pair<bool, size_t>> file_at;  // file → (own?, index) / shared key
  std::map<std::string, std::pair<Kind, bool>> shared_key;
  auto add_shared = [&](Classification c, const TarEntry& e) {
    Builder& b = shared[{c.kind, c.untested}];
    b.layer.kind = c.kind;
    b.layer.untested = c.untested;
    b.Add(e, dirs);
    shared_key[e.name] = {c.kind, c.untested};
  };
  for (const TarEntry& e : entries) {
    switch (e.type) {
      case TarEntry::Type::kDirectory:
        if (!HasChild(entries, e.name)) plan.skipped_empty_dirs.push_back(e.name);
        break;
      case TarEntry::Type::kFile: {
        Classification c = Classify(e.name, e.size);
        if (c.kind == Kind::kWeight || e.size >= small_file_limit) {
          Builder b;
          b.layer.kind = c.kind;
          b.layer.untested = c.untested;
          b.Add(e, dirs);
          file_at[e.name] = {true, own.size()};
          own.push_back(std::move(b));
        } else {
          add_shared(c, e);
          file_at[e.name] = {false, 0};
        }
        break;
      }
      case TarEntry::Type::kSymlink:
        add_shared(Classify(e.name, 0), e);
        break;
      case TarEntry::Type::kHardlink:
        break;  // below, once every target is placed
    }
  }
  for (const TarEntry& e : entries) {
    if (e.type != TarEntry::Type::kHardlink) continue;
    auto it = file_at.find(e.link_target);
    if (it == file_at.end()) {
      TarEntry f = e;  // its target is not in the list: store the content
      f.type = TarEntry::Type::kFile;
      f.link_target.clear();
      add_shared(Classify(f.name, f.size), f);
    } else if (it->second.first) {
      own[it->second.second].Add(e, dirs);
    } else {
      shared[shared_key[e.link_target]].Add(e, dirs);
    }
  }
  if (own.empty() && shared.empty()) {
    return Fail(ErrorCode::kInvalidInput,
                "the model has no files: a ModelPack artifact needs at least one layer");
  }
  std::vector<Builder> all = std::move(own);
  for (auto& [key, b] : shared) all.push_back(std::move(b));
  for (Builder& b : all) {
    SortTarEntries(b.layer.entries);
    if (b.files.size() == 1) {
      b.layer.filepath = b.files.front();
      for (const auto& e : b.layer.entries) {
        if (e.name == b.layer.filepath) b.layer.described = e;
      }
    } else {
      b.layer.filepath = CommonDirectory(b.files);
      b.layer.described = DirectoryEntry(b.layer.filepath, dirs);
    }
  }
  // Kind order, then path order of the first file (files[0] is the first
  // added, and entries arrive in path order).
  std::stable_sort(all.begin(), all.end(), [](const Builder& a, const Builder& b) {
    if (a.layer.kind != b.layer.kind) return a.layer.kind < b.layer.kind;
    if (a.layer.untested != b.layer.untested) return !a.layer.untested;
    return TarNameLess(a.files.front(), b.files.front());
  });
  for (Builder& b : all) plan.layers.push_back(std::move(b.layer));
  return plan;
}

std::string FileMetadataJson(const TarEntry& entry, int64_t mtime) {
  std::string name(BaseName(entry.name));
  if (name.empty()) name = ".";
  bool dir = entry.type == TarEntry::Type::kDirectory;
  char typeflag = dir ? '5' : entry.type == TarEntry::Type::kSymlink ? '2' : '0';
  json j = {{"name", name},
            {"mode", entry.mode},
            {"uid", 0},
            {"gid", 0},
            {"size", entry.type == TarEntry::Type::kFile ? entry.size : 0},
            {"mtime", Rfc3339(mtime)},
            {"typeflag", static_cast<int>(typeflag)}};
  return CanonicalJson(j);
}

std::string FormatParamSize(uint64_t n) {
  if (n == 0) return "";
  static constexpr std::array<std::pair<double, char>, 5> kScales = {
      {{1e15, 'Q'}, {1e12, 'T'}, {1e9, 'B'}, {1e6, 'M'}, {1e3, 'K'}}};
  double v = static_cast<double>(n);
  for (size_t i = 0; i < kScales.size(); ++i) {
    auto [scale, letter] = kScales[i];
    double count = std::round(v / scale * 10) / 10;
    // 999,960 rounds to 1000.0K: say 1M instead.
    if (i > 0 && count >= 1000) {
      auto [up_scale, up_letter] = kScales[i - 1];
      count = std::round(v / up_scale * 10) / 10;
      scale = up_scale;
      letter = up_letter;
    }
    if (v >= scale || i + 1 == kScales.size()) {
      char buf[32];
      if (count == std::floor(count)) {
        std::snprintf(buf, sizeof buf, "%.0f%c", count, letter);
      } else {
        std::snprintf(buf, sizeof buf, "%.1f%c", count, letter);
      }
      return buf;
    }
  }
  return "";
}

std::optional<std::string> PrecisionOfDtype(std::string_view dtype) {
  static const std::map<std::string, std::string, std::less<>> kMap = {
      {"F64", "float64"},         {"F32", "float32"},
      {"F16", "float16"},         {"BF16", "bfloat16"},
      {"F8_E4M3", "float8_e4m3"}, {"F8_E5M2", "float8_e5m2"},
      {"I64", "int64"},           {"I32", "int32"},
      {"I16", "int16"},           {"I8", "int8"},
      {"U64", "uint64"},          {"U32", "uint32"},
      {"U16", "uint16"},          {"U8", "uint8"},
      {"BOOL", "bool"},           {"C64", "complex64"}};
  auto it = kMap.find(dtype);
  if (it == kMap.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> PrecisionOfTorchDtype(std::string_view dtype) {
  if (dtype.starts_with("torch.")) dtype.remove_prefix(6);
  static const std::set<std::string, std::less<>> kNames = {
      "float32", "float64", "float16",   "bfloat16",   "float8_e4m3", "float8_e5m2",
      "int8",    "int16",   "int32",     "int64",      "uint8",       "uint16",
      "uint32",  "uint64",  "complex64", "complex128", "bool"};
  if (kNames.contains(dtype)) return std::string(dtype);
  if (dtype == "float8_e4m3fn") return "float8_e4m3";  // torch's name of the OCP format
  return std::nullopt;
}

Result<std::map<std::string, uint64_t>> SafetensorsDtypeCounts(std::string_view header_json) {
  json h = json::parse(header_json, nullptr, false);
  if (!h.is_object())
    return Fail(ErrorCode::kInvalidInput, "safetensors header is not a JSON object");
  std::map<std::string, uint64_t> counts;
  for (const auto& [name, t] : h.items()) {
    if (name == "__metadata__") continue;
    auto dtype = t.is_object() ? t.find("dtype") : t.end();
    auto shape = t.is_object() ? t.find("shape") : t.end();
    if (!t.is_object() || dtype == t.end() || !dtype->is_string() || shape == t.end() ||
        !shape->is_array()) {
      return Fail(ErrorCode::kInvalidInput,
                  "safetensors header: tensor \"" + name + "\" has no dtype and shape");
    }
    uint64_t n = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_unsigned())
        return Fail(ErrorCode::kInvalidInput,
                    "safetensors header: tensor \"" + name + "\" has a bad shape");
      n *= d.get<uint64_t>();
    }
    counts[dtype->get<std::string>()] += n;
  }
  return counts;
}

std::string WeightFormat(std::string_view path) {
  const std::string base = Lower(BaseName(path));
  const std::string ext(Extension(base));
  if (ext == "safetensors" || ext == "gguf" || ext == "onnx" || ext == "tflite" || ext == "keras")
    return ext;
  if (ext == "onnx_data") return "onnx";
  if (ext == "pt" || ext == "pth") return "pt";
  // transformers' PyTorch checkpoints; other *.bin files may be anything.
  if (ext == "bin" && base.starts_with("pytorch_model")) return "pt";
  return "";
}

namespace {

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

std::string Unquote(std::string s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
    return s.substr(1, s.size() - 2);
  return s;
}

// "[a, b]" → {a, b}; "a" → {a}.
std::vector<std::string> InlineList(const std::string& value) {
  std::vector<std::string> out;
  if (value.size() >= 2 && value.front() == '[' && value.back() == ']') {
    std::string_view inner(value);
    inner = inner.substr(1, inner.size() - 2);
    size_t start = 0;
    while (start <= inner.size()) {
      size_t comma = inner.find(',', start);
      std::string item = Unquote(Trim(inner.substr(start, comma - start)));
      if (!item.empty()) out.push_back(item);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  } else if (!value.empty()) {
    out.push_back(Unquote(value));
  }
  return out;
}

// Top-level keys of a YAML front matter with scalar or list values.
std::map<std::string, std::vector<std::string>> FrontMatter(std::string_view text) {
  std::map<std::string, std::vector<std::string>> out;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // BOM
  if (!text.starts_with("---")) return out;
  size_t pos = text.find('\n');
  std::string current;
  while (pos != std::string_view::npos && pos + 1 < text.size()) {
    size_t end = text.find('\n', pos + 1);
    std::string_view line = text.substr(
        pos + 1, end == std::string_view::npos ? std::string_view::npos : end - pos - 1);
    pos = end;
    std::string t = Trim(line);
    if (t == "---" || t == "...") break;
    if (t.empty() || t.starts_with("#")) continue;
    if (line.front() != ' ' && line.front() != '\t' && line.front() != '-') {
      size_t colon = t.find(':');
      if (colon == std::string::npos) {
        current.clear();
        continue;
      }
      current = Trim(t.substr(0, colon));
      std::string value = Trim(t.substr(colon + 1));
      out[current] = InlineList(value);
      continue;
    }
    if (!current.empty() && t.starts_with("- ")) {
      std::string item = Unquote(Trim(t.substr(2)));
      if (!item.empty() && item.find(": ") == std::string::npos) out[current].push_back(item);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> SpdxLicense(std::string_view hf_license) {
  const std::string id = Lower(Trim(hf_license));
  if (id.empty() || id == "other" || id == "unknown") return std::nullopt;
  // HF license ids that are SPDX ids, in SPDX's spelling.
  static const std::map<std::string, std::string, std::less<>> kSpdx = {
      {"apache-2.0", "Apache-2.0"},
      {"mit", "MIT"},
      {"bsd-2-clause", "BSD-2-Clause"},
      {"bsd-3-clause", "BSD-3-Clause"},
      {"gpl-2.0", "GPL-2.0-only"},
      {"gpl-3.0", "GPL-3.0-only"},
      {"lgpl-3.0", "LGPL-3.0-only"},
      {"agpl-3.0", "AGPL-3.0-only"},
      {"mpl-2.0", "MPL-2.0"},
      {"cc0-1.0", "CC0-1.0"},
      {"cc-by-4.0", "CC-BY-4.0"},
      {"cc-by-sa-4.0", "CC-BY-SA-4.0"},
      {"cc-by-nc-4.0", "CC-BY-NC-4.0"},
      {"cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"},
      {"cc-by-nd-4.0", "CC-BY-ND-4.0"},
      {"cc-by-nc-nd-4.0", "CC-BY-NC-ND-4.0"},
      {"cc-by-3.0", "CC-BY-3.0"},
      {"cc-by-sa-3.0", "CC-BY-SA-3.0"},
      {"unlicense", "Unlicense"},
      {"wtfpl", "WTFPL"},
      {"artistic-2.0", "Artistic-2.0"},
      {"bsl-1.0", "BSL-1.0"},
      {"isc", "ISC"},
      {"zlib", "Zlib"},
      {"ecl-2.0", "ECL-2.0"},
      {"epl-2.0", "EPL-2.0"},
      {"afl-3.0", "AFL-3.0"},
      {"odbl", "ODbL-1.0"},
      {"pddl", "PDDL-1.0"}};
  if (auto it = kSpdx.find(id); it != kSpdx.end()) return it->second;
  // SPDX: LicenseRef-[idstring], idstring = letters, digits, "." and "-".
  std::string ref = "LicenseRef-";
  for (char c : id) ref += std::isalnum(static_cast<unsigned char>(c)) || c == '.' ? c : '-';
  return ref;
}

CardInfo ParseModelCard(std::string_view readme) {
  CardInfo info;
  auto fm = FrontMatter(readme);
  auto get = [&](const char* key) {
    auto it = fm.find(key);
    return it == fm.end() ? std::vector<std::string>{} : it->second;
  };
  std::vector<std::string> licenses = get("license");
  std::vector<std::string> names = get("license_name");
  for (const auto& l : licenses) {
    if (Lower(l) == "other" && !names.empty()) {
      if (auto s = SpdxLicense(names.front())) info.licenses.push_back(*s);
    } else if (auto s = SpdxLicense(l)) {
      info.licenses.push_back(*s);
    }
  }
  for (const char* key : {"author", "authors"}) {
    for (auto& a : get(key)) info.authors.push_back(a);
  }
  for (const auto& l : get("language")) {
    if (l.size() == 2 && std::islower(static_cast<unsigned char>(l[0])) &&
        std::islower(static_cast<unsigned char>(l[1]))) {
      info.languages.push_back(l);
    }
  }
  return info;
}

}  // namespace mc::oci::modelpack
