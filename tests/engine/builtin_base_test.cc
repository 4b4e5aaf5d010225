// The built-in base (engine/builtin_base.h) made from the machine's real
// static busybox, its layer listed by GNU tar, and the --user / base User rules
// of a build on it.
#include <sys/utsname.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/build.h"
#include "engine/builtin_base.h"
#include "oci/compress.h"
#include "oci/media_types.h"
#include "tests/support/mem_blob_sink.h"
#include "tests/support/paths.h"

namespace mc::engine {
namespace {

namespace fs = std::filesystem;
using mc::testing::MemDestination;
using mc::testing::Quote;
using mc::testing::ReadFile;
using mc::testing::TempDir;
using mc::testing::WriteFile;
using nlohmann::json;

std::string HostArchitecture() {
  utsname u{};
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "ppc64le") return "ppc64le";
  if (m == "s390x") return "s390x";
  return m;
}

// The busybox the built-in base is made of, copied so a test owns its file.
std::optional<fs::path> Busybox(const TempDir& tmp) {
  for (std::string_view p : kBusyboxPaths) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) {
      fs::copy_file(p, tmp / "busybox");
      return tmp / "busybox";
    }
  }
  return std::nullopt;
}

#define NEED_BUSYBOX(tmp, var)                                                    \
  auto var = Busybox(tmp);                                                        \
  if (!var)                                                                       \
  GTEST_SKIP() << "no busybox at /bin/busybox (scripts/install-deps.sh installs " \
                  "busybox-static)"

struct Opened {
  std::unique_ptr<oci::ImageSource> source;
  oci::RawManifest manifest;
  oci::Manifest parsed;
  json config;
  std::string layer;
};

Opened Open(const BuiltinBaseOptions& o) {
  Opened out;
  auto s = OpenBuiltinBase(o);
  EXPECT_TRUE(s) << s.error().message;
  if (!s) return out;
  out.source = std::move(*s);
  out.manifest = *out.source->GetManifest("");
  out.parsed = *oci::ParseManifest(out.manifest.bytes);
  out.config = json::parse(*out.source->ReadBlob(out.parsed.config));
  EXPECT_EQ(out.parsed.layers.size(), 1u);
  out.layer = *out.source->ReadBlob(out.parsed.layers.at(0));
  return out;
}

