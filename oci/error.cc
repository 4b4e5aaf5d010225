#include "oci/error.h"

#include <cstring>

namespace mc::oci {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidInput: return "invalid input";
    case ErrorCode::kUnauthorized: return "unauthorized";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kVerificationFailed: return "verification failed";
    case ErrorCode::kNetwork: return "network";
    case ErrorCode::kTransient: return "transient";
    case ErrorCode::kRangeNotSatisfiable: return "range not satisfiable";
    case ErrorCode::kIo: return "i/o";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

Error Error::Wrap(std::string_view context) const {
  Error e = *this;
  e.message = std::string(context) + ": " + message;
  return e;
}

std::string ErrnoMessage(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* msg = strerror_r(err, buf, sizeof buf);
  return msg;
}

}  // namespace mc::oci
