// `mc-engine register` against the loopback Model Registry test server
// (tests/support/model_registry_server.py, protocols.md 6): idempotence,
// conflicts, authentication, the 409 race, and the metadata record.
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/process.h"

namespace mc::testing {
namespace {

constexpr char kUri[] =
    "oci://127.0.0.1:5000/org/model@sha256:"
    "1111111111111111111111111111111111111111111111111111111111111111";
constexpr char kOtherUri[] =
    "oci://127.0.0.1:5000/org/model@sha256:"
    "2222222222222222222222222222222222222222222222222222222222222222";

class RegisterTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> args = {}) {
    server_ = StartPythonServer("model_registry_server.py", std::move(args));
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
    WriteFile(tmp_ / "token", "test-token\n");
  }
  void SetUp() override { Start(); }

  int Register(const std::string& extra, std::string* out = nullptr, bool token = true) {
    std::string cmd = Quote(EngineBinary()) + " register --url " + url_ +
                      " --name granite --version 1.0.0 --retry-times 0 " +
                      (token ? "--token-file " + Quote(tmp_ / "token") + " " : "") + extra;
    return mc::testing::Run("timeout 30 " + cmd, out);
  }

  nlohmann::json State() {
    std::string out;
    EXPECT_EQ(mc::testing::Run("curl -sf " + url_ + "/_test/state", &out, false), 0);
    return nlohmann::json::parse(out);
  }

  TempDir tmp_;
  std::unique_ptr<Subprocess> server_;
  std::string url_;
};

