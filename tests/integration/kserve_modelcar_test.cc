// The default image (built-in base) runs KServe's modelcar commands: built
// into an oci: layout, then started with buildah (chroot isolation, a private
// vfs storage root) as OpenShift's restricted-v2 would run it, UID
// 1000970000 in group 0, with an emptyDir at /mnt. The config's User rules
// and the base annotations are read back with skopeo, the layers with GNU tar
// and Python's tarfile.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/push_helpers.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool HaveBusybox() {
  for (const char* p : {"/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"}) {
    if (fs::exists(p)) return true;
  }
  return false;
}

class KServeModelcarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveBusybox()) {
      GTEST_SKIP() << "no static busybox (scripts/install-deps.sh installs busybox-static)";
    }
    MakeModel(tmp_ / "model", 1 << 20);
  }

  // `mc-engine --progress none build MODEL DEST EXTRA`: exit status, stdout+stderr in *out.
  int Build(const fs::path& model, const std::string& dest, const std::string& extra,
            std::string* out) {
    out->clear();
    return mc::testing::Run("timeout 120 " + Quote(EngineBinary()) + " --progress none build " +
                                Quote(model.string()) + " " + Quote(dest) + " " + extra,
                            out);
  }
  std::string BuildOk(const fs::path& model, const std::string& dest,
                      const std::string& extra = "") {
    std::string out;
    EXPECT_EQ(Build(model, dest, extra, &out), 0) << out;
    size_t at = out.rfind("sha256:");
    return at == std::string::npos ? out : out.substr(at, 71);
  }
  json Skopeo(const std::string& what, const std::string& ref) {
    std::string out;
    EXPECT_EQ(mc::testing::Run("timeout 60 skopeo inspect " + what + " " + Quote(ref), &out, false),
              0)
        << out;
    return json::parse(out, nullptr, false);
  }
  std::string Layout(const std::string& name, const std::string& tag = "t") const {
    return "oci:" + (tmp_ / name).string() + ":" + tag;
  }

  TempDir tmp_;
};

// buildah with its own storage, so that tests share nothing and leave nothing.
class Buildah {
 public:
  explicit Buildah(const fs::path& dir)
      : flags_("--storage-driver vfs --root " + Quote((dir / "root").string()) + " --runroot " +
               Quote((dir / "runroot").string())) {}
  ~Buildah() {
    if (containers_ > 0) mc::testing::Run("timeout 60 buildah " + flags_ + " rm --all");
    for (const auto& link : links_) fs::remove(link);
  }
  // buildah from oci:LAYOUT:TAG: the container's name, "" on failure (*out
  // says why). buildah names the image after the layout's path, which must be
  // lowercase: the layout is reached through a lowercase symlink.
  std::string From(const fs::path& layout, const std::string& tag, std::string* out) {
    std::string name = "mc-kserve-" + std::to_string(++containers_);
    fs::path link = fs::temp_directory_path() /
                    ("mc-kserve-" + std::to_string(::getpid()) + "-" + std::to_string(containers_));
    fs::remove(link);
    fs::create_directory_symlink(layout, link);
    links_.push_back(link);
    out->clear();
    if (mc::testing::Run("timeout 120 buildah " + flags_ + " from --pull-never --quiet --name " +
                             name + " " + Quote("oci:" + link.string() + ":" + tag),
                         out) != 0) {
      return "";
    }
    return name;
  }
  // buildah run as KServe runs the modelcar containers: `sh -c SCRIPT`.
  int Run(const std::string& container, const std::string& user, const fs::path& mnt,
          const std::string& script, std::string* out) {
    out->clear();
    return mc::testing::Run("timeout 120 buildah " + flags_ + " run --isolation chroot --user " +
                                user + " -v " + Quote(mnt.string()) + ":/mnt " + Quote(container) +
                                " -- sh -c " + Quote(script),
                            out);
  }

 private:
  std::string flags_;
  int containers_ = 0;
  std::vector<fs::path> links_;
};

bool HaveBuildah() { return mc::testing::Run("buildah --version >/dev/null 2>&1") == 0; }

// KServe's modelcar-init command (pkg/utils/storage.go), as it is.
const char* kInitCommand =
    "echo 'Pre-fetching modelcar image...' && [ -d /models ] && [ \"$(ls -A /models)\" ] && "
    "echo 'OK ... Prefetched and valid (/models exists)' || "
    "(echo 'NOK ... Prefetched but modelcar is invalid (/models does not exist or is empty)' && "
    "exit 1)";

