#include "registry/credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>

#include "registry/http_util.h"
#include "tests/support/paths.h"

namespace mc::registry {
namespace {

using mc::testing::TempDir;
using mc::testing::WriteFile;

std::string Auth(const std::string& user_pass) {
  return "{\"auth\":\"" + Base64Encode(user_pass) + "\"}";
}

class KeychainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_["HOME"] = (dir_ / "home").string();
    env_["XDG_RUNTIME_DIR"] = (dir_ / "run").string();
    env_["PATH"] = (dir_ / "bin").string();
  }
  Keychain Make(KeychainOptions o = {}) {
    o.getenv = [this](const std::string& k) -> std::optional<std::string> {
      auto it = env_.find(k);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    return Keychain(std::move(o));
  }
  Credential Get(const std::string& reg, const std::string& repo, KeychainOptions o = {}) {
    auto c = Make(std::move(o)).Resolve(reg, repo);
    EXPECT_TRUE(c) << c.error().message;
    return c.value_or(Credential{});
  }
  std::string Home(const std::string& p) { return (dir_ / "home" / p).string(); }
  void WriteHelper() {
    // Knows one server; says "not found" for others, like real helpers.
    std::string script =
        "#!/bin/sh\n"
        "[ \"$1\" = get ] || exit 2\n"
        "read server\n"
        "case \"$server\" in\n"
        "  helper.example) echo '{\"ServerURL\":\"helper.example\",\"Username\":\"hu\","
        "\"Secret\":\"hs\"}' ;;\n"
        "  https://index.docker.io/v1/) echo '{\"Username\":\"<token>\",\"Secret\":\"idt\"}' ;;\n"
        "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
        "esac\n";
    WriteFile(dir_ / "bin/docker-credential-test", script);
    ::chmod((dir_ / "bin/docker-credential-test").c_str(), 0755);
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(KeychainTest, CredsFlag) {
  KeychainOptions o;
  o.creds = "alice:pa:ss";
  Credential c = Get("quay.io", "org/repo", o);
  EXPECT_EQ(c.username, "alice");
  EXPECT_EQ(c.password, "pa:ss");
  EXPECT_EQ(c.source, "--creds");
  EXPECT_EQ(c.Describe(), "credentials from --creds");
  o.creds = "bob";
  EXPECT_EQ(Get("quay.io", "org/repo", o).password, "");
  o.creds = ":secret";
  auto bad = Make(o).Resolve("quay.io", "org/repo");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_EQ(bad.error().message.find("secret"), std::string::npos);
}

TEST_F(KeychainTest, AnonymousWhenNothingMatches) {
  Credential c = Get("quay.io", "org/repo");
  EXPECT_TRUE(c.anonymous());
  EXPECT_EQ(c.Describe(), "no credentials (anonymous)");
}

TEST_F(KeychainTest, SearchOrder) {
  WriteFile(Home(".docker/config.json"), R"({"auths":{"quay.io":)" + Auth("docker:d") + "}}");
  EXPECT_EQ(Get("quay.io", "a/b").username, "docker");
  WriteFile(Home(".config/containers/auth.json"), R"({"auths":{"quay.io":)" + Auth("cfg:c") + "}}");
  EXPECT_EQ(Get("quay.io", "a/b").username, "cfg");
  WriteFile(dir_ / "run/containers/auth.json", R"({"auths":{"other.io":)" + Auth("x:y") + "}}");
  EXPECT_EQ(Get("quay.io", "a/b").username, "cfg") << "a file without a match is skipped";
  WriteFile(dir_ / "run/containers/auth.json", R"({"auths":{"quay.io":)" + Auth("run:r") + "}}");
  Credential c = Get("quay.io", "a/b");
  EXPECT_EQ(c.username, "run");
  EXPECT_EQ(c.source, (dir_ / "run/containers/auth.json").string());
  env_["DOCKER_CONFIG"] = (dir_ / "dc").string();
  auto paths = Make().SearchPaths();
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_EQ(paths[2], (dir_ / "dc/config.json").string());
  EXPECT_EQ(paths[3], Home(".dockercfg"));
  env_.erase("XDG_RUNTIME_DIR");
  EXPECT_EQ(Make().SearchPaths()[0],
            "/run/containers/" + std::to_string(::getuid()) + "/auth.json");
}

TEST_F(KeychainTest, ExplicitFilesAreExclusive) {
  WriteFile(Home(".docker/config.json"), R"({"auths":{"quay.io":)" + Auth("docker:d") + "}}");
  WriteFile(dir_ / "explicit.json", R"({"auths":{"other.io":)" + Auth("e:e") + "}}");
  KeychainOptions o;
  o.authfile = (dir_ / "explicit.json").string();
  EXPECT_TRUE(Get("quay.io", "a/b", o).anonymous());
  EXPECT_EQ(Get("other.io", "a/b", o).username, "e");
  env_["REGISTRY_AUTH_FILE"] = (dir_ / "explicit.json").string();
  EXPECT_TRUE(Get("quay.io", "a/b").anonymous());
  o.authfile = (dir_ / "missing.json").string();
  auto missing = Make(o).Resolve("quay.io", "a/b");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(missing.error().message.find("missing.json"), std::string::npos);
}

TEST_F(KeychainTest, MostSpecificKeyWins) {
  WriteFile(Home(".config/containers/auth.json"),
            R"({"auths":{"quay.io":)" + Auth("host:1") + R"(,"quay.io/org":)" + Auth("ns:2") +
                R"(,"quay.io/org/repo":)" + Auth("repo:3") + "}}");
  EXPECT_EQ(Get("quay.io", "org/repo").username, "repo");
  EXPECT_EQ(Get("quay.io", "org/other").username, "ns");
  EXPECT_EQ(Get("quay.io", "org/repo2").username, "ns");
  EXPECT_EQ(Get("quay.io", "elsewhere/x").username, "host");
  EXPECT_EQ(Get("QUAY.IO", "elsewhere/x").username, "host");
}

TEST_F(KeychainTest, LegacyUrlKeysAndDockerHub) {
  WriteFile(Home(".docker/config.json"), R"({"auths":{"https://index.docker.io/v1/":)" +
                                             Auth("hub:h") + R"(,"http://myreg:5000/v2/":)" +
                                             Auth("my:m") + "}}");
  EXPECT_EQ(Get("docker.io", "library/ubuntu").username, "hub");
  EXPECT_EQ(Get("registry-1.docker.io", "library/ubuntu").username, "hub");
  EXPECT_EQ(Get("index.docker.io", "library/ubuntu").username, "hub");
  EXPECT_EQ(Get("myreg:5000", "x/y").username, "my");
  EXPECT_TRUE(Get("myreg", "x/y").anonymous()) << "the port is part of the key";
  EXPECT_EQ(NormalizeRegistryKey("https://Index.Docker.io/v1/"), "docker.io");
  EXPECT_EQ(NormalizeRegistryKey("Quay.io/Org"), "quay.io/Org");
}

TEST_F(KeychainTest, LegacyDockercfg) {
  WriteFile(Home(".dockercfg"), R"({"quay.io":)" + Auth("legacy:l") + "}");
  Credential c = Get("quay.io", "a/b");
  EXPECT_EQ(c.username, "legacy");
  EXPECT_EQ(c.source, Home(".dockercfg"));
}

TEST_F(KeychainTest, EntryFields) {
  std::string nul_padded = Base64Encode(std::string("u:p:q\0\0", 7));
  WriteFile(Home(".config/containers/auth.json"),
            R"({"auths":{"a.io":{"auth":")" + nul_padded +
                R"("},)"
                R"("b.io":{"auth":")" +
                Base64Encode("u:") +
                R"(","identitytoken":"idtok"},)"
                R"("c.io":{"registrytoken":"rtok"},)"
                R"("d.io":{"username":"du","password":"dp"}}})");
  Credential a = Get("a.io", "x/y");
  EXPECT_EQ(a.username, "u");
  EXPECT_EQ(a.password, "p:q");
  EXPECT_EQ(Get("b.io", "x/y").identity_token, "idtok");
  EXPECT_EQ(Get("c.io", "x/y").registry_token, "rtok");
  EXPECT_EQ(Get("d.io", "x/y").password, "dp");
}

