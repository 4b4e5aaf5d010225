// OpenBeneath / WriteFileAtomicAt: nothing is written through a symlink
// below the root, and the error names the link.
#include "engine/beneath.h"

#include <gtest/gtest.h>

#include "tests/support/paths.h"

namespace mc::engine {
namespace {

namespace fs = std::filesystem;
using mc::testing::ReadFile;
using mc::testing::TempDir;
using mc::testing::WriteFile;

TEST(BeneathTest, CreatesAndWritesBelowTheRoot) {
  TempDir tmp;
  auto root = OpenRootDir(tmp / "root", /*create=*/true);
  ASSERT_TRUE(root) << root.error().message;
  auto missing = OpenBeneath(*root, "a/b", /*create=*/false);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, oci::ErrorCode::kNotFound);
  auto dir = OpenBeneath(*root, "a/b", /*create=*/true);
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(dir->path(), (tmp / "root/a/b").string());
  ASSERT_TRUE(WriteFileAtomicAt(*dir, "x.txt", "hello"));
  EXPECT_EQ(ReadFile(tmp / "root/a/b/x.txt"), "hello");
  auto read = ReadFileAt(*dir, "x.txt");
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, "hello");
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp / "root/a/b"), fs::directory_iterator()), 1);
  EXPECT_TRUE(OpenBeneath(*root, "", false));  // the root again
  for (const char* bad : {"../x", "a/../b", "/etc", "a/./b"}) {
    auto r = OpenBeneath(*root, bad, true);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput) << bad;
  }
}

TEST(BeneathTest, SymlinkWhereADirectoryIsExpectedIsAnError) {
  TempDir tmp;
  fs::create_directories(tmp / "outside");
  fs::create_directories(tmp / "root/a");
  fs::create_directory_symlink(tmp / "outside", tmp / "root/a/sub");
  auto root = OpenRootDir(tmp / "root", false);
  ASSERT_TRUE(root);
  for (bool create : {false, true}) {
    auto r = OpenBeneath(*root, "a/sub/deeper", create);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message.find((tmp / "root/a/sub").string() + " is a symlink"),
              std::string::npos)
        << r.error().message;
  }
  EXPECT_TRUE(fs::is_empty(tmp / "outside"));
  // A file where a directory is expected.
  WriteFile(tmp / "root/file", "x");
  auto r = OpenBeneath(*root, "file/x", true);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a directory"), std::string::npos) << r.error().message;
}

TEST(BeneathTest, AtomicWriteReplacesALinkInsteadOfFollowingIt) {
  TempDir tmp;
  WriteFile(tmp / "outside.txt", "keep");
  fs::create_directories(tmp / "root");
  fs::create_symlink(tmp / "outside.txt", tmp / "root/f");
  auto root = OpenRootDir(tmp / "root", false);
  ASSERT_TRUE(root);
  auto read = ReadFileAt(*root, "f");
  EXPECT_FALSE(read);  // not followed
  ASSERT_TRUE(WriteFileAtomicAt(*root, "f", "new"));
  EXPECT_FALSE(fs::is_symlink(tmp / "root/f"));
  EXPECT_EQ(ReadFile(tmp / "root/f"), "new");
  EXPECT_EQ(ReadFile(tmp / "outside.txt"), "keep");
}

}  // namespace
}  // namespace mc::engine
