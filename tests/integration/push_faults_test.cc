// Pushes and mirrors that survive what networks and Tekton do to them,
// against the real docker-registry behind tests/support/fault_proxy.py (a
// plain forwarding proxy: a cut PATCH reaches the registry half-written,
// which is what makes distribution drop the session):
//   - a connection reset inside the first chunk, inside a later chunk,
//     exactly at a chunk boundary, and in the closing PUT: the push completes
//     (each case five times: the old restart race showed up 2 times in 5);
//   - SIGTERM / SIGINT after ≥ 80 MiB reached the registry (what Tekton sends
//     at a timeout or cancel): exit 143/130, the session is kept, and the
//     next run sends at most what the registry lacks plus one chunk — for
//     `build` and for `copy`; the same after SIGKILL mid-PATCH (the next run
//     asks the registry what it holds instead of trusting the saved offset);
//   - SIGTERM while a chunk crawls over a slow link: the chunk ends early (its
//     body has no length), the registry keeps what arrived, and the next run
//     sends only the rest;
//   - SIGTERM while nothing moves at all (a proxy holds the PATCH unread): the
//     chunk cannot end early, so it is abandoned once it stops moving — the
//     run exits 143 in seconds, not after the 120 s stall timeout — and the
//     next run sends only what the registry lacks;
//   - a network that stays down: exit 6 naming the registry.
// Every image is read back with skopeo and GNU tar and compared with the model.
#include <signal.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/support/paths.h"
#include "tests/support/push_helpers.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1 << 20;

std::string Engine() { return Quote(EngineBinary()) + " --progress none"; }

// --base scratch: the faults are counted on the model layer's requests alone.
std::string BuildCommand(const TempDir& tmp, const std::string& ref, const std::string& extra) {
  return Engine() + " build " + Quote((tmp / "model").string()) + " docker://" + ref +
         " --base scratch --compression none --jobs 1 --cache-dir " +
         Quote((tmp / "cache").string()) + " " + extra;
}

struct CutCase {
  const char* name;
  FaultOptions faults;
};

// 10 MiB of weights in 4 MiB chunks: PATCH 1 and 2 are full chunks.
std::vector<CutCase> CutCases() {
  std::vector<CutCase> cases;
  FaultOptions first;
  first.cut_request_after = 1 * kMiB;
  cases.push_back({"inside the first chunk", first});
  FaultOptions later;
  later.cut_request_after = 2 * kMiB;
  later.cut_skip = 1;
  cases.push_back({"inside the second chunk", later});
  FaultOptions boundary;
  boundary.cut_request_after = 4 * kMiB;  // the whole chunk went through, then the reset
  boundary.cut_skip = 1;
  cases.push_back({"exactly at a chunk boundary", boundary});
  FaultOptions put;
  put.drop_response_method = "PUT";
  put.path_filter = "/blobs/uploads/";
  cases.push_back({"in the closing PUT", put});
  return cases;
}

TEST(PushFaultsTest, ACutConnectionNeverFailsThePush) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  MakeModel(tmp / "model", 10 * kMiB);
  int n = 0;
  std::string digest;  // the same image every time (the layer is deterministic)
  for (const auto& c : CutCases()) {
    for (int round = 0; round < 5; ++round, ++n) {
      SCOPED_TRACE(std::string(c.name) + ", round " + std::to_string(round + 1));
      FaultProxy proxy(reg.host(), c.faults);
      ASSERT_TRUE(proxy.ok()) << proxy.error();
      std::string repo = "/models/cut" + std::to_string(n) + ":v1";
      std::string out;
      ASSERT_EQ(mc::testing::Run(BuildCommand(tmp, proxy.host() + repo, "--chunk-size 4M"), &out,
                                 /*merge_stderr=*/false),
                0);
      EXPECT_NE(proxy.Log(), "") << "the fault was not injected";
      if (digest.empty()) digest = out;
      EXPECT_EQ(out, digest);
      // skopeo and GNU tar read the first image of each case back.
      if (round == 0) {
        EXPECT_TRUE(ImageHoldsModel(reg, reg.host() + repo, tmp / "model",
                                    tmp / ("copy" + std::to_string(n))));
      }
    }
  }
  // Nothing left behind for a re-run to trip over.
  EXPECT_TRUE(!fs::exists(tmp / "cache/uploads") || fs::is_empty(tmp / "cache/uploads"));
}

