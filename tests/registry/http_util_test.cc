#include "registry/http_util.h"

#include <gtest/gtest.h>

#include "registry/log.h"

namespace mc::registry {
namespace {

UrlParts P(const std::string& url) { return ParseUrl(url).value(); }

TEST(HttpUtilTest, ParseUrl) {
  auto p = P("https://Quay.IO:8443/v2/x?y=1");
  EXPECT_EQ(p.scheme, "https");
  EXPECT_EQ(p.host, "quay.io");
  EXPECT_EQ(p.port, "8443");
  EXPECT_EQ(p.HostPort(), "quay.io:8443");
  EXPECT_EQ(P("http://[::1]:5000/").HostPort(), "[::1]:5000");
  EXPECT_EQ(P("http://[::1]:5000/").host, "::1");
  EXPECT_FALSE(ParseUrl("ftp://host/x"));
  EXPECT_FALSE(ParseUrl("not a url"));
}

TEST(HttpUtilTest, ResolveUrl) {
  EXPECT_EQ(ResolveUrl("https://a/v2/x/blobs/y", "/storage/z?sig=1").value(),
            "https://a/storage/z?sig=1");
  EXPECT_EQ(ResolveUrl("https://a/v2/x/blobs/y", "https://b:9/c").value(), "https://b:9/c");
  EXPECT_EQ(ResolveUrl("https://a/v2/x/blobs/y", "z").value(), "https://a/v2/x/blobs/z");
}

TEST(HttpUtilTest, AddressClasses) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST",
                        "reg.localhost", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"10.0.0.1", "quay.io", "128.0.0.1", "::2"}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
  for (const char* h :
       {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "fd00::1",
        "fe80::1", "::", "0.0.0.0", "::ffff:10.0.0.1", "127.0.0.1"}) {
    EXPECT_TRUE(IsInternalAddress(h)) << h;
  }
  for (const char* h : {"8.8.8.8", "172.32.0.1", "quay.io", "2001:db8::1", "192.169.0.1"}) {
    EXPECT_FALSE(IsInternalAddress(h)) << h;
  }
}

TEST(HttpUtilTest, UnsafeHostChanges) {
  auto reg = P("https://quay.io/v2/");
  EXPECT_FALSE(IsUnsafeHostChange(reg, P("https://s3.amazonaws.com/b?sig")));
  EXPECT_TRUE(IsUnsafeHostChange(reg, P("http://169.254.169.254/latest/meta-data")));
  EXPECT_TRUE(IsUnsafeHostChange(reg, P("http://10.0.0.5/")));
  EXPECT_TRUE(IsUnsafeHostChange(reg, P("http://127.0.0.1:8080/")));
  EXPECT_TRUE(IsUnsafeHostChange(reg, P("http://[fe80::1]/")));
  auto internal = P("https://10.0.0.5:5000/v2/");
  EXPECT_FALSE(IsUnsafeHostChange(internal, P("https://10.0.0.5:9000/storage")))
      << "same host, other port";
  EXPECT_TRUE(IsUnsafeHostChange(internal, P("https://10.0.0.6/")));
  EXPECT_FALSE(IsUnsafeHostChange(P("http://127.0.0.1:1/"), P("http://127.0.0.2:2/")))
      << "loopback to loopback (tests)";
  EXPECT_TRUE(IsUnsafeHostChange(P("http://127.0.0.1:1/"), P("http://192.168.0.1/")));
}

TEST(HttpUtilTest, RedactionAndAuthHeaders) {
  for (const char* h : {"Authorization", "proxy-authorization", "Cookie", "X-Registry-Auth",
                        "X-Auth-Token", "X-Amz-Security-Token", "x-api-key"}) {
    EXPECT_TRUE(IsAuthHeader(h)) << h;
  }
  for (const char* h : {"Range", "Accept", "Content-Type", "Location"}) {
    EXPECT_FALSE(IsAuthHeader(h)) << h;
  }
  EXPECT_EQ(RedactHeaderValue("Authorization", "Bearer abc.def"), "Bearer <redacted>");
  EXPECT_EQ(RedactHeaderValue("authorization", "Basic dXNlcjpwYXNz"), "Basic <redacted>");
  EXPECT_EQ(RedactHeaderValue("Cookie", "a=b c=d"), "<redacted>");
  EXPECT_EQ(RedactHeaderValue("set-cookie", "sess=1"), "<redacted>");
  EXPECT_EQ(RedactHeaderValue("location", "https://u:p@s3/x?X-Amz-Signature=1"), "https://s3/x?…");
  EXPECT_EQ(RedactHeaderValue("Content-Length", "12"), "12");
  EXPECT_EQ(RedactUrl("https://user:pw@host:5000/v2/x?token=abc"), "https://host:5000/v2/x?…");
}

TEST(HttpUtilTest, Base64AndUrlEncode) {
  EXPECT_EQ(Base64Encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_EQ(Base64Decode("dXNlcjpwYXNz"), "user:pass");
  EXPECT_EQ(Base64Decode("YQ=="), "a");
  EXPECT_EQ(Base64Decode("YWI="), "ab");
  EXPECT_EQ(Base64Decode(" YWJj\n"), "abc");
  EXPECT_EQ(Base64Decode("YWJ"), std::nullopt);
  EXPECT_EQ(Base64Decode("Y!!="), std::nullopt);
  EXPECT_EQ(UrlEncode("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
  EXPECT_EQ(UrlEncode("a-b_c.d~e f"), "a-b_c.d~e%20f");
}

}  // namespace
}  // namespace mc::registry
