// The command line as a skopeo user types it: unknown flags named as such,
// global flags before or after the subcommand, skopeo's copy flags, and the
// messages that name the flag to fix (--dest-creds, --tls-verify=false).
// Sources are the hand-made two-platform layout of oci_test_image.h; registries
// are real docker-registry instances on loopback.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/oci_test_image.h"
#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

struct Exec {
  int rc = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

class CliHabitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    ASSERT_TRUE(WriteTwoPlatformLayout(tmp_ / "layout", "v1", 64 << 10, &image_, &err)) << err;
  }

  // Runs mc-engine with `args`, stdout and stderr apart.
  Exec Engine(const std::string& args, const std::string& env = "") {
    Exec e;
    fs::path err = tmp_ / "stderr";
    e.rc = mc::testing::Run(
        env + " timeout 120 " + EngineBinary() + " " + args + " 2>" + Quote(err.string()), &e.out,
        false);
    e.err = ReadFile(err);
    return e;
  }

  std::string Layout() const { return "oci:" + Quote((tmp_ / "layout").string()) + ":v1"; }
  std::string Out(const std::string& name) const {
    return "oci:" + Quote((tmp_ / name).string()) + ":v1";
  }
  // Digest of the image tagged v1 in the layout `name`.
  std::string TopDigest(const std::string& name) const {
    auto idx = nlohmann::json::parse(ReadFile(tmp_ / name / "index.json"));
    for (const auto& m : idx["manifests"]) {
      if (m["annotations"].value("org.opencontainers.image.ref.name", "") == "v1") {
        return m["digest"].get<std::string>();
      }
    }
    return "";
  }

  TempDir tmp_;
  TestImage image_;
};

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST_F(CliHabitsTest, UnknownFlagIsNamedOnOneLineWithExit2) {
  for (const std::string& args :
       {"copy --bogus " + Layout() + " " + Out("o"), "copy --bogus=1 " + Layout() + " " + Out("o"),
        "copy " + Layout() + " " + Out("o") + " --bogus",
        "--bogus copy " + Layout() + " " + Out("o")}) {
    auto r = Engine(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
    EXPECT_EQ(r.err, "mc-engine: error: unknown flag --bogus (run 'mc-engine --help' for usage)\n")
        << args;
    EXPECT_FALSE(fs::exists(tmp_ / "o")) << args;
  }
  auto shorty = Engine("copy -Z " + Layout() + " " + Out("o"));
  EXPECT_EQ(shorty.rc, 2);
  EXPECT_NE(shorty.err.find("unknown flag -Z"), std::string::npos) << shorty.err;
  EXPECT_EQ(Lines(shorty.err), 1) << shorty.err;
  // A flag's value that looks like a flag is a value, not an unknown flag.
  auto value = Engine("copy --digestfile --not-a-flag " + Layout() + " " + Out("o"),
                      "cd " + Quote(tmp_.path().string()) + " &&");
  EXPECT_EQ(value.rc, 0) << value.err;
}

TEST_F(CliHabitsTest, GlobalFlagsWorkBeforeAndAfterTheSubcommand) {
  auto before = Engine("-v --log-format json --progress none copy " + Layout() + " " + Out("a"));
  auto after =
      Engine("copy " + Layout() + " " + Out("b") + " -v --log-format json --progress none");
  for (const Exec* r : {&before, &after}) {
    ASSERT_EQ(r->rc, 0) << r->err;
    EXPECT_EQ(r->out, image_.index_digest + "\n");
    // -v and --log-format json took effect: debug lines, each a JSON object.
    EXPECT_NE(r->err.find("\"level\":\"debug\""), std::string::npos) << r->err;
    std::istringstream lines(r->err);
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with("{")) {
        EXPECT_TRUE(nlohmann::json::accept(line)) << line;
      }
    }
  }
  // Before the subcommand, --tls-verify goes to the subcommand's own flag.
  auto tls = Engine("--tls-verify=false copy " + Layout() + " " + Out("c"));
  EXPECT_EQ(tls.rc, 0) << tls.err;
  auto nowhere = Engine("--tls-verify=false metadata get --file x image");
  EXPECT_EQ(nowhere.rc, 2);
  EXPECT_NE(nowhere.err.find("--tls-verify does not apply to 'metadata'"), std::string::npos)
      << nowhere.err;
}