TEST_F(RegisterTest, TwiceGivesOneModelOneVersionOneArtifact) {
  std::string out;
  ASSERT_EQ(Register("--uri " + std::string(kUri) +
                         " --description d --property team=ml --model-format vLLM:1",
                     &out),
            0)
      << out;
  EXPECT_NE(out.find("created"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(Register("--uri " + std::string(kUri), &out), 0) << out;
  EXPECT_EQ(out.find("created"), std::string::npos) << out;

  nlohmann::json s = State();
  ASSERT_EQ(s["registeredModels"].size(), 1u);
  ASSERT_EQ(s["modelVersions"].size(), 1u);
  ASSERT_EQ(s["artifacts"].size(), 1u);
  const auto& model = s["registeredModels"][0];
  const auto& version = s["modelVersions"][0];
  const auto& artifact = s["artifacts"][0];
  EXPECT_EQ(model["name"], "granite");
  EXPECT_EQ(version["name"], "1.0.0");
  EXPECT_EQ(version["registeredModelId"], model["id"]);
  EXPECT_EQ(version["customProperties"]["team"],
            (nlohmann::json{{"metadataType", "MetadataStringValue"}, {"string_value", "ml"}}));
  EXPECT_EQ(artifact["uri"], kUri);
  EXPECT_EQ(artifact["artifactType"], "model-artifact");
  EXPECT_EQ(artifact["modelFormatName"], "vLLM");
  EXPECT_EQ(artifact["modelFormatVersion"], "1");
  // The second run only looked things up.
  int posts = 0;
  for (const auto& r : s["requests"]) posts += r.get<std::string>().starts_with("POST");
  EXPECT_EQ(posts, 3);
}

TEST_F(RegisterTest, ConflictingUriIsRefusedUnlessAllowUpdate) {
  ASSERT_EQ(Register("--uri " + std::string(kUri)), 0);
  std::string out;
  EXPECT_EQ(Register("--uri " + std::string(kOtherUri), &out), 2) << out;
  EXPECT_NE(out.find("--allow-update"), std::string::npos) << out;
  EXPECT_EQ(State()["artifacts"][0]["uri"], kUri);
  out.clear();
  ASSERT_EQ(Register("--uri " + std::string(kOtherUri) + " --allow-update", &out), 0) << out;
  nlohmann::json s = State();
  ASSERT_EQ(s["artifacts"].size(), 1u);
  EXPECT_EQ(s["artifacts"][0]["uri"], kOtherUri);
  EXPECT_EQ(s["modelVersions"].size(), 1u);
}

TEST_F(RegisterTest, MissingOrWrongTokenExits3AndTokenIsNotPrinted) {
  std::string out;
  EXPECT_EQ(Register("--uri " + std::string(kUri), &out, /*token=*/false), 3) << out;
  EXPECT_NE(out.find("--token-file"), std::string::npos) << out;
  WriteFile(tmp_ / "bad", "s3cr3t-wrong\n");
  out.clear();
  EXPECT_EQ(Register("--uri " + std::string(kUri) + " --token-file " + Quote(tmp_ / "bad"), &out,
                     /*token=*/false),
            3)
      << out;
  EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;
  EXPECT_TRUE(State()["registeredModels"].empty());
}

TEST_F(RegisterTest, RaceWithAnotherWriterIsResolvedByFindingAgain) {
  server_.reset();
  Start({"--stale-finds", "1"});  // the model and version finds miss once each
  std::string out;
  ASSERT_EQ(Register("--uri " + std::string(kUri)), 0);
  ASSERT_EQ(Register("--uri " + std::string(kUri), &out), 0) << out;  // POSTs get 409
  nlohmann::json s = State();
  EXPECT_EQ(s["registeredModels"].size(), 1u);
  EXPECT_EQ(s["modelVersions"].size(), 1u);
  EXPECT_EQ(s["artifacts"].size(), 1u);
  int model_posts = 0, version_posts = 0;
  for (const auto& r : s["requests"]) {
    model_posts += r == "POST /api/model_registry/v1alpha3/registered_models";
    version_posts += r == "POST /api/model_registry/v1alpha3/model_versions";
  }
  EXPECT_EQ(model_posts, 2);  // the second one got 409 and the client found the model again
  EXPECT_EQ(version_posts, 2);
}

TEST_F(RegisterTest, UriFromMetadataAndIdsRecorded) {
  auto meta = tmp_ / "ws/.pipeline-metadata/publish-metadata.json";
  std::string digest = std::string(kUri).substr(std::string(kUri).find('@') + 1);
  ASSERT_EQ(
      mc::testing::Run(Quote(EngineBinary()) + " metadata set " + Quote(meta) +
                       " image.reference=quay.example/org/model:v1 image.digest=sha256:" +
                       std::string(64, 'a') + " model.source=hf://org/model model.revision=abc123"),
      0);
  ASSERT_EQ(
      mc::testing::Run(Quote(EngineBinary()) + " metadata append " + Quote(meta) +
                       " mirrors '{\"reference\":\"127.0.0.1:5000/org/model:v1\",\"digest\":\"" +
                       digest + "\"}'"),
      0);
  std::string out;
  ASSERT_EQ(Register("--metadata " + Quote(meta), &out), 0) << out;
  ASSERT_EQ(Register("--metadata " + Quote(meta), &out), 0) << out;
  nlohmann::json s = State();
  ASSERT_EQ(s["artifacts"].size(), 1u);
  EXPECT_EQ(s["artifacts"][0]["uri"], kUri);  // the mirror, pinned by digest
  EXPECT_EQ(s["artifacts"][0]["modelSourceKind"], "huggingface");
  EXPECT_EQ(s["artifacts"][0]["modelSourceName"], "org/model");
  auto doc = nlohmann::json::parse(ReadFile(meta));
  ASSERT_EQ(doc["registrations"].size(), 1u);  // a re-run replaces its entry
  const auto& r = doc["registrations"][0];
  EXPECT_EQ(r["registeredModelId"], s["registeredModels"][0]["id"]);
  EXPECT_EQ(r["modelVersionId"], s["modelVersions"][0]["id"]);
  EXPECT_EQ(r["modelArtifactId"], s["artifacts"][0]["id"]);
  EXPECT_EQ(r["uri"], kUri);
  EXPECT_EQ(doc["image"]["reference"], "quay.example/org/model:v1");  // kept
}

TEST_F(RegisterTest, BadInputsExit2BeforeAnyRequest) {
  std::string out;
  EXPECT_EQ(Register("--uri https://not-oci/x", &out), 2) << out;
  EXPECT_EQ(Register("", &out), 2) << out;  // neither --uri nor --metadata
  EXPECT_EQ(Register("--uri " + std::string(kUri) + " --property novalue", &out), 2) << out;
  WriteFile(tmp_ / "empty.json", "{\"schemaVersion\":1}");
  EXPECT_EQ(Register("--metadata " + Quote(tmp_ / "empty.json"), &out), 2) << out;
  EXPECT_TRUE(State()["requests"].empty());
}

}  // namespace
}  // namespace mc::testing