TEST_F(KServeModelcarTest, DefaultImageRunsTheSidecarAndInitCommandsAsAnArbitraryUid) {
  if (!HaveBuildah()) GTEST_SKIP() << "buildah is not installed (scripts/install-deps.sh has it)";
  std::string digest = BuildOk(tmp_ / "model", Layout("layout"));
  ASSERT_TRUE(digest.starts_with("sha256:")) << digest;

  Buildah buildah(tmp_ / "buildah");
  std::string out;
  std::string c = buildah.From(tmp_ / "layout", "t", &out);
  ASSERT_FALSE(c.empty()) << out;
  // The pod's emptyDir, mounted at /mnt in the sidecar and the model server.
  fs::path mnt = tmp_ / "emptydir";
  fs::create_directories(mnt);
  fs::permissions(mnt, fs::perms::all);
  const std::string user = "1000970000:0";

  ASSERT_EQ(buildah.Run(c, user, mnt, kInitCommand, &out), 0) << out;
  EXPECT_NE(out.find("OK ... Prefetched"), std::string::npos) << out;

  // The sidecar for a model path other than the default: mkdir -p, then the
  // link into its own root; the model server reads config.json through it.
  // `sleep infinity` is checked to keep running, then stopped.
  const std::string sidecar =
      "mkdir -p /mnt/models-parent && ln -sf /proc/$$/root/models /mnt/models-parent/models && "
      "ls /mnt/models-parent/models/ && cat /mnt/models-parent/models/config.json && echo && "
      "cat /mnt/models-parent/models/sub/tokenizer.json && echo && "
      "{ sleep infinity & s=$!; sleep 1; kill -0 $s && kill $s && echo sleeping-ok; }";
  ASSERT_EQ(buildah.Run(c, user, mnt, sidecar, &out), 0) << out;
  EXPECT_NE(out.find("config.json\nmodel.safetensors\nsub\n"), std::string::npos) << out;
  EXPECT_NE(out.find(ReadFile(tmp_ / "model/config.json")), std::string::npos) << out;
  EXPECT_NE(out.find("{\"v\":1}"), std::string::npos) << out;
  EXPECT_NE(out.find("sleeping-ok"), std::string::npos) << out;
  // The link is in the emptyDir, made by the arbitrary UID, pointing into the sidecar's root.
  struct stat st {};
  ASSERT_EQ(::lstat((mnt / "models-parent/models").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 1000970000u);
  EXPECT_EQ(st.st_gid, 0u);
  std::string target = fs::read_symlink(mnt / "models-parent/models").string();
  EXPECT_TRUE(target.starts_with("/proc/") && target.ends_with("/root/models")) << target;

  // The default model path: KServe's own sidecar command, without mkdir.
  ASSERT_EQ(buildah.Run(c, user, mnt,
                        "ln -sf /proc/$$/root/models /mnt/models && ls -A /mnt/models/ && "
                        "{ sleep infinity & s=$!; sleep 1; kill $s; }",
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("config.json"), std::string::npos) << out;

  // The config's default user, with no --user, runs the init check as well.
  ASSERT_EQ(buildah.Run(c, "1001", mnt, kInitCommand, &out), 0) << out;

  // An image of an empty model: the same init command fails the pod.
  fs::create_directories(tmp_ / "empty-model");
  BuildOk(tmp_ / "empty-model", Layout("empty"));
  std::string ce = buildah.From(tmp_ / "empty", "t", &out);
  ASSERT_FALSE(ce.empty()) << out;
  EXPECT_EQ(buildah.Run(ce, user, mnt, kInitCommand, &out), 1) << out;
  EXPECT_NE(out.find("NOK"), std::string::npos) << out;
}

TEST_F(KServeModelcarTest, DefaultImageLayersBuiltinFirstModelLastAllGzip) {
  BuildOk(tmp_ / "model", Layout("layout"));
  std::string out;
  ASSERT_EQ(mc::testing::Run("skopeo copy --quiet " + Quote(Layout("layout")) +
                                 " dir:" + Quote((tmp_ / "dir").string()),
                             &out),
            0)
      << out;
  json m = json::parse(ReadFile(tmp_ / "dir/manifest.json"));
  json cfg =
      json::parse(ReadFile(tmp_ / "dir" / m["config"]["digest"].get<std::string>().substr(7)));
  ASSERT_EQ(m["layers"].size(), 2u);
  // oci+fetch:// reads gzip (or uncompressed) layers only.
  for (const auto& l : m["layers"]) {
    EXPECT_EQ(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
  }
  fs::path base = tmp_ / "dir" / m["layers"][0]["digest"].get<std::string>().substr(7);
  fs::path model = tmp_ / "dir" / m["layers"][1]["digest"].get<std::string>().substr(7);
  // Python's tarfile reads the base layer: busybox and its links, /etc, /tmp.
  const std::string py = R"(
import sys, tarfile
with tarfile.open(sys.argv[1], "r:gz") as t:
    for m in t.getmembers():
        kind = "l" if m.issym() else "d" if m.isdir() else "f"
        print(m.name, kind, oct(m.mode), m.uid, m.gid, m.mtime, m.linkname)
)";
  WriteFile(tmp_ / "list.py", py);
  ASSERT_EQ(
      mc::testing::Run("python3 " + Quote((tmp_ / "list.py").string()) + " " + Quote(base.string()),
                       &out, false),
      0)
      << out;
  EXPECT_NE(out.find("bin/busybox f 0o755 0 0 0 \n"), std::string::npos) << out;
  for (const char* t : {"[", "cat", "echo", "ln", "ls", "mkdir", "sh", "sleep", "test"}) {
    EXPECT_NE(out.find("bin/" + std::string(t) + " l 0o777 0 0 0 busybox\n"), std::string::npos)
        << t << "\n"
        << out;
  }
  EXPECT_NE(out.find("etc/passwd f 0o644 0 0 0 \n"), std::string::npos) << out;
  EXPECT_NE(out.find("tmp d 0o1777 0 0 0 \n"), std::string::npos) << out;
  EXPECT_EQ(out.find("models"), std::string::npos) << out;
  // GNU tar: the model layer holds exactly the model.
  fs::create_directories(tmp_ / "x");
  ASSERT_EQ(
      mc::testing::Run("tar -xzf " + Quote(model.string()) + " -C " + Quote((tmp_ / "x").string())),
      0);
  EXPECT_EQ(mc::testing::Run("diff -r " + Quote((tmp_ / "model").string()) + " " +
                                 Quote((tmp_ / "x/models").string()),
                             &out),
            0)
      << out;
  EXPECT_EQ(cfg["config"]["Env"],
            json::array({"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}));
  EXPECT_FALSE(cfg["config"].contains("Entrypoint"));
  EXPECT_FALSE(cfg["config"].contains("Cmd"));
  EXPECT_EQ(cfg["history"].size(), 2u);
}

TEST_F(KServeModelcarTest, UserFlagAndBaseUserThroughSkopeo) {
  // No --user, a base without User (the built-in one): 1001.
  BuildOk(tmp_ / "model", Layout("plain"));
  EXPECT_EQ(Skopeo("--config", Layout("plain"))["config"]["User"], "1001");
  // --user sets it.
  BuildOk(tmp_ / "model", Layout("flag"), "--user 1000970000:0");
  EXPECT_EQ(Skopeo("--config", Layout("flag"))["config"]["User"], "1000970000:0");
  // A base that sets a User keeps it ...
  BuildOk(tmp_ / "model", Layout("base", "v1"), "--user 65534");
  BuildOk(tmp_ / "model", Layout("on-base"), "--base " + Layout("base", "v1"));
  EXPECT_EQ(Skopeo("--config", Layout("on-base"))["config"]["User"], "65534");
  // ... unless --user says otherwise.
  BuildOk(tmp_ / "model", Layout("on-base-flag"),
          "--base " + Layout("base", "v1") + " --user 2000");
  EXPECT_EQ(Skopeo("--config", Layout("on-base-flag"))["config"]["User"], "2000");

  // A bad --user: exit 2, one line naming the flag, nothing built.
  for (const char* bad : {"root", "1001:", "-5", "1:2:3", "99999999999"}) {
    std::string out;
    EXPECT_EQ(Build(tmp_ / "model", Layout("bad"), "--user " + std::string(bad), &out), 2) << out;
    EXPECT_NE(out.find("--user"), std::string::npos) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  }
  EXPECT_FALSE(fs::exists(tmp_ / "bad/index.json"));
  // Root is allowed but warned about, and refused by --strict.
  std::string out;
  EXPECT_EQ(Build(tmp_ / "model", Layout("root"), "--user 0", &out), 0) << out;
  EXPECT_NE(out.find("is root"), std::string::npos) << out;
  EXPECT_EQ(Build(tmp_ / "model", Layout("root2"), "--user 0 --strict", &out), 2) << out;
}

TEST_F(KServeModelcarTest, LocalBasesLeaveNoPathInTheImage) {
  BuildOk(tmp_ / "model", Layout("base", "v1"), "--user 4242");
  fs::create_directories(tmp_ / "elsewhere");
  fs::copy(tmp_ / "base", tmp_ / "elsewhere/base-copy", fs::copy_options::recursive);
  std::string a = BuildOk(tmp_ / "model", Layout("a"), "--base " + Layout("base", "v1"));
  std::string b = BuildOk(tmp_ / "model", Layout("b"),
                          "--base oci:" + (tmp_ / "elsewhere/base-copy").string() + ":v1");
  EXPECT_EQ(a, b);
  json raw = Skopeo("--raw", Layout("a"));
  json base_raw = Skopeo("--raw", Layout("base", "v1"));
  ASSERT_TRUE(raw.is_object());
  EXPECT_FALSE(raw["annotations"].contains("org.opencontainers.image.base.name")) << raw.dump();
  std::string base_digest;
  ASSERT_EQ(
      mc::testing::Run("skopeo manifest-digest " +
                           Quote(fs::path(tmp_ / "base/blobs/sha256" /
                                          json::parse(ReadFile(
                                              tmp_ / "base/index.json"))["manifests"][0]["digest"]
                                              .get<std::string>()
                                              .substr(7))
                                     .string()),
                       &base_digest, false),
      0);
  base_digest.pop_back();
  EXPECT_EQ(raw["annotations"]["org.opencontainers.image.base.digest"], base_digest);
  // The base's layers come first, unchanged.
  ASSERT_EQ(raw["layers"].size(), base_raw["layers"].size() + 1);
  for (size_t i = 0; i < base_raw["layers"].size(); ++i) {
    EXPECT_EQ(raw["layers"][i]["digest"], base_raw["layers"][i]["digest"]);
  }
  // The built-in base records no base annotation at all; two default builds agree.
  json plain = Skopeo("--raw", Layout("base", "v1"));
  EXPECT_FALSE(plain["annotations"].contains("org.opencontainers.image.base.name"));
  EXPECT_FALSE(plain["annotations"].contains("org.opencontainers.image.base.digest"));
  EXPECT_EQ(BuildOk(tmp_ / "model", Layout("d1")), BuildOk(tmp_ / "model", Layout("d2")));
}

TEST_F(KServeModelcarTest, BusyboxAndCompressionMessages) {
  std::string out;
  // No busybox where it is said to be: exit 4, one line saying how to fix it.
  EXPECT_EQ(Build(tmp_ / "model", Layout("nb"),
                  "--builtin-busybox " + Quote((tmp_ / "no-busybox").string()), &out),
            4)
      << out;
  EXPECT_NE(out.find("busybox-static"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  // A dynamically linked program instead: exit 2.
  EXPECT_EQ(Build(tmp_ / "model", Layout("dyn"), "--builtin-busybox /bin/ls", &out), 2) << out;
  EXPECT_NE(out.find("dynamically linked"), std::string::npos) << out;
  // The flag belongs to the built-in base only.
  EXPECT_EQ(
      Build(tmp_ / "model", Layout("sb"), "--base scratch --builtin-busybox /bin/busybox", &out), 2)
      << out;
  EXPECT_EQ(Build(tmp_ / "model", Layout("all"), "--platform all", &out), 2) << out;
  EXPECT_NE(out.find("--platform all"), std::string::npos) << out;
  // Another architecture than the busybox's.
  EXPECT_EQ(Build(tmp_ / "model", Layout("arm"), "--platform linux/s390x", &out), 2) << out;
  EXPECT_NE(out.find("--builtin-busybox"), std::string::npos) << out;

  // zstd: built, with a warning about KServe's oci+fetch:// mode (not an error with --strict).
  EXPECT_EQ(Build(tmp_ / "model", Layout("z"), "--compression zstd --strict", &out), 0) << out;
  EXPECT_NE(out.find("oci+fetch://"), std::string::npos) << out;
  json raw = Skopeo("--raw", Layout("z"));
  ASSERT_EQ(raw["layers"].size(), 2u);
  EXPECT_EQ(raw["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(Build(tmp_ / "model", Layout("g"), "", &out), 0) << out;
  EXPECT_EQ(out.find("warning"), std::string::npos) << out;

  // scratch stays available, with its warning.
  EXPECT_EQ(Build(tmp_ / "model", Layout("s"), "--base scratch", &out), 0) << out;
  EXPECT_NE(out.find("the base is scratch"), std::string::npos) << out;
  EXPECT_EQ(Skopeo("--raw", Layout("s"))["layers"].size(), 1u);
}

}  // namespace
}  // namespace mc::testing
