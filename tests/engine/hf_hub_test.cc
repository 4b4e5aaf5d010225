// Hub client, Downloader and OpenHfModel against an in-memory Hub behind the
// Transport seam (the integration tests use the real server and libcurl).
#include "engine/hf_hub.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <mutex>
#include <set>

#include <openssl/sha.h>
#include <nlohmann/json.hpp>

#include "engine/download.h"
#include "engine/executor.h"
#include "oci/digest.h"
#include "tests/support/paths.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;
using registry::HttpRequest;
using registry::HttpResponse;

std::string GitOid(const std::string& content) {
  std::string blob = "blob " + std::to_string(content.size()) + std::string(1, '\0') + content;
  unsigned char out[20];
  SHA1(reinterpret_cast<const unsigned char*>(blob.data()), blob.size(), out);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : out) hex += std::string{kHex[c >> 4], kHex[c & 15]};
  return hex;
}

// A Hub at http://hub.test and a CDN at http://cdn.test, in memory.
class FakeHub final : public registry::Transport {
 public:
  struct Seen {
    std::string method, url, range;
    bool auth = false;
  };
  std::map<std::string, std::string> files;  // path -> content; >= 1000 bytes: LFS
  std::string commit = std::string(40, 'c');
  size_t page_size = 2;
  int rate_limited = 0;       // first N API calls answer 429 (RateLimit t=0)
  std::string corrupt;        // this file's bytes are flipped on the CDN
  std::string gone;           // the CDN answers 404 for this file
  bool ignore_range = false;  // the CDN answers ranged GETs with 200
  // Presigned URLs the CDN honours once (each HEAD signs a new one); a used
  // one gets 403 and calls on_refused (under the hub's lock).
  bool single_use = false;
  std::set<std::string> used;
  std::function<void()> on_refused;
  int heads = 0;

  oci::Result<HttpResponse> Send(HttpRequest req) override {
    std::lock_guard lock(mu_);
    Seen s{req.method, req.url, "", false};
    for (const auto& [k, v] : req.headers) {
      if (k == "Range") s.range = v;
      if (k == "Authorization") s.auth = true;
    }
    seen.push_back(s);
    if (req.url.starts_with("http://cdn.test/")) return Cdn(req.url.substr(16), s.range);
    std::string path = req.url.substr(std::string("http://hub.test").size());
    if (path.starts_with("/api/") && rate_limited-- > 0) {
      return Reply(429, "", {{"ratelimit", "\"api\";r=0;t=0"}});
    }
    if (path == "/api/models/org/m/revision/main") {
      return Reply(200, nlohmann::json{{"sha", commit}}.dump());
    }
    if (path.starts_with("/api/models/org/m/tree/" + commit)) return Tree(path);
    std::string resolve = "/org/m/resolve/" + commit + "/";
    if (path.starts_with(resolve)) return Resolve(req, path.substr(resolve.size()), s.range);
    return Reply(404, "", {{"x-error-code", "RepoNotFound"}});
  }

  std::vector<Seen> seen;
  std::vector<Seen> SeenCopy() {  // while other threads may still send
    std::lock_guard lock(mu_);
    return seen;
  }

