// Retry policy: exponential backoff with full jitter (AWS architecture blog,
// "Exponential Backoff And Jitter"), as nix's filetransfer.cc and ggcr's
// retry transport do. Full jitter spreads the retries of many parallel blob
// uploads hitting one overloaded registry, instead of synchronising them.
#include "registry/retry.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>
#include <string>
#include <thread>

#include "registry/curl_transport.h"
#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

using std::chrono::milliseconds;

class RetryTransport final : public Transport {
 public:
  RetryTransport(std::shared_ptr<Transport> inner, RetryOptions o)
      : inner_(std::move(inner)), o_(std::move(o)) {
    if (!o_.sleeper) o_.sleeper = DefaultSleeper();
    if (!o_.random) o_.random = DefaultUnitRandom();
  }

  // A streamed response is resumed by its caller (ranged blob reads continue
  // by Range, the Hub client retries itself), so it is sent once — and
  // forwarded, so libcurl's receive buffer reaches the handler without the
  // default implementation's bounce buffer.
  oci::Result<HttpResponse> SendStreaming(HttpRequest request,
                                          const BodyHandler& handler) override {
    return inner_->SendStreaming(std::move(request), handler);
  }

  oci::Result<HttpResponse> Send(HttpRequest request) override {
    bool retryable = !request.no_retry && request.body_reader == nullptr;
    if (!retryable) return inner_->Send(std::move(request));
    for (int attempt = 0;; ++attempt) {
      auto resp = inner_->Send(request);
      std::optional<milliseconds> retry_after;
      std::string why;
      if (resp) {
        if (!IsRetryableStatus(resp->status)) return resp;
        if (auto h = resp->Header("retry-after")) retry_after = ParseRetryAfter(*h);
        why = "HTTP " + std::to_string(resp->status);
      } else {
        if (resp.error().code != oci::ErrorCode::kTransient) return resp;
        why = resp.error().message;
      }
      if (attempt >= o_.retry_times) return GiveUp(std::move(resp), attempt);
      if (resp) (void)resp->ReadBody(64 << 10);  // reuse the connection
      milliseconds delay = ComputeRetryDelay(attempt, o_.base, o_.ceiling, retry_after, o_.random);
      Log()->info("retrying {} {} in {} ms (retry {}/{}): {}", request.method,
                  RedactUrl(request.url), delay.count(), attempt + 1, o_.retry_times, why);
      o_.sleeper(delay);
    }
  }

 private:
  static oci::Result<HttpResponse> GiveUp(oci::Result<HttpResponse> last, int retries) {
    if (last) return last;  // the caller turns the status into an error
    oci::Error e = last.error();
    e.code = oci::ErrorCode::kNetwork;
    e.message += " (after " + std::to_string(retries) + (retries == 1 ? " retry)" : " retries)");
    return std::unexpected(e);
  }

  std::shared_ptr<Transport> inner_;
  RetryOptions o_;
};

}  // namespace

Sleeper DefaultSleeper() {
  return [](milliseconds d) { std::this_thread::sleep_for(d); };
}

UnitRandom DefaultUnitRandom() {
  return [] {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
  };
}

milliseconds BackoffPolicy::Delay(int attempt, std::optional<milliseconds> retry_after) const {
  return ComputeRetryDelay(attempt, base, ceiling, retry_after,
                           random ? random : DefaultUnitRandom());
}

milliseconds BackoffPolicy::Wait(int attempt, std::optional<milliseconds> retry_after) const {
  milliseconds d = Delay(attempt, retry_after);
  if (d.count() > 0) (sleeper ? sleeper : DefaultSleeper())(d);
  return d;
}

milliseconds ComputeRetryDelay(int attempt, milliseconds base, milliseconds ceiling,
                               std::optional<milliseconds> retry_after, const UnitRandom& rng) {
  if (retry_after) {
    milliseconds cap = std::max(ceiling, milliseconds(60'000));
    return std::clamp(*retry_after, milliseconds(0), cap);
  }
  double exp = static_cast<double>(base.count()) * std::ldexp(1.0, std::clamp(attempt, 0, 62));
  double top = std::min(exp, static_cast<double>(ceiling.count()));
  double u = std::clamp(rng(), 0.0, 1.0);
  return milliseconds(static_cast<int64_t>(std::llround(top * u)));
}

std::optional<milliseconds> ParseRetryAfter(std::string_view value_in,
                                            std::chrono::system_clock::time_point now) {
  std::string value(TrimWhitespace(value_in));
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return milliseconds(999'999'999'000LL);
    return milliseconds(std::stoll(value) * 1000);
  }
  std::tm tm{};
  const char* end = strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto delta = std::chrono::duration_cast<milliseconds>(when - now);
  return std::max(delta, milliseconds(0));
}

bool IsRetryableStatus(int status) {
  return status == 408 || status == 429 ||
         (status >= 500 && status <= 599 && status != 501 && status != 505);
}

std::shared_ptr<Transport> NewRetryTransport(std::shared_ptr<Transport> inner, int retry_times,
                                             Sleeper sleeper) {
  RetryOptions o;
  o.retry_times = retry_times;
  o.sleeper = std::move(sleeper);
  return NewRetryTransport(std::move(inner), std::move(o));
}

std::shared_ptr<Transport> NewRetryTransport(std::shared_ptr<Transport> inner,
                                             RetryOptions options) {
  return std::make_shared<RetryTransport>(std::move(inner), std::move(options));
}

}  // namespace mc::registry

namespace mc::registry {

std::shared_ptr<Transport> NewHttpTransport(const TransportOptions& options) {
  RetryOptions retry;
  retry.retry_times = options.retry_times;
  retry.base = options.retry_delay;
  retry.ceiling = std::max(retry.ceiling, options.retry_delay);
  return NewRetryTransport(NewCurlTransport(options), std::move(retry));
}

}  // namespace mc::registry
