// A subset of Go's text/template, for `inspect --format` as skopeo, podman and
// docker users write it in scripts.
//
// Supported: text with {{ }} actions, trim markers ({{- and -}}), comments
// ({{/* */}}); field chains on the dot, on $ and on variables (.Labels.key,
// $.Name, $layer.Digest, (index .LayersData 0).Size); string ("..." and `...`),
// number and true/false literals; pipelines (a | b); parenthesised
// pipelines; variable declarations ($x := …); if / else if / else, range
// (with $i, $e := and else) and with; the functions json, index, len,
// print, printf (%s %v %d %q %%), println, eq, ne, lt, le, gt, ge, not, and, or.
// As in skopeo (containers/common's NormalizeFormat), a literal \t or \n in
// the text outside actions becomes a tab or a newline, and the output ends
// with a newline.
//
// Values print as Go prints them (fmt %v): lists as [a b], maps as map[k:v]
// with sorted keys, a missing map key as <no value>, times as
// "2006-01-02 15:04:05.999999999 -0700 MST". `json` marshals as Go's
// encoding/json does (compact, <>& escaped as \u003c \u003e \u0026).
//
// Anything else (an unknown function, field or construct, a type mismatch)
// is kInvalidInput naming it, so `inspect` exits 2 without output.
// Thread guarantee: pure functions.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "oci/error.h"

namespace mc::engine {

// How to read the JSON data the way Go would read the struct it came from:
// objects are structs (an unknown field is an error) except the fields named
// in map_fields (Go maps: a missing key is <no value>); fields named in
// time_fields hold RFC 3339 times (null: a nil *time.Time); a null in one of
// list_fields is a nil slice (prints as []).
struct TemplateSchema {
  std::set<std::string> map_fields;
  std::set<std::string> time_fields;
  std::set<std::string> list_fields;
};

// Parses `format` only: syntax errors (kInvalidInput) before any data is fetched.
oci::Result<void> CheckGoTemplate(std::string_view format);

oci::Result<std::string> RenderGoTemplate(std::string_view format,
                                          const nlohmann::ordered_json& data,
                                          const TemplateSchema& schema);

// Go's encoding/json output for `value`: compact (indent < 0) or
// json.MarshalIndent with `indent` spaces, with Go's HTML escaping.
std::string GoJson(const nlohmann::ordered_json& value, int indent = -1);

// An RFC 3339 time as Go's time.Time marshals it (RFC 3339 with the
// fraction's trailing zeros dropped); nullopt when `s` is not RFC 3339.
std::optional<std::string> GoRfc3339(std::string_view s);

}  // namespace mc::engine