 private:
  static HttpResponse Reply(int status, std::string body, registry::Headers headers = {}) {
    HttpResponse r;
    r.status = status;
    r.headers = std::move(headers);
    r.body = std::make_unique<oci::StringReader>(std::move(body));
    return r;
  }
  nlohmann::json Entry(const std::string& path, const std::string& content) {
    nlohmann::json e = {
        {"type", "file"}, {"path", path}, {"size", content.size()}, {"oid", GitOid(content)}};
    if (content.size() >= 1000) {
      e["lfs"] = {{"oid", oci::Digest::Of(content).hex()}, {"size", content.size()}};
    }
    return e;
  }
  HttpResponse Tree(const std::string& path) {
    size_t cursor = 0;
    if (auto p = path.find("cursor="); p != std::string::npos)
      cursor = std::stoul(path.substr(p + 7));
    nlohmann::json page = nlohmann::json::array();
    size_t i = 0;
    for (const auto& [name, content] : files) {
      if (i >= cursor && i < cursor + page_size) page.push_back(Entry(name, content));
      ++i;
    }
    registry::Headers h;
    if (cursor + page_size < files.size()) {
      h.emplace_back("link", "<http://hub.test/api/models/org/m/tree/" + commit +
                                 "?recursive=true&cursor=" + std::to_string(cursor + page_size) +
                                 ">; rel=\"next\"");
    }
    return Reply(200, page.dump(), h);
  }
  HttpResponse Ranged(const std::string& content, const std::string& range) {
    if (range.empty() || ignore_range) return Reply(200, content);
    uint64_t a = std::stoull(range.substr(6));
    uint64_t b = std::stoull(range.substr(range.find('-') + 1));
    return Reply(206, content.substr(a, b - a + 1),
                 {{"content-range", "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" +
                                        std::to_string(content.size())}});
  }
  HttpResponse Resolve(const HttpRequest& req, const std::string& path, const std::string& range) {
    auto it = files.find(path);
    if (it == files.end()) return Reply(404, "", {{"x-error-code", "EntryNotFound"}});
    if (req.method == "HEAD") ++heads;
    if (it->second.size() >= 1000) {
      std::string sig = single_use ? "s" + std::to_string(heads) : "s";
      return Reply(302, "",
                   {{"location", "http://cdn.test/" + path + "?X-Amz-Signature=" + sig},
                    {"x-linked-size", std::to_string(it->second.size())},
                    {"x-linked-etag", "\"" + oci::Digest::Of(it->second).hex() + "\""}});
    }
    if (req.method == "HEAD") return Reply(200, "");
    return Ranged(it->second, range);
  }
  HttpResponse Cdn(const std::string& rest, const std::string& range) {
    std::string path = rest.substr(0, rest.find('?'));
    if (single_use) {
      std::string sig = rest.substr(rest.find("X-Amz-Signature=") + 16);
      if (!used.insert(sig).second) {
        if (on_refused) on_refused();
        return Reply(403, "<Error><Code>AccessDenied</Code></Error>");
      }
    }
    if (path == gone) return Reply(404, "<Error><Code>NoSuchKey</Code></Error>");
    std::string content = files.at(path);
    if (path == corrupt) content[content.size() / 2] ^= 1;
    return Ranged(content, range);
  }

  std::mutex mu_;
};

HfClientOptions Options(std::string token = "") {
  HfClientOptions o;
  o.endpoint = "http://hub.test";
  o.token = std::move(token);
  o.backoff.base = std::chrono::milliseconds(1);
  return o;
}

std::shared_ptr<FakeHub> MakeHub() {
  auto hub = std::make_shared<FakeHub>();
  hub->files = {{"config.json", "{}"},
                {"a/b/weights.bin", std::string(300000, 'w') + "tail"},
                {"a/c.txt", "small"},
                {"big.safetensors", std::string(1 << 20, 'x') + "y"},
                {"empty", ""}};
  return hub;
}

TEST(HfSourceTest, ParsesAndRejects) {
  auto r = ParseHfSource("hf://org/name@refs/pr/1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->repo_id, "org/name");
  EXPECT_EQ(r->revision, "refs/pr/1");
  EXPECT_EQ(ParseHfSource("hf://gpt2")->revision, "main");
  for (const char* bad : {"org/name", "hf://", "hf://a/b/c", "hf://org/na me", "hf://org/x@",
                          "hf://datasets/a/b", "hf://org/-x", "hf://org/a..b"}) {
    auto e = ParseHfSource(bad);
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().code, ErrorCode::kInvalidInput);
    EXPECT_NE(e.error().message.find("hf://ORG/NAME"), std::string::npos) << e.error().message;
  }
}

TEST(HfGlobTest, FollowsHuggingfaceHubSemantics) {
  struct Case {
    const char *pattern, *path;
    bool match;
  } cases[] = {
      {"*.json", "config.json", true},
      {"*.json", "a/b/config.json", true},
      {"*.safetensors", "model.bin", false},
      {"sub/", "sub/x/y.bin", true},
      {"sub/", "subx/y.bin", false},
      {"sub/*", "sub/y", true},
      {"model-?.bin", "model-1.bin", true},
      {"model-?.bin", "model-12.bin", false},
      {"[ab].txt", "a.txt", true},
      {"[!ab].txt", "a.txt", false},
      {"[!ab].txt", "c.txt", true},
      {"[a-c]x", "bx", true},
      {"[", "[", true},
      {"config.json", "a/config.json", false},
      {"*", "anything/at/all", true},
      {"a*b*c", "aXXbYYc", true},
      {"a*b*c", "aXXbYY", false},
      {"*.JSON", "config.json", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(HfGlobMatch(c.pattern, c.path), c.match) << c.pattern << " vs " << c.path;
  }
  std::vector<HfFile> files = {{"a.json"}, {"b/c.json"}, {"b/d.bin"}, {"e.bin"}};
  auto kept = FilterHfFiles(files, {"*.json", "b/"}, {"b/c*"});
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].path, "a.json");
  EXPECT_EQ(kept[1].path, "b/d.bin");
  EXPECT_EQ(FilterHfFiles(files, {}, {}).size(), 4u);
}

