// Runs the shipped Pipeline (tekton/) locally with tests/tekton/run_pipeline.py:
// every Task as a different UID sharing one fsGroup over a setgid workspace,
// against two loopback docker-registries (the first with htpasswd, its
// credentials in the dockerconfig workspace), the Hugging Face Hub test
// server and the Model Registry test server. Guards against the seed
// pipeline's cross-UID metadata failure with the real commands as the YAML
// calls them.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/process.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

constexpr gid_t kFsGroup = 52000;
constexpr uid_t kUidBase = 52001;

// The directory whose mc-engine the steps run (MC_TEKTON_BIN_DIR overrides).
fs::path BinDir() {
  const char* dir = std::getenv("MC_TEKTON_BIN_DIR");
  return dir && *dir ? fs::path(dir) : fs::path(EngineBinary()).parent_path();
}

std::string Json(const std::string& command) {
  std::string out;
  EXPECT_EQ(mc::testing::Run(command, &out, false), 0) << command;
  return out;
}

std::string SkopeoDigest(const std::string& ref, const std::string& flags) {
  std::string out =
      Json("timeout 60 skopeo inspect --tls-verify=false " + flags + " " + Quote(ref));
  return nlohmann::json::parse(out, nullptr, false).value("Digest", "");
}

class TektonPipelineRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the Tasks as other UIDs (setpriv)";
    if (mc::testing::Run("command -v setpriv && command -v skopeo && python3 -c 'import yaml'") !=
        0) {
      GTEST_SKIP() << "needs setpriv, skopeo and python3-yaml";
    }
    if (!fs::exists(SourceDir() / "tests/support/hub_server.py")) {
      GTEST_SKIP() << "tests/support/hub_server.py (the Hub test server) is not in this tree yet";
    }
    std::string engine = Quote(BinDir() / "mc-engine");
    for (const char* cmd : {"download", "build", "copy", "register", "metadata"}) {
      // (`mc-engine NOCMD --help` prints the main help and succeeds: look at the list.)
      if (mc::testing::Run(engine + " --help | grep -qE '^ +" + cmd + "( |$)'") != 0) {
        GTEST_SKIP() << "mc-engine has no '" << cmd
                     << "' command yet: the end-to-end Pipeline run needs download, build and "
                        "copy (re-enable by building a tree where they have landed)";
      }
    }
  }
};