// Waits (up to 120 s) until the proxy logged a fault containing `mark` while
// `cmd` runs; false when the command ended first.
bool ReachedFault(BackgroundCommand& cmd, const FaultProxy& proxy, const std::string& mark) {
  return cmd.WaitUntil([&] { return proxy.Log().find(mark) != std::string::npos; },
                       std::chrono::seconds(120));
}

// What the first, interrupted run left.
struct Interrupted {
  int exit_code = -1;
  uint64_t received = 0;  // PATCH body bytes the registry got before the stop
  std::string output;
};

// SIGTERM/SIGINT: the chunk on the wire ends early and the registry keeps
// what arrived, so any proxy will do (this one counts and injects nothing);
// the signal comes once 80 MiB went through.
// SIGKILL lands mid-PATCH: as in production (nginx, a load balancer) the
// proxy buffers request bodies, and it holds the PATCH after 80 MiB so the
// kill finds the client mid-body with nothing of that PATCH at the registry.
FaultOptions ProxyFor(int sig, uint64_t chunk) {
  FaultOptions o;
  if (sig == SIGKILL) {
    o.buffer_requests = true;
    o.stall_request_after = 1 * kMiB;
    o.stall_skip = static_cast<int>((80 * kMiB + chunk - 1) / chunk);
  }
  return o;
}

// Runs `command` and sends `sig` once after ≥ 80 MiB of PATCH bodies reached the registry.
Interrupted InterruptAfter80MiB(const std::string& command, const FaultProxy& proxy, int sig,
                                const fs::path& log) {
  Interrupted r;
  BackgroundCommand cmd(command, log);
  bool reached = sig == SIGKILL
                     ? ReachedFault(cmd, proxy, "stalled")
                     : cmd.WaitUntil([&] { return proxy.BodyBytes("PATCH") >= 80 * kMiB; },
                                     std::chrono::seconds(120));
  EXPECT_TRUE(reached) << "the push ended before 80 MiB: " << cmd.Output();
  cmd.Signal(sig);
  r.exit_code = cmd.Wait();
  r.received = proxy.BodyBytes("PATCH");
  r.output = cmd.Output();
  EXPECT_GE(r.received, 80 * kMiB);
  return r;
}

class SignalTest : public ::testing::TestWithParam<int> {};

TEST_P(SignalTest, BuildKeepsTheSessionAndTheNextRunSendsOnlyTheRest) {
  const int sig = GetParam();
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultProxy proxy(reg.host(), ProxyFor(sig, 8 * kMiB));
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  TempDir tmp;
  const uint64_t weights = 128 * kMiB;
  MakeModel(tmp / "model", weights);
  std::string ref = proxy.host() + "/models/signal:v1";
  std::string cmd = BuildCommand(tmp, ref, "--chunk-size 8M");
  auto first = InterruptAfter80MiB(cmd, proxy, sig, tmp / "first.log");
  ASSERT_EQ(first.exit_code, 128 + sig) << first.output;
  EXPECT_EQ(reg.CountRequests("DELETE"), 0) << "the session must be kept";
  if (sig != SIGKILL) {
    EXPECT_NE(first.output.find("interrupted"), std::string::npos) << first.output;
  }
  ASSERT_TRUE(fs::exists(tmp / "cache/uploads")) << first.output;
  EXPECT_FALSE(fs::is_empty(tmp / "cache/uploads"));

  uint64_t before = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT");
  std::string out;
  ASSERT_EQ(mc::testing::Run(cmd, &out), 0) << out;
  EXPECT_NE(out.find("resuming the upload"), std::string::npos) << out;
  uint64_t resent = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT") - before;
  // The layer is the weights plus a few KiB of tar headers and small files.
  EXPECT_LE(resent, weights + 64 * 1024 - first.received + 8 * kMiB)
      << "received before the signal: " << first.received;
  EXPECT_TRUE(ImageHoldsModel(reg, reg.host() + "/models/signal:v1", tmp / "model", tmp / "copy"));
}