TEST_F(KeychainTest, MalformedFilesNameTheFile) {
  WriteFile(Home(".config/containers/auth.json"), "{not json");
  auto r = Make().Resolve("quay.io", "a/b");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message.find(Home(".config/containers/auth.json")), std::string::npos);
  WriteFile(Home(".config/containers/auth.json"), R"({"auths":{"quay.io":{"auth":"%%%"}}})");
  auto r2 = Make().Resolve("quay.io", "a/b");
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("base64"), std::string::npos);
}

TEST_F(KeychainTest, CredentialHelpers) {
  WriteHelper();
  WriteFile(Home(".config/containers/auth.json"),
            R"({"credHelpers":{"helper.example":"test","nothere.example":"test"},)"
            R"("credsStore":"test","auths":{"nothere.example":)" +
                Auth("file:f") + "}}");
  Credential c = Get("helper.example", "a/b");
  EXPECT_EQ(c.username, "hu");
  EXPECT_EQ(c.password, "hs");
  EXPECT_EQ(c.source, "docker-credential-test");
  EXPECT_EQ(Get("nothere.example", "a/b").username, "file") << "helper said not found";
  // credsStore is ignored in containers auth.json but used in docker's config.json.
  EXPECT_TRUE(Get("docker.io", "library/x").anonymous());
  WriteFile(Home(".docker/config.json"), R"({"credsStore":"test","auths":{"docker.io":{}}})");
  Credential hub = Get("docker.io", "library/x");
  EXPECT_EQ(hub.identity_token, "idt");
  EXPECT_EQ(hub.source, "docker-credential-test");
}

TEST_F(KeychainTest, MissingHelperMeansNoCredentials) {
  WriteFile(Home(".docker/config.json"),
            R"({"credHelpers":{"quay.io":"absent"},"auths":{"quay.io":{}}})");
  EXPECT_TRUE(Get("quay.io", "a/b").anonymous());
}

}  // namespace
}  // namespace mc::registry
