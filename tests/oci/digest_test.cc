#include "oci/digest.h"

#include <gtest/gtest.h>

namespace mc::oci {
namespace {

TEST(DigestTest, ParsesStrictSha256) {
  auto d = Digest::Parse("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->hex(), "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(d->Short(), "sha256:44136fa355b3");
}

TEST(DigestTest, RejectsBadDigests) {
  const char* bad[] = {
      "",
      "sha256:",
      "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
      "sha256:44136FA355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
      "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8",
      "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a0",
      "sha512:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
      "sha256:g4136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  };
  for (const char* s : bad) {
    auto d = Digest::Parse(s);
    EXPECT_FALSE(d) << s;
    if (!d) {
      EXPECT_EQ(d.error().code, ErrorCode::kInvalidInput);
    }
  }
}

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Digest::Of("").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest::Of("{}").hex(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(Digest::Of("abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, StreamingEqualsOneShotAndFinishIsRepeatable) {
  std::string data(1 << 20, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + 7);
  Digester dg;
  for (size_t off = 0; off < data.size(); off += 4097) {
    dg.Update(AsBytes(std::string_view(data).substr(off, 4097)));
  }
  EXPECT_EQ(dg.Finish(), Digest::Of(data));
  EXPECT_EQ(dg.Finish(), Digest::Of(data));
  EXPECT_EQ(dg.bytes(), data.size());
}

TEST(VerifyingReaderTest, PassesMatchingContent) {
  std::string data = "hello world";
  VerifyingReader r(std::make_unique<StringReader>(data), Digest::Of(data),
                    static_cast<int64_t>(data.size()), "blob");
  auto all = ReadAll(r);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, data);
}

TEST(VerifyingReaderTest, FailsOnDigestMismatch) {
  VerifyingReader r(std::make_unique<StringReader>("hello world"), Digest::Of("hello worle"), 11,
                    "blob x");
  auto all = ReadAll(r);
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code, ErrorCode::kVerificationFailed);
  EXPECT_NE(all.error().message.find("digest mismatch"), std::string::npos);
}

TEST(VerifyingReaderTest, FailsOnSizeMismatch) {
  std::string data = "hello";
  VerifyingReader shorter(std::make_unique<StringReader>(data), Digest::Of(data), 6, "blob");
  EXPECT_EQ(ReadAll(shorter).error().code, ErrorCode::kVerificationFailed);
  VerifyingReader longer(std::make_unique<StringReader>(data), Digest::Of(data), 4, "blob");
  EXPECT_EQ(ReadAll(longer).error().code, ErrorCode::kVerificationFailed);
}

}  // namespace
}  // namespace mc::oci
