// RegistryClient::ListTags (inspect's RepoTags): all pages of tags/list in the
// registry's order, following Link rel="next" on the same registry only.
#include <gtest/gtest.h>

#include "registry/client.h"
#include "tests/support/fake_transport.h"

namespace mc::registry {
namespace {

using testing::FakeResponse;
using testing::FakeTransport;

struct Harness {
  std::shared_ptr<FakeTransport> t = std::make_shared<FakeTransport>();
  RegistryClient c{t, "http://reg.test", "reg.test", "org/m"};
};

TEST(ListTagsTest, FollowsNextLinksAcrossPages) {
  Harness h;
  h.t->Push(FakeResponse::Status(200, {{"Link", "</v2/org/m/tags/list?n=2&last=b>; rel=\"next\""}},
                                 R"({"name":"org/m","tags":["a","b"]})"));
  h.t->Push(FakeResponse::Status(200, {}, R"({"name":"org/m","tags":["c"]})"));
  auto tags = h.c.ListTags();
  ASSERT_TRUE(tags) << tags.error().message;
  EXPECT_EQ(*tags, (std::vector<std::string>{"a", "b", "c"}));
  auto reqs = h.t->Requests("GET");
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].url, "http://reg.test/v2/org/m/tags/list");
  EXPECT_EQ(reqs[1].url, "http://reg.test/v2/org/m/tags/list?n=2&last=b");
}

TEST(ListTagsTest, NullTagsIsEmpty) {
  Harness h;
  h.t->Push(FakeResponse::Status(200, {}, R"({"name":"org/m","tags":null})"));
  auto tags = h.c.ListTags();
  ASSERT_TRUE(tags) << tags.error().message;
  EXPECT_TRUE(tags->empty());
}

TEST(ListTagsTest, RefusalsAndForeignLinksAreErrors) {
  Harness denied;
  denied.t->Push(FakeResponse::Status(
      403, {}, R"({"errors":[{"code":"DENIED","message":"listing is not allowed"}]})"));
  auto r = denied.c.ListTags();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kUnauthorized);

  Harness foreign;
  foreign.t->Push(FakeResponse::Status(
      200, {{"Link", "<http://elsewhere.test/v2/org/m/tags/list?last=a>; rel=\"next\""}},
      R"({"tags":["a"]})"));
  auto f = foreign.c.ListTags();
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("leaves the registry"), std::string::npos) << f.error().message;
  EXPECT_EQ(foreign.t->Requests("GET").size(), 1u);

  Harness garbage;
  garbage.t->Push(FakeResponse::Status(200, {}, "<html>"));
  EXPECT_FALSE(garbage.c.ListTags());
}

}  // namespace
}  // namespace mc::registry
