// Error bodies are advisory (protocols.md 1.7: "4xx bodies MAY be any
// format"), so the status decides the ErrorCode and the body only adds words.
// The one exception is size refusals: Quay's MAXIMUM_LAYER_SIZE error path is
// "not well-formed" (protocols.md 1.8), so for blob uploads we also look for
// words about size in whatever came back and point at the flags that fix it.
#include "registry/api_error.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "registry/retry.h"

namespace mc::registry {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string OneLine(std::string_view s, size_t limit) {
  std::string out;
  for (char c : s) {
    if (out.size() >= limit) {
      out += "…";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool MentionsSize(std::string_view summary) {
  std::string s = Lower(summary);
  for (std::string_view w : {"size", "too large", "too big", "exceed", "limit", "quota"}) {
    if (s.find(w) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string SummarizeErrorBody(std::string_view body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
      std::string out;
      for (const auto& e : j["errors"]) {
        if (!e.is_object()) continue;
        std::string code = e.value("code", "");
        std::string msg = e.contains("message") && e["message"].is_string()
                              ? e["message"].get<std::string>()
                              : "";
        if (!out.empty()) out += "; ";
        out += code.empty() ? msg : (msg.empty() ? code : code + ": " + msg);
      }
      return OneLine(out, 300);
    }
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      return OneLine(j["error"].get<std::string>(), 300);
    }
  } catch (const nlohmann::json::exception&) {
    // Not JSON: fall through to the excerpt.
  }
  return OneLine(body, 200);
}

oci::Error ApiErrorFromBody(int status, std::string_view body, std::string_view retry_after,
                            const ApiContext& ctx) {
  std::string summary = SummarizeErrorBody(body);
  std::string detail =
      "HTTP " + std::to_string(status) + (summary.empty() ? "" : " (" + summary + ")");
  oci::Error e;
  e.http_status = status;
  auto say = [&](oci::ErrorCode code, std::string msg) {
    e.code = code;
    e.message = ctx.what + ": " + msg;
  };
  if (status == 413 || (ctx.blob_upload && status >= 400 && status < 500 && status != 404 &&
                        status != 401 && status != 403 && status != 416 && MentionsSize(summary))) {
    say(oci::ErrorCode::kInvalidInput,
        "registry " + ctx.registry + " refused the blob as too large, " + detail +
            ": lower --max-layer-size or use --layer-per-file (Quay limits layers to "
            "MAXIMUM_LAYER_SIZE, 20G by default)");
  } else if (status == 401 || status == 403) {
    say(oci::ErrorCode::kUnauthorized,
        "registry " + ctx.registry + " denied access, " + detail +
            ": check the credentials (--creds, --authfile) and their permissions");
  } else if (status == 404) {
    say(oci::ErrorCode::kNotFound, "not found, " + detail);
  } else if (status == 416) {
    say(oci::ErrorCode::kRangeNotSatisfiable, "range not satisfiable, " + detail);
  } else if (status == 408 || status == 429 || status >= 500) {
    say(oci::ErrorCode::kTransient, "registry " + ctx.registry + " failed, " + detail);
    if (!retry_after.empty()) e.retry_after = ParseRetryAfter(retry_after);
  } else if (status == 400 && summary.find("DIGEST_INVALID") != std::string::npos) {
    say(oci::ErrorCode::kVerificationFailed, "the registry computed another digest, " + detail);
  } else {
    say(oci::ErrorCode::kInvalidInput,
        "registry " + ctx.registry + " refused the request, " + detail);
  }
  return e;
}

oci::Error ApiError(HttpResponse& response, const ApiContext& ctx) {
  std::string body;
  if (response.body) {
    auto b = response.ReadBody(64 << 10);
    if (b) body = std::move(*b);
  }
  return ApiErrorFromBody(response.status, body, response.Header("retry-after").value_or(""), ctx);
}

}  // namespace mc::registry