TEST(HfHeadersTest, LinkRetryAfterOrigin) {
  EXPECT_EQ(HfNextLink("<https://h/x?cursor=abc>; rel=\"next\""), "https://h/x?cursor=abc");
  EXPECT_EQ(HfNextLink("<https://h/p>; rel=\"prev\", <https://h/n>; rel=\"next\""), "https://h/n");
  EXPECT_EQ(HfNextLink("<https://h/p>; rel=\"prev\""), "");
  EXPECT_EQ(HfNextLink(""), "");
  HttpResponse r;
  r.headers = {{"ratelimit", "\"api\";r=0;t=42"}};
  EXPECT_EQ(HfRetryAfter(r), std::chrono::seconds(42));
  r.headers = {{"retry-after", "7"}};
  EXPECT_EQ(HfRetryAfter(r), std::chrono::seconds(7));
  r.headers = {};
  EXPECT_FALSE(HfRetryAfter(r));
  EXPECT_EQ(UrlOrigin("https://HF.co/a?b"), "https://hf.co:443");
  EXPECT_EQ(UrlOrigin("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
  EXPECT_EQ(UrlOrigin("http://user:pw@h"), "http://h:80");
  EXPECT_EQ(HfUrlEncode("refs/pr/1", false), "refs%2Fpr%2F1");
  EXPECT_EQ(HfUrlEncode("a b/c.json", true), "a%20b/c.json");
}

TEST(HfClientTest, ErrorsMapToExitCodesWithAdvice) {
  HfClient client(MakeHub(), Options());
  struct Case {
    int status;
    const char* code;
    ErrorCode want;
    const char* says;
  } cases[] = {
      {401, "GatedRepo", ErrorCode::kUnauthorized, "http://hub.test/org/m"},
      {403, "GatedRepo", ErrorCode::kUnauthorized, "gated"},
      {401, "RepoNotFound", ErrorCode::kNotFound, "set HF_TOKEN"},
      {404, "RevisionNotFound", ErrorCode::kNotFound, "revision"},
      {404, "EntryNotFound", ErrorCode::kNotFound, "not in this revision"},
      {401, "", ErrorCode::kUnauthorized, "HF_TOKEN"},
      {403, "", ErrorCode::kUnauthorized, "permission"},
      {404, "", ErrorCode::kNotFound, "check"},
      {503, "", ErrorCode::kNetwork, "later"},
  };
  for (const auto& c : cases) {
    HttpResponse r;
    r.status = c.status;
    if (*c.code) r.headers = {{"x-error-code", c.code}};
    oci::Error e = client.ErrorFor(r, "org/m revision main", "org/m");
    EXPECT_EQ(e.code, c.want) << c.status << " " << c.code;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << e.message;
  }
}

TEST(HfClientTest, PaginatesAndSendsTheTokenOnlyToTheHub) {
  auto hub = MakeHub();
  hub->rate_limited = 1;
  HfClient client(hub, Options("hf_tok"));
  auto commit = client.ResolveCommit({"org/m", "main"});
  ASSERT_TRUE(commit) << commit.error().message;
  auto files = client.ListFiles("org/m", *commit);
  ASSERT_TRUE(files) << files.error().message;
  ASSERT_EQ(files->size(), 5u);  // three pages of two
  FileLocation loc;
  loc.repo_id = "org/m";
  loc.commit = *commit;
  loc.file = (*files)[2];  // big.safetensors (map order)
  ASSERT_EQ(loc.file.path, "big.safetensors");
  ASSERT_TRUE(client.Locate(loc));
  EXPECT_TRUE(loc.url.starts_with("http://cdn.test/"));
  std::string got;
  ASSERT_TRUE(client.FetchRange(loc, 10, 20, [&](uint64_t, std::span<const std::byte> d) {
    got += oci::AsString(d);
    return oci::Result<void>{};
  }));
  EXPECT_EQ(got, std::string(20, 'x'));
  int hub_calls = 0;
  for (const auto& s : hub->seen) {
    if (s.url.starts_with("http://cdn.test/")) {
      EXPECT_FALSE(s.auth) << "token sent to the CDN: " << s.url;
      EXPECT_EQ(s.range, "bytes=10-29");
    } else {
      EXPECT_TRUE(s.auth) << s.url;
      ++hub_calls;
    }
  }
  EXPECT_EQ(hub_calls, 1 + 1 + 3 + 1);  // 429, revision, 3 tree pages, HEAD
}

// Points `loc` at the hub's big.safetensors and locates it (the first URL).
void LocateBig(const HfClient& client, FakeHub& hub, FileLocation& loc) {
  loc.repo_id = "org/m";
  loc.commit = hub.commit;
  const std::string& big = hub.files["big.safetensors"];
  loc.file = HfFile{"big.safetensors", big.size(), GitOid(big), oci::Digest::Of(big).hex()};
  auto r = client.Locate(loc);
  ASSERT_TRUE(r) << r.error().message;
}

// Fetches of one file share its URL. A 403 for a URL another fetch has
// replaced meanwhile is not this fetch's failure: it takes the new URL
// without spending a re-resolve (five replaced URLs in a row, budget three).
TEST(HfClientTest, AUrlReplacedByAnotherFetchCostsNoReresolve) {
  auto hub = MakeHub();
  hub->single_use = true;
  HfClient client(hub, Options());
  FileLocation loc;
  LocateBig(client, *hub, loc);
  hub->used = {"s1", "r1", "r2", "r3", "r4"};  // other fetches used them first
  int replaced = 0;
  hub->on_refused = [&] {  // ... and published the next one meanwhile
    std::lock_guard lock(loc.mu);
    loc.url = "http://cdn.test/big.safetensors?X-Amz-Signature=" +
              (++replaced < 5 ? "r" + std::to_string(replaced) : std::string("good"));
    ++loc.generation;
  };
  std::string got;
  auto r = client.FetchRange(loc, 0, 10, [&](uint64_t, std::span<const std::byte> d) {
    got += oci::AsString(d);
    return oci::Result<void>{};
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(got, hub->files["big.safetensors"].substr(0, 10));
  EXPECT_EQ(replaced, 5);
  EXPECT_EQ(hub->heads, 1);  // no re-resolve of our own
}

// A refused URL nobody replaced: this fetch resolves one for itself, uses it
// (a URL honoured once still works), then shares it; when every fresh URL is
// refused too, three re-resolves are the limit.
TEST(HfClientTest, AnExpiredUrlIsResolvedForTheFetchThenShared) {
  auto hub = MakeHub();
  hub->single_use = true;
  HfClient client(hub, Options());
  FileLocation loc;
  LocateBig(client, *hub, loc);
  hub->used = {"s1"};
  auto sink = [](uint64_t, std::span<const std::byte>) { return oci::Result<void>{}; };
  ASSERT_TRUE(client.FetchRange(loc, 0, 10, sink));
  EXPECT_EQ(hub->heads, 2);
  EXPECT_TRUE(loc.url.ends_with("X-Amz-Signature=s2")) << loc.url;  // shared once it worked
  EXPECT_EQ(loc.generation, 2u);

  hub->on_refused = nullptr;
  for (int i = 1; i <= 10; ++i) hub->used.insert("s" + std::to_string(i));  // all refused
  auto r = client.FetchRange(loc, 0, 10, sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnauthorized) << r.error().message;
  EXPECT_EQ(hub->heads, 2 + 3);
}

TEST(DownloaderTest, SegmentsInParallelAndVerifies) {
  auto hub = MakeHub();
  hub->ignore_range = false;
  mc::testing::TempDir dir;
  DownloadOptions o;
  o.source = "hf://org/m";
  o.dir = dir.path();
  o.jobs = 4;
  o.segment_size = 64 << 10;
  o.hub = Options();
  auto r = Download(hub, o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->commit, hub->commit);
  EXPECT_EQ(r->files, 5u);
  for (const auto& [path, content] : hub->files) {
    EXPECT_TRUE(mc::testing::ReadFile(dir / path) == content) << path;
  }
  // Again: nothing fetched.
  size_t before = hub->seen.size();
  auto again = Download(hub, o);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->bytes_transferred, 0u);
  EXPECT_EQ(again->files_skipped, 5u);
  EXPECT_EQ(hub->seen.size() - before, 1u + 3u);  // revision + tree pages
}

TEST(DownloaderTest, IgnoredRangeAndCorruptionAreHandled) {
  auto hub = MakeHub();
  hub->ignore_range = true;
  mc::testing::TempDir dir;
  DownloadOptions o{"hf://org/m", dir.path()};
  o.segment_size = 64 << 10;
  o.hub = Options();
  ASSERT_TRUE(Download(hub, o));
  EXPECT_TRUE(mc::testing::ReadFile(dir / "big.safetensors") == hub->files["big.safetensors"]);

  auto bad = MakeHub();
  bad->corrupt = "big.safetensors";
  mc::testing::TempDir dir2;
  o.dir = dir2.path();
  auto r = Download(bad, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kVerificationFailed);
  EXPECT_FALSE(std::filesystem::exists(dir2 / "big.safetensors"));
}

std::string ReadEntry(const ModelInput& in, const std::string& name, oci::Error* err) {
  for (const auto& e : in.entries) {
    if (e.name != name) continue;
    auto reader = in.content(e);
    if (!reader) {
      *err = reader.error();
      return "";
    }
    std::string out;
    std::vector<std::byte> buf(4096);
    for (;;) {
      auto n = (*reader)->Read(buf);
      if (!n) {
        *err = n.error();
        return out;
      }
      if (*n == 0) return out;
      out.append(oci::AsString(std::span(buf).first(*n)));
    }
  }
  return "";
}

// OpenHfModel over `hub` with 64 KiB segments and `prefetch` workers.
oci::Result<ModelInput> OpenStreamed(const std::shared_ptr<FakeHub>& hub, int prefetch) {
  HfModelOptions o;
  o.hub = Options();
  o.segment_size = 64 << 10;
  o.prefetch = prefetch;
  return OpenHfModel(hub, "hf://org/m", o);
}

TEST(OpenHfModelTest, EntriesUnderThePrefixAndVerifiedStreams) {
  auto hub = MakeHub();
  auto in = OpenStreamed(hub, 3);
  ASSERT_TRUE(in) << in.error().message;
  EXPECT_EQ(in->source, "hf://org/m");
  EXPECT_EQ(in->revision, hub->commit);
  std::vector<std::string> names;
  for (const auto& e : in->entries) names.push_back(e.name);
  std::vector<std::string> want = {"models",
                                   "models/a",
                                   "models/a/b",
                                   "models/a/b/weights.bin",
                                   "models/a/c.txt",
                                   "models/big.safetensors",
                                   "models/config.json",
                                   "models/empty"};
  EXPECT_EQ(names, want);
  oci::Error err;
  EXPECT_TRUE(ReadEntry(*in, "models/big.safetensors", &err) == hub->files["big.safetensors"]);
  EXPECT_EQ(ReadEntry(*in, "models/a/c.txt", &err), "small");

  hub->corrupt = "a/b/weights.bin";
  err = {};
  ReadEntry(*in, "models/a/b/weights.bin", &err);
  EXPECT_EQ(err.code, ErrorCode::kVerificationFailed) << err.message;
  // The failure sticks: the unverified bytes are never handed out after it.
  for (const auto& e : in->entries) {
    if (e.name != "models/a/b/weights.bin") continue;
    auto reader = in->content(e);
    ASSERT_TRUE(reader);
    std::vector<std::byte> buf(1 << 20);
    oci::Result<size_t> n = size_t{0};
    do n = (*reader)->Read(buf);
    while (n && *n > 0);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error().code, ErrorCode::kVerificationFailed);
    auto again = (*reader)->Read(buf);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, ErrorCode::kVerificationFailed);
  }
}

size_t CdnRequestsFor(FakeHub& hub, const std::string& file) {
  size_t n = 0;
  for (const auto& s : hub.SeenCopy()) n += s.url.starts_with("http://cdn.test/" + file + "?");
  return n;
}

// Files read in archive order: the next file is fetched while this one is
// read, the pool bounds how far ahead, and an abandoned reader frees its
// buffers for the others.
TEST(OpenHfModelTest, ReadsAheadWithinThePoolAndSurvivesAbandonedReaders) {
  auto hub = MakeHub();
  std::string big2(40 << 16, 'x');
  for (size_t i = 0; i < big2.size(); ++i) big2[i] = static_cast<char>(i * 7 % 251);
  hub->files["big2.safetensors"] = big2;  // after big.safetensors in archive order
  auto in = OpenStreamed(hub, 4);  // a pool of 5 buffers; a file not opened yet gets at most 2
  ASSERT_TRUE(in) << in.error().message;
  auto entry = [&](const std::string& name) {
    for (const auto& e : in->entries) {
      if (e.name == name) return e;
    }
    return oci::TarEntry{};
  };
  oci::Error err;
  // big.safetensors read to its end, big2 not opened: it is read ahead, but
  // only into half the pool.
  EXPECT_TRUE(ReadEntry(*in, "models/big.safetensors", &err) == hub->files["big.safetensors"]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t ahead = CdnRequestsFor(*hub, "big2.safetensors");
  EXPECT_GE(ahead, 1u) << "no read-ahead into the next file";
  EXPECT_LE(ahead, 2u) << "read-ahead took more than half the pool";
  {
    // A reader that stops after one byte: no more than the pool is fetched,
    // and dropping the reader gives its buffers back.
    auto reader = in->content(entry("models/big2.safetensors"));
    ASSERT_TRUE(reader) << reader.error().message;
    std::vector<std::byte> one(1);
    ASSERT_EQ((*reader)->Read(one).value(), 1u);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_LE(CdnRequestsFor(*hub, "big2.safetensors"), 5u + 1u) << "fetched past the pool";
  }
  EXPECT_EQ(ReadEntry(*in, "models/config.json", &err), hub->files["config.json"]);
  EXPECT_TRUE(ReadEntry(*in, "models/big2.safetensors", &err) == big2) << err.message;
  EXPECT_EQ(ReadEntry(*in, "models/empty", &err), "");
  EXPECT_EQ(err.message, "");
}

// A file the CDN has lost: its reader fails with the CDN's answer, the
// segments after the failure are not fetched, and the other files still read.
TEST(OpenHfModelTest, AFailedFileStopsFetchingAndTheOthersStillRead) {
  auto hub = MakeHub();
  hub->gone = "big.safetensors";  // 17 segments of 64 KiB
  auto in = OpenStreamed(hub, 2);
  ASSERT_TRUE(in) << in.error().message;
  oci::Error err;
  ReadEntry(*in, "models/big.safetensors", &err);
  EXPECT_EQ(err.code, ErrorCode::kNotFound) << err.message;
  EXPECT_LE(CdnRequestsFor(*hub, "big.safetensors"), 4u) << "kept fetching a failed file";
  err = {};
  EXPECT_EQ(ReadEntry(*in, "models/config.json", &err), hub->files["config.json"]);
  EXPECT_EQ(ReadEntry(*in, "models/a/c.txt", &err), "small");
  EXPECT_EQ(err.message, "");
}

// A download worker task that throws fails the run with an error naming the
// stage (no terminate, no hang); the next run completes and verifies.
TEST(DownloaderTest, AWorkerThatThrowsFailsTheRunAndTheNextOneCompletes) {
  auto hub = MakeHub();
  mc::testing::TempDir dir;
  DownloadOptions o{"hf://org/m", dir.path()};
  o.jobs = 3;
  o.segment_size = 64 << 10;
  o.hub = Options();
  for (int nth : {1, 3}) {
    InjectTaskFaultForTesting("download", nth);
    auto r = Download(hub, o);
    InjectTaskFaultForTesting("download", 0);
    ASSERT_FALSE(r) << "task " << nth;
    EXPECT_EQ(r.error().code, ErrorCode::kInternal);
    EXPECT_EQ(r.error().message, "internal error in the download stage: injected fault");
  }
  auto r = Download(hub, o);
  ASSERT_TRUE(r) << r.error().message;
  for (const auto& [path, content] : hub->files) {
    EXPECT_TRUE(mc::testing::ReadFile(dir / path) == content) << path;
  }
}

// A prefetch task of hf:// streaming that throws: every reader waiting for a
// segment gets the error instead of waiting forever.
TEST(OpenHfModelTest, APrefetchTaskThatThrowsFailsTheReaders) {
  {
    // One prefetch task, which throws before it fetches anything: deterministic.
    auto hub = MakeHub();
    InjectTaskFaultForTesting("hf:// prefetch", 1);
    auto in = OpenStreamed(hub, 1);
    ASSERT_TRUE(in) << in.error().message;
    oci::Error err;
    ReadEntry(*in, "models/a/b/weights.bin", &err);
    ReadEntry(*in, "models/big.safetensors", &err);
    InjectTaskFaultForTesting("hf:// prefetch", 0);
    EXPECT_EQ(err.code, ErrorCode::kInternal) << err.message;
    EXPECT_EQ(err.message, "internal error in the hf:// prefetch stage: injected fault");
  }
}

}  // namespace
}  // namespace mc::engine
