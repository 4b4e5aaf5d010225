// Turning distribution API error responses into one-line oci::Errors.
//
// Registries answer failures with `{"errors":[{"code","message","detail"}]}`
// (protocols.md 1.7) or with any other body. We keep the status, the codes
// and the messages, never the detail (it may echo request data), and map the
// status to an ErrorCode:
//   401/403 → kUnauthorized   404 → kNotFound   416 → kRangeNotSatisfiable
//   408/429/5xx → kTransient (Retry-After kept)  400 DIGEST_INVALID → kVerificationFailed
//   413, or a blob upload refused with a message about its size → kInvalidInput
//   naming --max-layer-size / --layer-per-file (Quay's MAXIMUM_LAYER_SIZE)
//   anything else → kInvalidInput.
//
// Pure functions; safe for concurrent use.
#pragma once

#include <string>
#include <string_view>

#include "oci/error.h"
#include "registry/transport.h"

namespace mc::registry {

struct ApiContext {
  std::string what;      // "PUT manifest docker://host/repo:tag"
  std::string registry;  // "quay.io", for the hint of 401/403
  bool blob_upload = false;
};

// Reads (a bounded part of) the body and builds the error.
oci::Error ApiError(HttpResponse& response, const ApiContext& context);
// The same from a status and an already-read body.
oci::Error ApiErrorFromBody(int status, std::string_view body, std::string_view retry_after,
                            const ApiContext& context);

// "CODE: message; CODE2: message2" from a JSON error body, or a short
// printable excerpt of any other body ("" when empty).
std::string SummarizeErrorBody(std::string_view body);

}  // namespace mc::registry
