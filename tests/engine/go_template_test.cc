// The Go-template subset of `inspect --format`: output as Go's text/template
// prints it (the expectations were taken from skopeo 1.9 / Go), and a clear
// kInvalidInput for what we do not support.
#include "engine/go_template.h"

#include <gtest/gtest.h>

namespace mc::engine {
namespace {

using ojson = nlohmann::ordered_json;

ojson Data() {
  return ojson::parse(R"({
    "Name": "quay.io/org/model",
    "Digest": "sha256:abc",
    "RepoTags": ["1.0", "latest"],
    "Created": "2024-05-06T07:08:09.12Z",
    "DockerVersion": "",
    "Labels": {"org.x.version": "1.0", "k": "<v>"},
    "Architecture": "amd64",
    "Os": "linux",
    "Layers": ["sha256:l1", "sha256:l2"],
    "LayersData": [
      {"MIMEType": "application/vnd.oci.image.layer.v1.tar+gzip", "Digest": "sha256:l1", "Size": 10,
       "Annotations": null},
      {"MIMEType": "application/vnd.oci.image.layer.v1.tar", "Digest": "sha256:l2", "Size": 20,
       "Annotations": {"org.opencontainers.image.title": "model"}}
    ],
    "Env": null
  })");
}

const TemplateSchema kSchema{
    {"Labels", "Annotations"}, {"Created"}, {"RepoTags", "Layers", "LayersData", "Env"}};

std::string Render(const std::string& t) {
  auto r = RenderGoTemplate(t, Data(), kSchema);
  EXPECT_TRUE(r.has_value()) << t << ": " << (r ? "" : r.error().message);
  return r ? *r : "";
}

std::string ErrorOf(const std::string& t) {
  auto r = RenderGoTemplate(t, Data(), kSchema);
  EXPECT_FALSE(r.has_value()) << t << " rendered " << (r ? *r : "");
  if (r) return "";
  EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_TRUE(r.error().message.starts_with("--format: ")) << r.error().message;
  return r.error().message;
}

TEST(GoTemplate, FieldsPrintAsGoPrintsThem) {
  EXPECT_EQ(Render("{{.Digest}}"), "sha256:abc\n");
  EXPECT_EQ(Render("{{.Digest}}\n"), "sha256:abc\n");  // no second newline
  EXPECT_EQ(Render("{{.RepoTags}}"), "[1.0 latest]\n");
  EXPECT_EQ(Render("{{.Labels}}"), "map[k:<v> org.x.version:1.0]\n");
  EXPECT_EQ(Render("{{.Created}}"), "2024-05-06 07:08:09.12 +0000 UTC\n");
  EXPECT_EQ(Render("{{.Env}}|{{.DockerVersion}}|{{len .Env}}"), "[]||0\n");
  EXPECT_EQ(Render("{{.Labels.k}} {{.Labels.nope}} {{.Labels.a.b}}"),
            "<v> <no value> <no value>\n");
  EXPECT_EQ(Render("{{index .Labels \"org.x.version\"}}|{{index .Labels \"nope\"}}|"), "1.0||\n");
  EXPECT_EQ(Render("{{(index .LayersData 1).Annotations}}"),
            "map[org.opencontainers.image.title:model]\n");
  EXPECT_EQ(Render("{{index .LayersData 0}}"),
            "{application/vnd.oci.image.layer.v1.tar+gzip sha256:l1 10 map[]}\n");
  EXPECT_EQ(Render("{{.Variant}}|{{.Tag}}"), "|\n");
}

TEST(GoTemplate, TextEscapesTrimAndComments) {
  EXPECT_EQ(Render("{{.Os}}\\t{{.Architecture}}\\n"), "linux\tamd64\n");
  EXPECT_EQ(Render("a  {{- .Os -}}  b"), "alinuxb\n");
  EXPECT_EQ(Render("{{/* a comment */}}x"), "x\n");
  EXPECT_EQ(Render("{{\"q}}\"}}"), "q}}\n");
  EXPECT_EQ(Render("{{`raw\\n`}}"), "raw\\n\n");
}

TEST(GoTemplate, ControlStructures) {
  EXPECT_EQ(Render("{{range .RepoTags}}<{{.}}>{{end}}"), "<1.0><latest>\n");
  EXPECT_EQ(Render("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}"), "0=1.0 1=latest \n");
  EXPECT_EQ(Render("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}"),
            "k=<v>;org.x.version=1.0;\n");
  EXPECT_EQ(Render("{{range .Env}}x{{else}}no env{{end}}"), "no env\n");
  EXPECT_EQ(Render("{{range .LayersData}}{{.Size}},{{end}}"), "10,20,\n");
  EXPECT_EQ(Render("{{range .Layers}}{{$.Os}}:{{.}} {{end}}"),
            "linux:sha256:l1 linux:sha256:l2 \n");
  EXPECT_EQ(Render("{{if .Env}}a{{else if eq .Os \"linux\"}}b{{else}}c{{end}}"), "b\n");
  EXPECT_EQ(Render("{{with .Labels}}{{.k}}{{end}}{{with .Env}}x{{else}}-{{end}}"), "<v>-\n");
  EXPECT_EQ(Render("{{$d := .Digest}}{{$d}}"), "sha256:abc\n");
}

TEST(GoTemplate, Functions) {
  EXPECT_EQ(Render("{{json .Labels}}"), "{\"k\":\"\\u003cv\\u003e\",\"org.x.version\":\"1.0\"}\n");
  EXPECT_EQ(Render("{{json .Env}} {{json .Created}} {{json .RepoTags}}"),
            "null \"2024-05-06T07:08:09.12Z\" [\"1.0\",\"latest\"]\n");
  EXPECT_EQ(Render("{{len .Layers}} {{len .Labels}} {{len .Os}}"), "2 2 5\n");
  EXPECT_EQ(Render("{{print 1 2 \"a\" .Os}}"), "1 2alinux\n");
  EXPECT_EQ(Render("{{println .Os .Architecture}}"), "linux amd64\n\n");
  EXPECT_EQ(Render("{{printf \"%s/%v %d%% %q\" .Os .Architecture 5 .Name}}"),
            "linux/amd64 5% \"quay.io/org/model\"\n");
  EXPECT_EQ(Render("{{.Os | printf \"[%s]\"}}"), "[linux]\n");
  EXPECT_EQ(Render("{{eq .Os \"windows\" \"linux\"}} {{ne 1 2}} {{lt 1 2}} {{ge \"a\" \"b\"}}"),
            "true true true false\n");
  EXPECT_EQ(Render("{{not .Env}} {{and .Os .Architecture}} {{or .Env .Os}}"), "true amd64 linux\n");
}

TEST(GoTemplate, UnsupportedIsAClearError) {
  EXPECT_NE(ErrorOf("{{.Nope}}").find("can't evaluate field Nope"), std::string::npos);
  EXPECT_NE(ErrorOf("{{(index .LayersData 0).Nope}}").find("Nope"), std::string::npos);
  EXPECT_NE(ErrorOf("{{upper .Os}}").find("function \"upper\" is not supported"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{{.Os").find("unclosed action"), std::string::npos);
  EXPECT_NE(ErrorOf("{{if .Os}}x").find("missing {{end}}"), std::string::npos);
  EXPECT_NE(ErrorOf("{{end}}").find("without if"), std::string::npos);
  EXPECT_NE(ErrorOf("{{define \"x\"}}{{end}}").find("not supported"), std::string::npos);
  EXPECT_NE(ErrorOf("{{.Created.Year}}").find("time"), std::string::npos);
  EXPECT_NE(ErrorOf("{{index .Layers 5}}").find("out of range"), std::string::npos);
  EXPECT_NE(ErrorOf("{{printf \"%x\" .Os}}").find("%x"), std::string::npos);
  EXPECT_NE(ErrorOf("{{$nope}}").find("undefined variable $nope"), std::string::npos);
  EXPECT_NE(ErrorOf("{{\"unterminated}}").find("unclosed action"), std::string::npos);
  EXPECT_NE(ErrorOf("{{}}").find("empty action"), std::string::npos);
  EXPECT_FALSE(CheckGoTemplate("{{.Os").has_value());
  EXPECT_TRUE(CheckGoTemplate("{{.Whatever}} {{range .X}}{{end}}").has_value());
}

TEST(GoTemplate, GoJsonAndTimes) {
  EXPECT_EQ(GoJson(ojson::parse(R"({"b":"<&>","a":[1,null]})")),
            "{\"b\":\"\\u003c\\u0026\\u003e\",\"a\":[1,null]}");
  EXPECT_EQ(GoJson(ojson::parse(R"({"a":[],"b":{}})"), 4), "{\n    \"a\": [],\n    \"b\": {}\n}");
  EXPECT_EQ(GoRfc3339("2024-05-06T07:08:09.120000000Z"), "2024-05-06T07:08:09.12Z");
  EXPECT_EQ(GoRfc3339("2024-05-06T07:08:09.000Z"), "2024-05-06T07:08:09Z");
  EXPECT_EQ(GoRfc3339("1970-01-01T00:00:00Z"), "1970-01-01T00:00:00Z");
  EXPECT_EQ(GoRfc3339("2024-05-06T07:08:09+02:00"), "2024-05-06T07:08:09+02:00");
  EXPECT_EQ(GoRfc3339("2024-05-06T07:08:09+00:00"), "2024-05-06T07:08:09Z");
  EXPECT_EQ(GoRfc3339("2024-05-06 07:08:09"), std::nullopt);
  EXPECT_EQ(GoRfc3339("yesterday"), std::nullopt);
}

}  // namespace
}  // namespace mc::engine

namespace mc::engine {
namespace {

// inspect's ModelPack field is a map of maps: every level reads as a map.
TEST(GoTemplate, NestedMapsStayMaps) {
  ojson data = ojson::parse(R"({"ModelPack": {"descriptor": {"name": "m", "licenses": ["MIT"]},
                                               "config": {"paramSize": "1.6M"}}})");
  const TemplateSchema schema{{"ModelPack"}, {}, {}};
  auto r = RenderGoTemplate(
      "{{.ModelPack.descriptor.name}} {{.ModelPack.config.paramSize}} {{.ModelPack.config.x}} "
      "{{json .ModelPack.config}} {{index .ModelPack.descriptor.licenses 0}}",
      data, schema);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "m 1.6M <no value> {\"paramSize\":\"1.6M\"} MIT\n");
}

}  // namespace
}  // namespace mc::engine