TEST_F(TektonPipelineRun, WholePipelineAsDifferentUidsOverOneWorkspace) {
  TempDir tmp;
  fs::permissions(tmp.path(), fs::perms(0755));
  // A small model: one LFS-sized weights file, configs, and a README the
  // include globs leave out.
  fs::path model = tmp / "hub/tiny";
  std::string weights(300 * 1024, '\0');
  for (size_t i = 0; i < weights.size(); ++i)
    weights[i] = static_cast<char>((i * 2654435761u) >> 13);
  WriteFile(model / "model.safetensors", weights);
  WriteFile(model / "config.json", "{\"architectures\":[\"Tiny\"]}\n");
  WriteFile(model / "tokenizer.json", "{\"version\":\"1.0\"}\n");
  WriteFile(model / "README.md", "# tiny\n");

  RegistryOptions auth_opts;
  auth_opts.htpasswd = true;
  RegistryFixture quay(auth_opts);
  ASSERT_TRUE(quay.ok()) << quay.error();
  RegistryFixture internal;
  ASSERT_TRUE(internal.ok()) << internal.error();
  auto hub = StartPythonServer("hub_server.py", {"--repo", "org/tiny=" + model.string()});
  auto mr = StartPythonServer("model_registry_server.py", {"--token", "mr-token"});

  // Secret workspaces, readable by the task UIDs as Secret volumes are.
  fs::path dockerconfig = tmp / "dockerconfig";
  fs::create_directories(dockerconfig);
  fs::copy_file(quay.WriteAuthFile(quay.user(), quay.password()), dockerconfig / "config.json");
  WriteFile(tmp / "registry-token/token", "mr-token\n");
  ASSERT_EQ(mc::testing::Run("chmod -R a+rX " + Quote(dockerconfig) + " " +
                             Quote(tmp / "registry-token")),
            0);
  fs::path ws = tmp / "workspace";
  fs::create_directories(ws);

  std::string image = quay.host() + "/org/tiny:v1";
  std::string mirror = internal.host() + "/mirror/tiny:v1";
  std::string cmd =
      "timeout 600 python3 " + Quote(SourceDir() / "tests/tekton/run_pipeline.py") + " --tekton " +
      Quote(SourceDir() / "tekton") + " --fs-group " + std::to_string(kFsGroup) + " --uid-base " +
      std::to_string(kUidBase) + " --bin-dir " + Quote(BinDir()) +
      " --max-task-seconds 180 --workspace source=" + Quote(ws) +
      " --workspace dockerconfig=" + Quote(dockerconfig) +
      " --workspace registry-token=" + Quote(tmp / "registry-token") +
      " --param hf-model=org/tiny --param hf-revision=main" +
      " --param hf-endpoint=http://127.0.0.1:" + std::to_string(hub->port()) +
      " --param include='*.safetensors,*.json' --param image=" + image +
      " --param tls-verify=false --param mirror-image=" + mirror +
      " --param mirror-tls-verify=false --param model-registry-url=http://127.0.0.1:" +
      std::to_string(mr->port()) +
      " --param model-name=tiny --param model-version=1 --param model-format=vLLM";
  std::string out;
  int rc = mc::testing::Run(cmd, &out, false);
  nlohmann::json run = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(run.is_discarded()) << out;
  std::string logs;
  for (auto& [name, t] : run["tasks"].items()) logs += t.value("log", "");
  ASSERT_EQ(rc, 0) << logs;
  ASSERT_EQ(run["status"], "Succeeded") << logs;

  // Every task ran, each as its own UID.
  std::set<int> uids;
  for (const char* t : {"download", "build-push", "mirror", "register"}) {
    ASSERT_EQ(run["tasks"][t]["status"], "Succeeded") << t;
    uids.insert(run["tasks"][t]["uid"].get<int>());
  }
  EXPECT_EQ(uids.size(), 4u);

  // Results agree with independent clients.
  std::string digest = run["results"].value("IMAGE_DIGEST", "");
  ASSERT_TRUE(digest.starts_with("sha256:")) << run.dump();
  EXPECT_EQ(run["results"]["IMAGE_URL"], image);
  EXPECT_EQ(SkopeoDigest("docker://" + image, "--creds " + quay.user() + ":" + quay.password()),
            digest);
  EXPECT_EQ(run["results"]["MIRROR_DIGEST"], digest);
  EXPECT_EQ(SkopeoDigest("docker://" + mirror, ""), digest);

  // publish-metadata.json has every task's record.
  fs::path meta = ws / ".pipeline-metadata/publish-metadata.json";
  nlohmann::json doc = nlohmann::json::parse(ReadFile(meta));
  EXPECT_EQ(doc["schemaVersion"], 1);
  EXPECT_EQ(doc["image"]["digest"], digest);
  ASSERT_FALSE(doc["mirrors"].empty());
  EXPECT_EQ(doc["mirrors"].back()["digest"], digest);
  ASSERT_EQ(doc["registrations"].size(), 1u);
  EXPECT_EQ(doc["registrations"][0]["uri"], "oci://" + internal.host() + "/mirror/tiny@" + digest);
  EXPECT_EQ(run["tasks"]["download"]["results"]["MODEL_REVISION"], doc["model"]["revision"]);

  // The metadata stayed shared after four UIDs wrote it.
  struct stat st {};
  ASSERT_EQ(::stat(meta.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0664u);
  EXPECT_EQ(st.st_gid, kFsGroup);
  ASSERT_EQ(::stat(meta.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 02775u);
  EXPECT_EQ(st.st_gid, kFsGroup);

  // The Model Registry holds one model, one version, one artifact.
  nlohmann::json state = nlohmann::json::parse(
      Json("curl -sf http://127.0.0.1:" + std::to_string(mr->port()) + "/_test/state"));
  EXPECT_EQ(state["registeredModels"].size(), 1u);
  EXPECT_EQ(state["modelVersions"].size(), 1u);
  ASSERT_EQ(state["artifacts"].size(), 1u);
  EXPECT_EQ(state["artifacts"][0]["uri"], doc["registrations"][0]["uri"]);
}

}  // namespace
}  // namespace mc::testing