TEST_F(CliHabitsTest, TlsVerifyBeforeTheSubcommandReachesTheRegistry) {
  RegistryOptions o;
  o.tls = true;  // a CA nobody trusts: verification fails unless turned off
  RegistryFixture reg(o);
  ASSERT_TRUE(reg.ok()) << reg.error();
  std::string dst = "docker://" + reg.host() + "/habits/model:v1";
  auto verified = Engine("copy --no-cache " + Layout() + " " + dst);
  EXPECT_EQ(verified.rc, 6) << verified.err;
  auto before = Engine("--tls-verify=false copy --no-cache " + Layout() + " " + dst);
  EXPECT_EQ(before.rc, 0) << before.err;
  auto after = Engine("copy --no-cache " + Layout() + " " + dst + " --tls-verify=false");
  EXPECT_EQ(after.rc, 0) << after.err;
}

TEST_F(CliHabitsTest, SkopeoCopyFlagsAreAccepted) {
  for (const std::string flags :
       {"--all", "-a", "--multi-arch all", "--multi-arch=all", "--preserve-digests",
        "--retry-delay 2s", "--retry-delay=500ms", "--retry-delay 1m30s"}) {
    fs::remove_all(tmp_ / "o");
    auto r = Engine("copy " + flags + " " + Layout() + " " + Out("o"));
    EXPECT_EQ(r.rc, 0) << flags << "\n" << r.err;
    EXPECT_EQ(TopDigest("o"), image_.index_digest) << flags;
  }
  // system: the child of this machine's platform (the tests run on amd64 or arm64).
  auto system = Engine("copy --multi-arch system " + Layout() + " " + Out("sys"));
  ASSERT_EQ(system.rc, 0) << system.err;
#if defined(__x86_64__)
  EXPECT_EQ(TopDigest("sys"), image_.children.at("amd64"));
#elif defined(__aarch64__)
  EXPECT_EQ(TopDigest("sys"), image_.children.at("arm64"));
#endif
}

TEST_F(CliHabitsTest, QuietPrintsOnlyTheDigest) {
  auto r = Engine("copy -q " + Layout() + " " + Out("q"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, image_.index_digest + "\n");
  EXPECT_EQ(r.err, "");
  auto again = Engine("copy --quiet --progress lines " + Layout() + " " + Out("q"));
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.err, "");
  // Errors still show.
  auto bad = Engine("copy -q oci:" + Quote((tmp_ / "missing").string()) + ":v1 " + Out("q2"));
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("error"), std::string::npos);
}

TEST_F(CliHabitsTest, BadCopyFlagValuesExit2) {
  struct Case {
    std::string flags;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"--retry-delay 2x", "--retry-delay: invalid duration \"2x\""},
           {"--retry-delay 5", "--retry-delay: invalid duration \"5\""},
           {"--retry-delay 2h", "--retry-delay must be at most 1h"},
           {"--multi-arch index-only", "--multi-arch index-only is not supported"},
           {"--multi-arch some", "--multi-arch"},
           {"--all --multi-arch system", "--all and --multi-arch system cannot be used together"},
           {"--all --platform linux/arm64", "--all and --platform cannot be used together"},
           {"--src-no-creds --src-creds u:p", "excludes"},
       }) {
    auto r = Engine("copy " + c.flags + " " + Layout() + " " + Out("o"));
    EXPECT_EQ(r.rc, 2) << c.flags << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.flags << "\n" << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(tmp_ / "o")) << c.flags;
  }
}