TEST(BuiltinBaseTest, LayerHasBusyboxLinksPasswdAndFixedModes) {
  TempDir tmp;
  NEED_BUSYBOX(tmp, busybox);
  BuiltinBaseOptions o;
  o.busybox = busybox->string();
  o.platform.architecture = HostArchitecture();
  Opened img = Open(o);
  ASSERT_TRUE(img.source);
  EXPECT_EQ(img.parsed.layers[0].media_type, oci::media::kOciLayerGzip);
  EXPECT_EQ(img.config["architecture"], HostArchitecture());
  EXPECT_EQ(img.config["os"], "linux");
  EXPECT_EQ(img.config["config"]["Env"], json::array({std::string(kBuiltinPath)}));
  EXPECT_FALSE(img.config["config"].contains("Entrypoint"));
  EXPECT_FALSE(img.config["config"].contains("Cmd"));
  EXPECT_FALSE(img.config["config"].contains("User"));
  EXPECT_EQ(img.config["created"], "1970-01-01T00:00:00Z");

  // GNU tar lists and extracts it.
  WriteFile(tmp / "layer.tgz", img.layer);
  std::string listing;
  ASSERT_EQ(mc::testing::Run("tar --numeric-owner --full-time -tvzf " +
                                 Quote((tmp / "layer.tgz").string()) +
                                 " | awk '{s = $1 \" \" $2 \" \" $4 \" \" $5 \" \" $6; "
                                 "if ($7 != \"\") s = s \" \" $7 \" \" $8; print s}'",
                             &listing, false),
            0);
  std::string expected =
      "drwxr-xr-x 0/0 1970-01-01 00:00:00 bin/\n"
      "lrwxrwxrwx 0/0 1970-01-01 00:00:00 bin/[ -> busybox\n"
      "-rwxr-xr-x 0/0 1970-01-01 00:00:00 bin/busybox\n";
  for (const char* t : {"cat", "echo", "ln", "ls", "mkdir", "sh", "sleep", "test"}) {
    expected += "lrwxrwxrwx 0/0 1970-01-01 00:00:00 bin/" + std::string(t) + " -> busybox\n";
  }
  expected +=
      "drwxr-xr-x 0/0 1970-01-01 00:00:00 etc/\n"
      "-rw-r--r-- 0/0 1970-01-01 00:00:00 etc/group\n"
      "-rw-r--r-- 0/0 1970-01-01 00:00:00 etc/passwd\n"
      "drwxrwxrwt 0/0 1970-01-01 00:00:00 tmp/\n";
  EXPECT_EQ(listing, expected);

  fs::create_directories(tmp / "x");
  ASSERT_EQ(mc::testing::Run("tar -xzf " + Quote((tmp / "layer.tgz").string()) + " -C " +
                             Quote((tmp / "x").string())),
            0);
  EXPECT_EQ(ReadFile(tmp / "x/bin/busybox"), ReadFile(*busybox));
  for (std::string_view t : kBuiltinTools) {
    fs::path link = tmp / "x/bin" / std::string(t);
    ASSERT_TRUE(fs::is_symlink(link)) << t;
    EXPECT_EQ(fs::read_symlink(link), "busybox") << t;
  }
  EXPECT_EQ(ReadFile(tmp / "x/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nmodelcar:x:1001:0:modelcar:/tmp:/bin/sh\n");
  EXPECT_EQ(ReadFile(tmp / "x/etc/group"), "root:x:0:\nmodelcar:x:1001:\n");

  // The config's diff_id is the tar's sha256.
  std::string sum;
  ASSERT_EQ(mc::testing::Run("gzip -dc " + Quote((tmp / "layer.tgz").string()) + " | sha256sum",
                             &sum, false),
            0);
  EXPECT_EQ(img.config["rootfs"]["diff_ids"][0], "sha256:" + sum.substr(0, 64));
}

TEST(BuiltinBaseTest, DeterministicForTheSameBusyboxAndOptions) {
  TempDir tmp;
  NEED_BUSYBOX(tmp, busybox);
  BuiltinBaseOptions o;
  o.busybox = busybox->string();
  o.platform.architecture = HostArchitecture();
  Opened a = Open(o);
  // Another copy of the same file, elsewhere, with another mtime: same bytes.
  fs::copy_file(*busybox, tmp / "elsewhere");
  fs::last_write_time(tmp / "elsewhere", fs::file_time_type::clock::now() - std::chrono::hours(5));
  o.busybox = (tmp / "elsewhere").string();
  Opened b = Open(o);
  ASSERT_TRUE(a.source && b.source);
  EXPECT_EQ(a.manifest.digest, b.manifest.digest);
  EXPECT_EQ(a.manifest.bytes, b.manifest.bytes);
  EXPECT_EQ(a.layer, b.layer);

  // The mtime and the compression are part of it.
  o.mtime = 1700000000;
  Opened c = Open(o);
  ASSERT_TRUE(c.source);
  EXPECT_NE(c.parsed.layers[0].digest, a.parsed.layers[0].digest);
  EXPECT_EQ(c.config["created"], "2023-11-14T22:13:20Z");
  o.mtime = 0;
  o.compression = oci::Compression::kNone;
  Opened d = Open(o);
  ASSERT_TRUE(d.source);
  EXPECT_EQ(d.parsed.layers[0].media_type, oci::media::kOciLayer);
  EXPECT_EQ(d.parsed.layers[0].digest.String(), a.config["rootfs"]["diff_ids"][0]);
}

TEST(BuiltinBaseTest, RefusesWhatIsNotAStaticBusybox) {
  TempDir tmp;
  BuiltinBaseOptions o;
  o.platform.architecture = HostArchitecture();
  o.busybox = (tmp / "missing").string();
  auto missing = OpenBuiltinBase(o);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, oci::ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("--builtin-busybox"), std::string::npos);
  EXPECT_NE(missing.error().message.find("busybox-static"), std::string::npos);

  WriteFile(tmp / "text", "#!/bin/sh\necho I am busybox\n");
  o.busybox = (tmp / "text").string();
  auto text = OpenBuiltinBase(o);
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(text.error().message.find("is not an ELF executable"), std::string::npos)
      << text.error().message;

  // A dynamically linked program (the system's ls) and a static one that is
  // not busybox (ldconfig), as they are.
  if (fs::exists("/bin/ls")) {
    o.busybox = "/bin/ls";
    auto dynamic = OpenBuiltinBase(o);
    ASSERT_FALSE(dynamic);
    EXPECT_NE(dynamic.error().message.find("is dynamically linked"), std::string::npos)
        << dynamic.error().message;
  }
  std::string ldconfig_type;
  if (fs::exists("/sbin/ldconfig") &&
      mc::testing::Run("file -L /sbin/ldconfig", &ldconfig_type, false) == 0 &&
      ldconfig_type.find("static") != std::string::npos) {
    o.busybox = "/sbin/ldconfig";
    auto other = OpenBuiltinBase(o);
    ASSERT_FALSE(other);
    EXPECT_NE(other.error().message.find("is not BusyBox"), std::string::npos)
        << other.error().message;
  }
  for (const auto& e : {missing.error(), text.error()}) {
    EXPECT_EQ(e.message.find('\n'), std::string::npos) << e.message;
  }
}

