// Error values shared by every module.
//
// We return Result<T> across module boundaries instead of throwing: retry and
// resume logic branches on the error class, errors cross threads, and every C
// library we use reports failures as codes. Messages are one line, say what
// failed and where, and never contain a secret (callers redact URLs first).
#pragma once

#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mc::oci {

enum class ErrorCode {
  kInvalidInput,         // bad flags, bad references, bad files: exit 2
  kUnauthorized,         // authentication or authorization: exit 3
  kNotFound,             // exit 4
  kVerificationFailed,   // digest or size mismatch: exit 5
  kNetwork,              // network failure after retries: exit 6
  kTransient,            // may be retried (5xx, 429, reset connection)
  kRangeNotSatisfiable,  // 416 from a registry or server
  kIo,                   // local filesystem errors: exit 1
  kCancelled,            // SIGINT/SIGTERM: exit 130
  kConflict,             // the target exists with other content
  kInternal,             // a bug: exit 1
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  int http_status = 0;
  std::optional<std::chrono::milliseconds> retry_after;

  // Returns a copy whose message is "context: message".
  Error Wrap(std::string_view context) const;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message, int http_status = 0) {
  return std::unexpected(Error{code, std::move(message), http_status, std::nullopt});
}

// Wraps the error of a failed result with context, for `return Wrap(r, "...")`.
inline std::unexpected<Error> Wrap(const Error& e, std::string_view context) {
  return std::unexpected(e.Wrap(context));
}

// Message of an errno value, as strerror_r gives it.
std::string ErrnoMessage(int err);

}  // namespace mc::oci

#define MC_CONCAT_INNER_(a, b) a##b
#define MC_CONCAT_(a, b) MC_CONCAT_INNER_(a, b)

// Returns the error of `expr` (a Result<...>) from the enclosing function.
#define MC_RETURN_IF_ERROR(expr)                                   \
  do {                                                             \
    auto&& mc_status_ = (expr);                                    \
    if (!mc_status_) return std::unexpected(mc_status_.error());   \
  } while (0)

// `MC_ASSIGN_OR_RETURN(auto x, Foo());` assigns the value of a Result or returns its error.
#define MC_ASSIGN_OR_RETURN(lhs, expr) \
  MC_ASSIGN_OR_RETURN_IMPL_(MC_CONCAT_(mc_result_, __LINE__), lhs, expr)
#define MC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)            \
  auto tmp = (expr);                                          \
  if (!tmp) return std::unexpected(std::move(tmp.error()));   \
  lhs = std::move(*tmp)