TEST_F(CliHabitsTest, NoCredsAndPerSideCredsFlagsAreNamed) {
  RegistryOptions o;
  o.htpasswd = true;
  RegistryFixture locked(o);
  ASSERT_TRUE(locked.ok()) << locked.error();
  fs::path auth = locked.WriteAuthFile(locked.user(), locked.password());
  std::string dst = "docker://" + locked.host() + "/habits/model:v1";
  std::string authfile = " --authfile " + Quote(auth.string()) + " ";

  // The auth file is not read for a --dest-no-creds side.
  auto anon = Engine("copy --no-cache --dest-no-creds" + authfile + Layout() + " " + dst);
  EXPECT_EQ(anon.rc, 3) << anon.err;
  auto with = Engine("copy --no-cache" + authfile + Layout() + " " + dst);
  ASSERT_EQ(with.rc, 0) << with.err;

  // A wrong password names the flag of its side.
  auto dest = Engine("copy --no-cache --dest-creds " + Quote(locked.user() + ":wrong-pw") + " " +
                     Layout() + " " + dst);
  EXPECT_EQ(dest.rc, 3) << dest.err;
  EXPECT_NE(dest.err.find("--dest-creds"), std::string::npos) << dest.err;
  EXPECT_EQ(dest.err.find("(--creds"), std::string::npos) << dest.err;
  EXPECT_EQ(dest.err.find("wrong-pw"), std::string::npos) << dest.err;
  auto src = Engine("copy --src-creds " + Quote(locked.user() + ":wrong-pw") + " " + dst + " " +
                    Out("back"));
  EXPECT_EQ(src.rc, 3) << src.err;
  EXPECT_NE(src.err.find("--src-creds"), std::string::npos) << src.err;

  // --src-no-creds: anonymous pulls from the locked registry are refused...
  auto src_anon = Engine("copy --src-no-creds" + authfile + dst + " " + Out("back"));
  EXPECT_EQ(src_anon.rc, 3) << src_anon.err;
  // ...while the destination side still reads the auth file.
  auto dest_side = Engine("copy --no-cache --src-no-creds" + authfile + Layout() + " " + dst);
  EXPECT_EQ(dest_side.rc, 0) << dest_side.err;
}

TEST_F(CliHabitsTest, CopyThatOnlyCreatesATagSaysSo) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  std::string repo = "docker://" + reg.host() + "/habits/model";
  auto first = Engine("copy --no-cache " + Layout() + " " + repo + ":v1");
  ASSERT_EQ(first.rc, 0) << first.err;
  auto tag = Engine("copy --no-cache " + Layout() + " " + repo + ":armonly");
  ASSERT_EQ(tag.rc, 0) << tag.err;
  EXPECT_NE(tag.err.find("tag created"), std::string::npos) << tag.err;
  EXPECT_EQ(tag.err.find("nothing copied"), std::string::npos) << tag.err;
  EXPECT_EQ(reg.CountRequests("PUT", "/manifests/armonly"), 1);
  auto again = Engine("copy --no-cache " + Layout() + " " + repo + ":armonly");
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.err.find("nothing copied"), std::string::npos) << again.err;
  EXPECT_EQ(reg.CountRequests("PUT", "/manifests/armonly"), 1);
}

// A plain-HTTP server on this machine's non-loopback address: the TLS
// handshake fails and the error names --tls-verify=false (exit 6 stays).
TEST_F(CliHabitsTest, PlainHttpRegistryOffLoopbackNamesTlsVerify) {
  std::string ip;
  mc::testing::Run("hostname -I 2>/dev/null | tr ' ' '\\n' | grep -m1 -E '^[0-9.]+$'", &ip, false);
  while (!ip.empty() && (ip.back() == '\n' || ip.back() == ' ')) ip.pop_back();
  if (ip.empty() || ip.starts_with("127.")) GTEST_SKIP() << "no non-loopback IPv4 address";
  int port = FreeLoopbackPort();
  ChildProcess server;
  ASSERT_TRUE(server.Start({"python3", "-m", "http.server", std::to_string(port), "--bind", ip,
                            "--directory", tmp_.path().string()},
                           tmp_ / "http.log"));
  if (WaitForHttp("http://" + ip + ":" + std::to_string(port) + "/", "") == 0) {
    GTEST_SKIP() << "cannot reach " << ip << ":" << port;
  }
  std::string noproxy =
      "env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY";
  auto r = Engine("copy --no-cache --retry-times 0 " + Layout() + " docker://" + ip + ":" +
                      std::to_string(port) + "/habits/model:v1",
                  noproxy);
  EXPECT_EQ(r.rc, 6) << r.err;
  EXPECT_NE(r.err.find("--tls-verify=false"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--dest-tls-verify=false"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err), 1) << r.err;
}

}  // namespace
}  // namespace mc::testing
