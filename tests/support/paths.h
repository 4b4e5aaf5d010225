// Paths the tests need: the built binary, the source tree, a scratch dir.
#pragma once

#include <filesystem>
#include <string>

namespace mc::testing {

inline std::string EngineBinary() { return MC_ENGINE_BIN; }
inline std::filesystem::path SourceDir() { return MC_SOURCE_DIR; }

// A fresh directory under $TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& p) const { return path_ / p; }

 private:
  std::filesystem::path path_;
};

// Runs a shell command, returns its exit status (not the raw wait status);
// stdout (and stderr when merge_stderr) goes into *output when given.
int Run(const std::string& command, std::string* output = nullptr, bool merge_stderr = true);
// Run, with *output replaced rather than appended to.
int Sh(const std::string& command, std::string* output = nullptr, bool merge_stderr = true);

// Writes a file, creating parent directories.
void WriteFile(const std::filesystem::path& path, const std::string& content);
std::string ReadFile(const std::filesystem::path& path);
// Shell-quotes a string with single quotes.
std::string Quote(const std::string& s);

}  // namespace mc::testing
