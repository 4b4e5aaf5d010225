// The Tekton YAML, the step image's Containerfile and .containerignore pass
// the lint of tests/tekton/lint.py (the rules docs/tekton.md explains), and
// the lint does fail on each kind of mistake it exists to catch.
#include <filesystem>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/paths.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

class TektonLint : public ::testing::Test {
 protected:
  void SetUp() override {
    if (mc::testing::Run("python3 -c 'import yaml'") != 0) {
      GTEST_SKIP() << "python3-yaml (PyYAML) is not installed";
    }
  }
  int Lint(const fs::path& dir, const fs::path& containerfile, const fs::path& containerignore,
           std::string* out) {
    return mc::testing::Run("python3 " + Quote(SourceDir() / "tests/tekton/lint.py") + " " +
                                Quote(dir) + " --containerfile " + Quote(containerfile) +
                                " --containerignore " + Quote(containerignore),
                            out);
  }
  // A copy of tekton/, the Containerfile and .containerignore with `from` replaced by `to`
  // in `file`.
  fs::path Mutated(const std::string& file, const std::string& from, const std::string& to) {
    fs::path dir = tmp_ / ("case" + std::to_string(++cases_));
    fs::create_directories(dir / "tekton");
    fs::copy(SourceDir() / "tekton", dir / "tekton", fs::copy_options::recursive);
    fs::copy(SourceDir() / "images/Containerfile", dir / "Containerfile");
    fs::copy(SourceDir() / ".containerignore", dir / ".containerignore");
    fs::path target = dir / file;
    std::string text = ReadFile(target);
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from << " not in " << file;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    WriteFile(target, text);
    return dir;
  }
  void ExpectFails(const std::string& file, const std::string& from, const std::string& to,
                   const std::string& message) {
    fs::path dir = Mutated(file, from, to);
    std::string out;
    EXPECT_EQ(Lint(dir / "tekton", dir / "Containerfile", dir / ".containerignore", &out), 1)
        << file << ": " << out;
    EXPECT_NE(out.find(message), std::string::npos) << "expected \"" << message << "\" in: " << out;
  }

  TempDir tmp_;
  int cases_ = 0;
};

TEST_F(TektonLint, ShippedYamlAndContainerfilePass) {
  std::string out;
  EXPECT_EQ(Lint(SourceDir() / "tekton", SourceDir() / "images/Containerfile",
                 SourceDir() / ".containerignore", &out),
            0)
      << out;
  EXPECT_NE(out.find("lint ok: 4 tasks, 1 pipelines, 1 runs"), std::string::npos) << out;
}

TEST_F(TektonLint, CatchesEachMistake) {
  ExpectFails("tekton/pipeline.yaml", "      timeout: 15m\n", "", "has no explicit timeout");
  ExpectFails("tekton/pipelinerun-example.yaml", "pipeline: 23h", "pipeline: 2h",
              "less than the sum");
  // 4h + 4h + 3h + 15m fits without the retries, not with them.
  ExpectFails("tekton/pipelinerun-example.yaml", "tasks: 22h45m", "tasks: 11h30m",
              "a retry restarts its task's timeout");
  ExpectFails("tekton/pipelinerun-example.yaml", "tasks: 22h45m\n",
              "tasks: 22h15m\n    finally: 30m\n", "no finally tasks");
  ExpectFails("tekton/pipelinerun-example.yaml", "fsGroupChangePolicy: OnRootMismatch",
              "fsGroupChangePolicy: OnRootMismatch\n        fsGroup: 1001", "hard-codes fsGroup");
  ExpectFails("tekton/task-build-push.yaml", "        drop: [\"ALL\"]",
              "        drop: [\"NET_RAW\"]", "drop ALL capabilities");
  ExpectFails("tekton/task-mirror.yaml", "      runAsNonRoot: true\n", "", "runAsNonRoot: true");
  ExpectFails("tekton/task-download.yaml", "      allowPrivilegeEscalation: false\n",
              "      allowPrivilegeEscalation: false\n      privileged: true\n", "privileged");
  ExpectFails("tekton/task-build-push.yaml", "        mc-engine \"$@\"",
              "        buildah bud --storage-driver vfs .", "mentions buildah");
  ExpectFails("tekton/task-register.yaml", "          memory: 512Mi", "          memory: 128Mi",
              "no headroom");
  ExpectFails("tekton/task-register.yaml",
              "      computeResources:", "      resources:", "v1beta1 `resources`");
  ExpectFails("tekton/pipeline.yaml", "value: $(tasks.mirror.results.MIRROR_DIGEST)",
              "value: $(tasks.mirror.results.NOPE)", "unknown mirror.NOPE");
  ExpectFails("tekton/pipeline.yaml", "        - name: image\n          value: $(params.image)\n",
              "", "required param image");
  ExpectFails("tekton/task-mirror.yaml", "$(params.mirror-image)\" > ", "$(params.typo)\" > ",
              "undeclared param typo");
  ExpectFails("tekton/pipeline.yaml", "kind: Pipeline\n", "kind: Pipeline\n  bad: [\n",
              "invalid YAML");
  ExpectFails("Containerfile", "USER 1001", "USER root", "not a numeric non-root UID");
  ExpectFails("Containerfile", "ENTRYPOINT [\"mc-engine\"]", "ENTRYPOINT mc-engine", "ENTRYPOINT");
  ExpectFails("Containerfile", "ENTRYPOINT [\"mc-engine\"]", "ENTRYPOINT [\"sh\", \"-c\"]",
              "ENTRYPOINT");
  ExpectFails(".containerignore", "\n.git\n", "\n", "does not exclude .git");
  ExpectFails(".containerignore", "\nbuild\nbuild-*\n", "\n", "does not exclude build");
  ExpectFails("Containerfile", "FROM docker.io/library/debian:bookworm-slim\n", "",
              "is not multi-stage");
  ExpectFails("tekton/task-build-push.yaml", "      default: builtin", "      default: scratch",
              "defaults to scratch");
  ExpectFails("tekton/pipeline.yaml", "      default: builtin", "      default: scratch",
              "defaults to scratch");
  ExpectFails("Containerfile", "ca-certificates busybox-static", "ca-certificates",
              "installs no busybox-static");
}

}  // namespace
}  // namespace mc::testing