TEST_P(SignalTest, CopyKeepsTheSessionAndTheNextRunSendsOnlyTheRest) {
  const int sig = GetParam();
  RegistryFixture src;
  RegistryFixture dst;
  ASSERT_TRUE(src.ok()) << src.error();
  ASSERT_TRUE(dst.ok()) << dst.error();
  TempDir tmp;
  const uint64_t weights = 128 * kMiB;
  MakeModel(tmp / "model", weights);
  std::string out;
  ASSERT_EQ(mc::testing::Run(BuildCommand(tmp, src.host() + "/models/src:v1", ""), &out), 0) << out;
  FaultProxy proxy(dst.host(), ProxyFor(sig, 32 * kMiB));
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  std::string cmd = Engine() + " copy docker://" + src.host() + "/models/src:v1 docker://" +
                    proxy.host() + "/mirror/m:v1 --tls-verify=false --cache-dir " +
                    Quote((tmp / "copy-cache").string());
  auto first = InterruptAfter80MiB(cmd, proxy, sig, tmp / "first.log");
  ASSERT_EQ(first.exit_code, 128 + sig) << first.output;
  EXPECT_EQ(dst.CountRequests("DELETE"), 0) << "the session must be kept";

  uint64_t before = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT");
  ASSERT_EQ(mc::testing::Run(cmd, &out), 0) << out;
  uint64_t resent = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT") - before;
  // One chunk of the copy's upload is 32 MiB (the default).
  EXPECT_LE(resent, weights + 64 * 1024 - first.received + 32 * kMiB)
      << "received before the signal: " << first.received << "\n"
      << out;
  EXPECT_TRUE(ImageHoldsModel(dst, dst.host() + "/mirror/m:v1", tmp / "model", tmp / "copy"));
}

INSTANTIATE_TEST_SUITE_P(TermIntKill, SignalTest, ::testing::Values(SIGTERM, SIGINT, SIGKILL),
                         [](const auto& info) {
                           return info.param == SIGTERM  ? "Term"
                                  : info.param == SIGINT ? "Int"
                                                         : "Kill";
                         });

// A 16 MiB chunk at 2 MiB/s would take 8 s to finish after the signal; it
// ends at once instead (within what the socket buffers already hold), with a
// 202 for fewer bytes than the chunk, and nothing is sent twice.
TEST(PushFaultsTest, SigtermEndsTheChunkOnASlowLinkEarly) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultOptions slow;
  slow.throttle_rate = 2 * kMiB;  // the first PATCH only
  // A small receive buffer opens the window every few KiB the proxy reads:
  // with loopback's 32 MiB buffers the kernel opens it only once 1/16 of the
  // buffer is free, a pause of ~0.5 s at 2 MiB/s (longer under load), which
  // is not the smooth slow link this test is about.
  slow.recv_buffer = 256 << 10;
  FaultProxy proxy(reg.host(), slow);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  TempDir tmp;
  const uint64_t weights = 24 * kMiB;
  MakeModel(tmp / "model", weights);
  std::string cmd = BuildCommand(tmp, proxy.host() + "/models/slow:v1", "--chunk-size 16M");
  BackgroundCommand first(cmd, tmp / "first.log");
  ASSERT_TRUE(ReachedFault(first, proxy, "throttled")) << first.Output();
  first.Signal(SIGTERM);
  ASSERT_EQ(first.Wait(), 143) << first.Output();
  EXPECT_EQ(reg.CountRequests("DELETE"), 0) << "the session must be kept";
  std::vector<ProxyRequest> patches;
  for (const auto& r : proxy.Traffic()) {
    if (r.method == "PATCH") patches.push_back(r);
  }
  ASSERT_EQ(patches.size(), 1u) << first.Output();
  EXPECT_EQ(patches[0].status, "202") << first.Output();
  EXPECT_GE(patches[0].body_bytes, 1 * kMiB);
  EXPECT_LT(patches[0].body_bytes, 16 * kMiB) << "the chunk was not ended early";
  EXPECT_NE(first.Output().find("the session is kept"), std::string::npos) << first.Output();

  std::string out;
  ASSERT_EQ(mc::testing::Run(cmd, &out), 0) << out;
  EXPECT_NE(out.find("resuming the upload"), std::string::npos) << out;
  uint64_t resent = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT") - patches[0].body_bytes;
  EXPECT_LE(resent, weights + 64 * 1024 - patches[0].body_bytes) << out;
  EXPECT_TRUE(ImageHoldsModel(reg, reg.host() + "/models/slow:v1", tmp / "model", tmp / "copy"));
}

