#include "engine/model_registry.h"

#include <gtest/gtest.h>

namespace mc::engine {
namespace {

const std::string kDigA = "sha256:" + std::string(64, 'a');
const std::string kDigB = "sha256:" + std::string(64, 'b');

TEST(ModelRegistry, UriFromMetadataPrefersTheLastMirrorThenTheImage) {
  nlohmann::json doc = {{"image", {{"reference", "quay.io/org/m:v1"}, {"digest", kDigA}}}};
  EXPECT_EQ(*RegistrationUriFromMetadata(doc), "oci://quay.io/org/m@" + kDigA);
  doc["mirrors"] = nlohmann::json::array(
      {{{"reference", "docker://reg.internal:5000/org/m:v1"}, {"digest", kDigB}},
       {{"reference", "broken"}}});
  EXPECT_EQ(*RegistrationUriFromMetadata(doc), "oci://reg.internal:5000/org/m@" + kDigB);
  doc["mirrors"][0]["reference"] = "reg.internal:5000/org/m@" + kDigA;
  EXPECT_EQ(*RegistrationUriFromMetadata(doc), "oci://reg.internal:5000/org/m@" + kDigB);
  auto none = RegistrationUriFromMetadata(nlohmann::json{{"schemaVersion", 1}});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, oci::ErrorCode::kInvalidInput);
}

TEST(ModelRegistry, ValidateAndEscape) {
  RegistrationRequest r{.name = "m", .version = "1", .uri = "oci://h/r@" + kDigA};
  EXPECT_TRUE(ValidateRegistration(r));
  r.uri = "docker://h/r";
  EXPECT_FALSE(ValidateRegistration(r));
  r.uri = "oci://h/r@" + kDigA;
  r.version = "v\x01";
  EXPECT_FALSE(ValidateRegistration(r));
  EXPECT_EQ(QueryEscape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
  EXPECT_EQ(StringProperty("x"),
            (nlohmann::json{{"metadataType", "MetadataStringValue"}, {"string_value", "x"}}));
}

}  // namespace
}  // namespace mc::engine
