// Helpers shared by the tar tests (tar_test.cc, tar_scan_test.cc, tar_plan_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/io.h"
#include "oci/tar.h"
#include "tests/support/paths.h"

namespace mc::oci::tartest {

namespace fs = std::filesystem;
using mc::testing::Quote;
using mc::testing::ReadFile;
using mc::testing::Run;
using mc::testing::TempDir;
using mc::testing::WriteFile;

// mc::testing::Run under a name that gtest's Test::Run does not hide.
inline int Sh(const std::string& command, std::string* output = nullptr) {
  return Run(command, output);
}

inline std::string Sha256Hex(const std::string& s) { return Digest::Of(s).hex(); }

inline void Symlink(const std::string& target, const fs::path& at) {
  fs::create_directories(at.parent_path());
  fs::create_symlink(target, at);
}

inline std::vector<std::string> Names(const std::vector<TarEntry>& entries) {
  std::vector<std::string> out;
  for (const TarEntry& e : entries) out.push_back(e.name);
  return out;
}

inline const TarEntry* Find(const std::vector<TarEntry>& entries, const std::string& name) {
  for (const TarEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

// Tars `entries` (contents from their sources) into a string.
inline std::string TarString(const std::vector<TarEntry>& entries, int64_t mtime = 0) {
  StringWriter w;
  TarWriter tar(w, TarOptions{mtime});
  for (const TarEntry& e : entries) {
    auto r = tar.Add(e);
    EXPECT_TRUE(r) << e.name << ": " << r.error().message;
  }
  auto f = tar.Finish();
  EXPECT_TRUE(f) << f.error().message;
  EXPECT_EQ(tar.bytes_written(), w.str().size());
  return w.Take();
}

inline std::vector<TarEntry> ScanOk(const fs::path& dir, const std::string& prefix = "/models") {
  auto r = ScanDirectory(dir, ScanOptions{prefix});
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : std::vector<TarEntry>{};
}

// Lists a tar file with Python's tarfile (tests/support/tar_inspect.py).
inline std::vector<nlohmann::json> PyList(const fs::path& tar) {
  std::string out;
  std::string script = (mc::testing::SourceDir() / "tests/support/tar_inspect.py").string();
  int rc = Run("python3 " + Quote(script) + " " + Quote(tar.string()), &out, false);
  EXPECT_EQ(rc, 0) << out;
  std::vector<nlohmann::json> members;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) members.push_back(nlohmann::json::parse(line));
  return members;
}

// Extracts `tar` with GNU tar into `into` (created); returns tar's exit status.
inline int GnuExtract(const fs::path& tar, const fs::path& into, std::string* log = nullptr) {
  fs::create_directories(into);
  return Run("tar --no-same-owner -xf " + Quote(tar.string()) + " -C " + Quote(into.string()), log);
}

// `diff -r` without following symlinks: 0 when the trees are equal byte for byte.
inline int DiffTrees(const fs::path& a, const fs::path& b, std::string* log = nullptr) {
  return Run("diff -r --no-dereference " + Quote(a.string()) + " " + Quote(b.string()), log);
}

}  // namespace mc::oci::tartest