// The proxy buffers request bodies (like nginx) and stops reading the second
// PATCH after 1 MiB: the link is dead, no byte of that chunk reaches the
// registry, and the early end of the body has nothing to drain through. (The
// proxy's small receive buffer makes the stall reach the client as
// unacknowledged bytes; with loopback's 32 MiB buffers the kernel would take
// the whole chunk, and the client would wait for an answer up to the 10 s
// cancel deadline.)
TEST(PushFaultsTest, SigtermOnAStalledLinkStopsInSeconds) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultOptions stall;
  stall.buffer_requests = true;
  stall.stall_request_after = 1 * kMiB;
  stall.stall_skip = 1;
  stall.stall_stop_reading = true;
  stall.recv_buffer = 256 << 10;
  FaultProxy proxy(reg.host(), stall);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  TempDir tmp;
  const uint64_t weights = 40 * kMiB;
  MakeModel(tmp / "model", weights);
  std::string cmd = BuildCommand(tmp, proxy.host() + "/models/stalled:v1", "--chunk-size 16M");
  BackgroundCommand first(cmd, tmp / "first.log");
  ASSERT_TRUE(ReachedFault(first, proxy, "stalled")) << first.Output();
  auto signalled = std::chrono::steady_clock::now();
  first.Signal(SIGTERM);
  ASSERT_EQ(first.Wait(), 143) << first.Output();
  // About 2.5 s: 2 s without progress, checked once a second. If the
  // signal caught the body while the kernel still took bytes, the body ended
  // early and the client waits for an answer up to the 10 s deadline. Either
  // way not the 120 s stall timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(20))
      << first.Output();
  EXPECT_NE(first.Output().find("the session is kept"), std::string::npos) << first.Output();
  EXPECT_EQ(reg.CountRequests("DELETE"), 0) << "the session must be kept";

  uint64_t before = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT");
  std::string out;
  ASSERT_EQ(mc::testing::Run(cmd, &out), 0) << out;
  EXPECT_NE(out.find("resuming the upload"), std::string::npos) << out;
  uint64_t resent = proxy.BodyBytes("PATCH") + proxy.BodyBytes("PUT") - before;
  EXPECT_LE(resent, weights + 64 * 1024 - 16 * kMiB) << "one chunk was acknowledged\n" << out;
  EXPECT_TRUE(ImageHoldsModel(reg, reg.host() + "/models/stalled:v1", tmp / "model", tmp / "copy"));
}

TEST(PushFaultsTest, ANetworkThatStaysDownIsExit6NamingTheRegistry) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultOptions cut_all;
  cut_all.cut_request_after = 64 * 1024;
  cut_all.cut_times = 1000;
  FaultProxy proxy(reg.host(), cut_all);
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  TempDir tmp;
  MakeModel(tmp / "model", 2 * kMiB);
  std::string out;
  int rc = mc::testing::Run(
      BuildCommand(tmp, proxy.host() + "/models/down:v1", "--chunk-size 1M --retry-times 1"), &out);
  EXPECT_EQ(rc, 6) << out;
  EXPECT_NE(out.find(proxy.host()), std::string::npos) << out;
}

}  // namespace
}  // namespace mc::testing
