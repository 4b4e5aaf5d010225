// Retries of transient HTTP failures, with exponential backoff and full jitter.
//
// One layer retries each kind of operation (architecture.md 3): this one
// retries single requests; UploadSession resumes chunks itself and marks its
// requests no_retry, so retries never multiply across layers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "registry/transport.h"

namespace mc::registry {

using Sleeper = std::function<void(std::chrono::milliseconds)>;
// Returns a uniformly distributed value in [0, 1).
using UnitRandom = std::function<double()>;

// Delay before retry number `attempt` (0 = first retry): a uniform draw in
// [0, min(ceiling, base·2^attempt)] ("full jitter"). A server's Retry-After,
// when given, is used instead, capped at max(ceiling, 60 s) so a hostile or
// confused server cannot park us for hours. Pure; `rng` supplies the draw.
std::chrono::milliseconds ComputeRetryDelay(int attempt, std::chrono::milliseconds base,
                                            std::chrono::milliseconds ceiling,
                                            std::optional<std::chrono::milliseconds> retry_after,
                                            const UnitRandom& rng);

// The process's defaults: std::this_thread::sleep_for, and a per-thread
// Mersenne Twister seeded from std::random_device.
Sleeper DefaultSleeper();
UnitRandom DefaultUnitRandom();

// The one backoff policy of mc-engine: every loop that waits before trying
// again (the retry decorator, upload recovery, ranged blob reads, the Hugging
// Face client) computes its delay here, so they all jitter the same way,
// honour Retry-After the same way, and take a fake clock in tests.
struct BackoffPolicy {
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds ceiling{30'000};
  Sleeper sleeper;    // empty: DefaultSleeper()
  UnitRandom random;  // empty: DefaultUnitRandom()

  // ComputeRetryDelay with this policy's numbers and generator.
  std::chrono::milliseconds Delay(int attempt,
                                  std::optional<std::chrono::milliseconds> retry_after = {}) const;
  // Sleeps Delay(attempt, retry_after) through the sleeper; returns the delay.
  std::chrono::milliseconds Wait(int attempt,
                                 std::optional<std::chrono::milliseconds> retry_after = {}) const;
};

// Parses a Retry-After value: delay-seconds or an HTTP-date (IMF-fixdate,
// RFC 9110 §10.2.3) relative to `now`. nullopt when unparsable; a date in the
// past gives 0.
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Whether a response status is retried: 408, 429, and 5xx except 501/505
// (not implemented / version not supported are permanent).
bool IsRetryableStatus(int status);

struct RetryOptions {
  int retry_times = 3;
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds ceiling{30'000};
  Sleeper sleeper;    // default: std::this_thread::sleep_for
  UnitRandom random;  // default: a per-thread Mersenne Twister
};

// Wraps `inner`. A request is retried when it is not marked no_retry and its
// body can be sent again: no body, or an in-memory span (a streamed
// body_reader is consumed by the first attempt). Retrying a span body is safe
// when repeating the request has no harmful effect: GET/HEAD/PUT of a whole
// manifest or blob are idempotent, and a repeated upload-start POST only
// leaves an orphan session the registry expires. Callers whose requests are
// not repeatable (chunk PATCHes, whose offset moves) must set no_retry.
//
// Retried: connection errors (kTransient) and IsRetryableStatus responses.
// When retries run out, a connection error becomes kNetwork "... (after N
// retries)"; a retryable status is returned as the response. Non-retried
// requests pass errors through unchanged (kTransient stays kTransient so the
// layer above can resume).
//
// Thread guarantee: safe for concurrent use if `inner` is.
std::shared_ptr<Transport> NewRetryTransport(std::shared_ptr<Transport> inner, int retry_times,
                                             Sleeper sleeper = {});
std::shared_ptr<Transport> NewRetryTransport(std::shared_ptr<Transport> inner,
                                             RetryOptions options);

}  // namespace mc::registry

namespace mc::registry {

// The usual stack below auth: NewRetryTransport(NewCurlTransport(options),
// options.retry_times).
std::shared_ptr<Transport> NewHttpTransport(const TransportOptions& options);

}  // namespace mc::registry