TEST(BuiltinBaseTest, BusyboxForAnotherPlatformIsRefused) {
  TempDir tmp;
  NEED_BUSYBOX(tmp, busybox);
  BuiltinBaseOptions o;
  o.busybox = busybox->string();
  o.platform.architecture = HostArchitecture() == "s390x" ? "arm64" : "s390x";
  auto r = OpenBuiltinBase(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message.find("is for linux/" + HostArchitecture() + ", not the requested"),
            std::string::npos)
      << r.error().message;
}

TEST(BuiltinBaseTest, InspectBusyboxReadsTheElfHeader) {
  // A minimal 64-bit little-endian aarch64 ELF header with one PT_LOAD, and
  // the version string busybox carries.
  std::string elf(64 + 56, '\0');
  elf.replace(0, 4,
              "\x7f"
              "ELF");
  elf[4] = 2;                        // ELFCLASS64
  elf[5] = 1;                        // little endian
  elf[16] = 2;                       // ET_EXEC
  elf[18] = static_cast<char>(183);  // EM_AARCH64
  elf[32] = 64;                      // e_phoff
  elf[54] = 56;                      // e_phentsize
  elf[56] = 1;                       // e_phnum
  elf[64] = 1;                       // PT_LOAD
  std::string with_version = elf + "BusyBox v1.36.1 (2024-01-01)";
  auto info = InspectBusybox(with_version, "x");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->platform.String(), "linux/arm64");
  EXPECT_EQ(info->version, "1.36.1");

  std::string dynamic = with_version;
  dynamic[64] = 3;  // PT_INTERP
  EXPECT_FALSE(InspectBusybox(dynamic, "x"));
  std::string truncated = with_version;
  truncated[56] = 50;  // 50 program headers that are not there
  auto bad = InspectBusybox(truncated, "x");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("program header"), std::string::npos);
  std::string unknown = with_version;
  unknown[18] = 99;
  EXPECT_FALSE(InspectBusybox(unknown, "x"));
}

TEST(ParseUserTest, AcceptsUidAndUidGidOnly) {
  for (const char* good : {"1001", "0", "1000970000:0", "65534:65534", "4294967294"}) {
    auto r = ParseUser(good);
    ASSERT_TRUE(r) << good;
    EXPECT_EQ(*r, good);
  }
  for (const char* bad : {"", ":", "1001:", ":0", "root", "1001:root", "-1", "1 001", "1001:0:0",
                          "4294967295", "99999999999", "0x10", "+5"}) {
    auto r = ParseUser(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message.find("--user"), std::string::npos);
    EXPECT_NE(r.error().message.find("UID:GID"), std::string::npos);
  }
}

