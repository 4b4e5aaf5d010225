// Splitting a model's entries into several layers (design.md "Image produced":
// --max-layer-size, --layer-per-file).
//
// Why more than one layer: one huge blob is one serial upload and one serial
// gunzip on every node, and self-hosted Quay refuses layers over
// MAXIMUM_LAYER_SIZE. Every layer must stand on its own when unpacked in any
// order over the others, so each repeats the directories above what it holds
// (same mode, same mtime: the union is the same tree), and a hard link travels
// with its target, because a link to a file in another layer would dangle in
// the layer that holds it alone.
#include <map>
#include <set>
#include <utility>

#include "oci/tar.h"

namespace mc::oci {
namespace {

// One layer under construction.
class LayerBuilder {
 public:
  explicit LayerBuilder(const std::map<std::string, const TarEntry*>& dirs) : dirs_(&dirs) {}

  // Adds `entry` after any of its ancestors this layer does not hold yet.
  void Add(const TarEntry& entry) {
    for (size_t slash = entry.name.find('/'); slash != std::string::npos;
         slash = entry.name.find('/', slash + 1)) {
      AddOnce(Ancestor(entry.name.substr(0, slash)));
    }
    AddOnce(entry);
  }
  std::vector<TarEntry> Take() {
    SortTarEntries(entries_);
    return std::move(entries_);
  }
  bool empty() const { return entries_.empty(); }

 private:
  TarEntry Ancestor(const std::string& name) const {
    auto it = dirs_->find(name);
    if (it != dirs_->end()) return *it->second;
    TarEntry d;  // the list has no entry for it: a plain 0755 directory
    d.type = TarEntry::Type::kDirectory;
    d.mode = 0755;
    d.name = name;
    return d;
  }
  void AddOnce(const TarEntry& e) {
    if (names_.insert(e.name).second) entries_.push_back(e);
  }

  const std::map<std::string, const TarEntry*>* dirs_;
  std::vector<TarEntry> entries_;
  std::set<std::string> names_;
};

// A directory with children is added with its first child (as an ancestor),
// so it lands only in layers that hold something under it; an empty one is
// added where it stands. Relies on the pre-order of TarNameLess.
bool HasChildNext(const std::vector<TarEntry>& entries, size_t i) {
  if (i + 1 >= entries.size()) return false;
  const std::string& dir = entries[i].name;
  const std::string& next = entries[i + 1].name;
  return next.size() > dir.size() && next.starts_with(dir) && next[dir.size()] == '/';
}

TarEntry AsFile(const TarEntry& link) {
  TarEntry f = link;
  f.type = TarEntry::Type::kFile;
  f.link_target.clear();
  return f;
}

// Which layer each kFile went to, so hard links can follow their targets.
using FileLayers = std::map<std::string, size_t>;

void PlaceHardlinks(const std::vector<TarEntry>& entries, const FileLayers& where,
                    std::vector<LayerBuilder>& layers, size_t fallback) {
  for (const TarEntry& e : entries) {
    if (e.type != TarEntry::Type::kHardlink) continue;
    auto it = where.find(e.link_target);
    if (it != where.end()) {
      layers[it->second].Add(e);
    } else {
      layers[fallback].Add(AsFile(e));
    }
  }
}

std::vector<std::vector<TarEntry>> BySize(const std::vector<TarEntry>& entries, uint64_t max,
                                          const std::map<std::string, const TarEntry*>& dirs) {
  std::vector<LayerBuilder> layers{LayerBuilder(dirs)};
  FileLayers where;
  uint64_t used = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const TarEntry& e = entries[i];
    if (e.type == TarEntry::Type::kHardlink) continue;
    if (e.type == TarEntry::Type::kDirectory && HasChildNext(entries, i)) continue;
    if (e.type == TarEntry::Type::kFile) {
      if (used > 0 && used + e.size > max) {
        layers.emplace_back(dirs);
        used = 0;
      }
      used += e.size;
      where[e.name] = layers.size() - 1;
    }
    layers.back().Add(e);
  }
  PlaceHardlinks(entries, where, layers, layers.size() - 1);
  std::vector<std::vector<TarEntry>> out;
  for (LayerBuilder& l : layers) out.push_back(l.Take());
  return out;
}

std::vector<std::vector<TarEntry>> PerFile(const std::vector<TarEntry>& entries,
                                           uint64_t small_file_limit,
                                           const std::map<std::string, const TarEntry*>& dirs) {
  // layers[0] is the shared layer: directories, symlinks, small files.
  std::vector<LayerBuilder> layers{LayerBuilder(dirs)};
  FileLayers where;
  for (size_t i = 0; i < entries.size(); ++i) {
    const TarEntry& e = entries[i];
    if (e.type == TarEntry::Type::kHardlink) continue;
    if (e.type == TarEntry::Type::kDirectory && HasChildNext(entries, i)) continue;
    if (e.type == TarEntry::Type::kFile && e.size >= small_file_limit) {
      layers.emplace_back(dirs);
      layers.back().Add(e);
      where[e.name] = layers.size() - 1;
      continue;
    }
    if (e.type == TarEntry::Type::kFile) where[e.name] = 0;
    layers[0].Add(e);
  }
  PlaceHardlinks(entries, where, layers, 0);
  // The shared layer may be empty (only big files): then there is no such layer.
  bool drop_shared = layers.size() > 1 && layers[0].empty();
  std::vector<std::vector<TarEntry>> out;
  for (size_t i = drop_shared ? 1 : 0; i < layers.size(); ++i) out.push_back(layers[i].Take());
  return out;
}

}  // namespace

std::vector<std::vector<TarEntry>> PlanLayers(const std::vector<TarEntry>& entries,
                                              uint64_t max_layer_size, bool layer_per_file,
                                              uint64_t small_file_limit) {
  if (max_layer_size == 0 && !layer_per_file) {
    std::vector<TarEntry> all = entries;
    SortTarEntries(all);
    return {std::move(all)};
  }
  std::map<std::string, const TarEntry*> dirs;
  for (const TarEntry& e : entries) {
    if (e.type == TarEntry::Type::kDirectory) dirs.emplace(e.name, &e);
  }
  if (max_layer_size > 0) return BySize(entries, max_layer_size, dirs);
  return PerFile(entries, small_file_limit, dirs);
}

}  // namespace mc::oci
