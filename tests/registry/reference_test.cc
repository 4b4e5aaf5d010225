#include "registry/reference.h"

#include <gtest/gtest.h>

namespace mc::registry {
namespace {

const std::string kHex(64, 'a');

struct Good {
  std::string in, registry, repository, tag, digest, canonical;
};

TEST(ReferenceTest, ParsesAndNormalises) {
  const std::vector<Good> cases = {
      {"ubuntu", "docker.io", "library/ubuntu", "", "", "docker.io/library/ubuntu"},
      {"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", "",
       "docker.io/library/ubuntu:22.04"},
      {"org/model", "docker.io", "org/model", "", "", "docker.io/org/model"},
      {"docker.io/ubuntu", "docker.io", "library/ubuntu", "", "", "docker.io/library/ubuntu"},
      {"index.docker.io/org/m", "docker.io", "org/m", "", "", "docker.io/org/m"},
      {"quay.io/org/model:v1", "quay.io", "org/model", "v1", "", "quay.io/org/model:v1"},
      {"localhost/m", "localhost", "m", "", "", "localhost/m"},
      {"localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", "", "localhost:5000/a/b/c:t"},
      {"127.0.0.1:5000/m@sha256:" + kHex, "127.0.0.1:5000", "m", "", "sha256:" + kHex,
       "127.0.0.1:5000/m@sha256:" + kHex},
      {"h.io/m:t@sha256:" + kHex, "h.io", "m", "t", "sha256:" + kHex,
       "h.io/m:t@sha256:" + kHex},
      {"[::1]:5000/m:t", "[::1]:5000", "m", "t", "", "[::1]:5000/m:t"},
      {"[::1]/m", "[::1]", "m", "", "", "[::1]/m"},
      {"r.io/a.b_c__d---e/f", "r.io", "a.b_c__d---e/f", "", "", "r.io/a.b_c__d---e/f"},
      {"REG.IO:443/m", "REG.IO:443", "m", "", "", "REG.IO:443/m"},
      {"r.io/m:_Tag.9-x", "r.io", "m", "_Tag.9-x", "", "r.io/m:_Tag.9-x"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    auto r = Reference::Parse(c.in);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->registry(), c.registry);
    EXPECT_EQ(r->repository(), c.repository);
    EXPECT_EQ(r->tag().value_or(""), c.tag);
    EXPECT_EQ(r->digest() ? r->digest()->String() : "", c.digest);
    EXPECT_EQ(r->String(), c.canonical);
    // The canonical form parses to the same reference.
    auto again = Reference::Parse(r->String());
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *r);
  }
}

TEST(ReferenceTest, RejectsBadNamesWithAReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty reference"},
      {"Ubuntu", "must be lowercase"},
      {"quay.io/Org/model", "must be lowercase"},
      {"quay.io/org//model", "path component"},
      {"quay.io/-org/model", "path component"},
      {"quay.io/org/model.", "path component"},
      {"quay.io/org/a..b", "path component"},
      {"quay.io/org/a___b", "path component"},
      {"quay.io/m:-tag", "tag must match"},
      {"quay.io/m:" + std::string(129, 'a'), "tag must match"},
      {"quay.io/m:", "tag must match"},
      {"quay.io/m@sha256:abc", "digest must be"},
      {"quay.io/m@md5:" + kHex, "digest must be"},
      {"docker://quay.io/m", "transport prefix"},
      {"-bad.io/m", "invalid registry host"},
      {"bad.io:99999999/m", "invalid registry host"},
      {"[zz::1]:5/m", "invalid registry host"},
      {"r.io/" + std::string(260, 'a'), "255 characters"},
  };
  for (const auto& [in, why] : cases) {
    SCOPED_TRACE(in);
    auto r = Reference::Parse(in);
    ASSERT_FALSE(r) << r->String();
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message.find("invalid reference \"" + in + "\""), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  }
}

TEST(ReferenceTest, HostsScopesAndIdentifiers) {
  auto hub = Reference::Parse("ubuntu").value();
  EXPECT_EQ(hub.ApiHost(), "registry-1.docker.io");
  EXPECT_EQ(hub.Identifier(), "latest");
  EXPECT_EQ(hub.Scope("pull"), "repository:library/ubuntu:pull");
  auto local = Reference::Parse("127.0.0.1:5000/org/m:v2").value();
  EXPECT_EQ(local.ApiHost(), "127.0.0.1:5000");
  EXPECT_EQ(local.Hostname(), "127.0.0.1");
  EXPECT_EQ(local.Identifier(), "v2");
  EXPECT_EQ(local.Scope("pull,push"), "repository:org/m:pull,push");
  EXPECT_EQ(Reference::Parse("[::1]:5000/m").value().Hostname(), "::1");
  auto pinned = local.WithDigest(oci::Digest::Parse("sha256:" + kHex).value());
  EXPECT_EQ(pinned.Identifier(), "sha256:" + kHex);
  EXPECT_EQ(local.WithRepository("x/y").String(), "127.0.0.1:5000/x/y:v2");
  // 255 characters is the limit, inclusive.
  std::string name = "r.io/" + std::string(250, 'a');
  EXPECT_TRUE(Reference::Parse(name));
}

}  // namespace
}  // namespace mc::registry