// A source holding one image whose config says `user` (nullopt: no User).
class OneImageSource final : public oci::ImageSource {
 public:
  explicit OneImageSource(std::optional<std::string> user) {
    json cfg = {{"architecture", "amd64"},
                {"os", "linux"},
                {"config", json::object()},
                {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
    if (user) cfg["config"]["User"] = *user;
    config_ = cfg.dump();
    oci::Manifest m;
    m.config = {std::string(oci::media::kOciConfig), oci::Digest::Of(config_),
                static_cast<int64_t>(config_.size())};
    manifest_ = oci::RawManifest::FromBytes(oci::SerializeManifest(m),
                                            std::string(oci::media::kOciManifest));
  }
  oci::Result<oci::RawManifest> GetManifest(const std::string&) override { return manifest_; }
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlob(const oci::Descriptor&) override {
    return std::make_unique<oci::StringReader>(config_);
  }
  std::string Describe() const override { return "one-image"; }

 private:
  std::string config_;
  oci::RawManifest manifest_;
};

struct Built {
  json config;
  json manifest;
  std::vector<std::string> warnings;
};

Built BuildOn(oci::ImageSource* base, const std::string& user, const TempDir& tmp,
              bool builtin = false) {
  WriteFile(tmp / "model/config.json", "{}");
  ModelInput in;
  in.dir = (tmp / "model").string();
  BuildOptions o;
  o.base = base;
  o.base_name = "test";
  o.base_builtin = builtin;
  o.user = user;
  o.use_cache = false;
  MemDestination dest;
  auto r = BuildImage(in, o, dest);
  EXPECT_TRUE(r) << r.error().message;
  Built b;
  if (!r) return b;
  b.manifest = json::parse(r->manifest.bytes);
  b.config = json::parse(dest.blobs.at(r->config.digest));
  b.warnings = r->warnings;
  return b;
}

bool Mentions(const std::vector<std::string>& ws, std::string_view what) {
  for (const auto& w : ws)
    if (w.find(what) != std::string::npos) return true;
  return false;
}

TEST(BuildUserTest, BaseUserKeptDefaultWhenNoneUserFlagWins) {
  TempDir tmp;
  OneImageSource none(std::nullopt), named("nobody"), numeric("65534:65534"), root("0");
  EXPECT_EQ(BuildOn(nullptr, "", tmp).config["config"]["User"], "1001");
  EXPECT_EQ(BuildOn(&none, "", tmp).config["config"]["User"], "1001");
  EXPECT_EQ(BuildOn(&numeric, "", tmp).config["config"]["User"], "65534:65534");
  Built n = BuildOn(&named, "", tmp);
  EXPECT_EQ(n.config["config"]["User"], "nobody");
  EXPECT_TRUE(Mentions(n.warnings, "is not numeric")) << ::testing::PrintToString(n.warnings);
  Built r = BuildOn(&root, "", tmp);
  EXPECT_EQ(r.config["config"]["User"], "0");
  EXPECT_TRUE(Mentions(r.warnings, "is root")) << ::testing::PrintToString(r.warnings);
  Built over = BuildOn(&named, "1000970000:0", tmp);
  EXPECT_EQ(over.config["config"]["User"], "1000970000:0");
  EXPECT_FALSE(Mentions(over.warnings, "config.User"));
}

TEST(BuildUserTest, BuiltinBaseGivesPathDefaultUserAndNoBaseAnnotations) {
  TempDir tmp;
  NEED_BUSYBOX(tmp, busybox);
  BuiltinBaseOptions bo;
  bo.busybox = busybox->string();
  bo.platform.architecture = HostArchitecture();
  auto base = OpenBuiltinBase(bo);
  ASSERT_TRUE(base) << base.error().message;
  if (HostArchitecture() != "amd64") GTEST_SKIP() << "the build below is for linux/amd64";
  Built b = BuildOn(base->get(), "", tmp, /*builtin=*/true);
  EXPECT_EQ(b.config["config"]["User"], "1001");
  EXPECT_EQ(b.config["config"]["Env"], json::array({std::string(kBuiltinPath)}));
  ASSERT_EQ(b.manifest["layers"].size(), 2u);
  EXPECT_EQ(b.config["rootfs"]["diff_ids"].size(), 2u);
  EXPECT_EQ(b.config["history"].size(), 2u);
  EXPECT_FALSE(b.manifest["annotations"].contains("org.opencontainers.image.base.name"));
  EXPECT_FALSE(b.manifest["annotations"].contains("org.opencontainers.image.base.digest"));
  // The built-in base satisfies the contract: no warning at all.
  EXPECT_TRUE(b.warnings.empty()) << ::testing::PrintToString(b.warnings);
}

}  // namespace
}  // namespace mc::engine
