// Why a template engine of our own: `inspect --format '{{.Digest}}'` is how
// scripts read an image's digest with skopeo, and users bring those scripts.
// No C++ library speaks Go's text/template; the part scripts use is small:
// field references, a few functions, if/range/with. We parse the whole
// template before producing anything, so a typo fails before any output, and
// we evaluate over the JSON the default output prints, with a schema telling
// maps from structs and times from strings, since Go prints them differently.
//
// The structure: a tokenizer for the inside of an action, a recursive-descent
// parser into a small tree (text, action, if, range, with), and an evaluator
// carrying the dot, the root ($) and a stack of variables.
#include "engine/go_template.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace mc::engine {
namespace {

using ojson = nlohmann::ordered_json;

oci::Error Bad(const std::string& what) {
  return oci::Error{oci::ErrorCode::kInvalidInput, "--format: " + what, 0, std::nullopt};
}

// ---- values ------------------------------------------------------------------

enum class Kind { kPlain, kStruct, kMap, kTime, kList, kNoValue };

struct Val {
  ojson j;
  Kind kind = Kind::kPlain;
};

Val Plain(ojson j) { return Val{std::move(j), Kind::kPlain}; }

// The kind of an element of a list or of a struct field.
Val Child(const ojson& j, const std::string& field, const TemplateSchema& s) {
  if (s.map_fields.contains(field)) return Val{j, Kind::kMap};
  if (s.time_fields.contains(field)) return Val{j, Kind::kTime};
  if (s.list_fields.contains(field) && j.is_null()) return Val{j, Kind::kList};
  if (j.is_object()) return Val{j, Kind::kStruct};
  return Plain(j);
}

Val Element(const ojson& j) { return j.is_object() ? Val{j, Kind::kStruct} : Plain(j); }

bool Truthy(const Val& v) {
  if (v.kind == Kind::kNoValue) return false;
  if (v.kind == Kind::kStruct) return true;
  const ojson& j = v.j;
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number()) return j.get<double>() != 0;
  if (j.is_string()) return !j.get_ref<const std::string&>().empty();
  if (j.is_array() || j.is_object()) return !j.empty();
  return true;
}

// Go's time.Time.String() of an RFC 3339 time: "2006-01-02 15:04:05.999999999 -0700 MST".
std::string GoTimeString(const std::string& rfc) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), already validated by GoRfc3339.
  std::string date = rfc.substr(0, 10), clock = rfc.substr(11, 8);
  size_t pos = 19;
  std::string frac;
  if (pos < rfc.size() && rfc[pos] == '.') {
    size_t end = pos + 1;
    while (end < rfc.size() && std::isdigit(static_cast<unsigned char>(rfc[end]))) ++end;
    frac = rfc.substr(pos, end - pos);
    pos = end;
  }
  std::string zone = rfc.substr(pos);
  std::string offset, name;
  if (zone == "Z" || zone == "z") {
    offset = "+0000";
    name = "UTC";
  } else {
    offset = zone.substr(0, 3) + zone.substr(4, 2);
    name = offset;
  }
  return date + " " + clock + frac + " " + offset + " " + name;
}

std::string Print(const Val& v, const TemplateSchema& s);

std::string PrintJson(const ojson& j, Kind kind, const TemplateSchema& s) {
  return Print(Val{j, kind}, s);
}

std::string Print(const Val& v, const TemplateSchema& s) {
  const ojson& j = v.j;
  switch (v.kind) {
    case Kind::kNoValue:
      return "<no value>";
    case Kind::kTime:
      if (j.is_string()) return GoTimeString(j.get<std::string>());
      return "<nil>";
    case Kind::kMap: {
      std::string out = "map[";
      std::vector<std::pair<std::string, const ojson*>> items;
      if (j.is_object()) {
        for (const auto& [k, val] : j.items()) items.emplace_back(k, &val);
      }
      std::sort(items.begin(), items.end());
      for (size_t i = 0; i < items.size(); ++i) {
        out += (i ? " " : "") + items[i].first + ":" + PrintJson(*items[i].second, Kind::kPlain, s);
      }
      return out + "]";
    }
    case Kind::kStruct: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : j.items()) {
        out += (first ? "" : " ") + Print(Child(val, k, s), s);
        first = false;
      }
      return out + "}";
    }
    case Kind::kList:
      if (j.is_null()) return "[]";
      break;
    case Kind::kPlain:
      break;
  }
  if (j.is_null()) return "<nil>";
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_integer() || j.is_number_unsigned()) return j.dump();
  if (j.is_number_float()) {
    double d = j.get<double>();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", d);
    return buf;
  }
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? " " : "") + Print(Element(j[i]), s);
    return out + "]";
  }
  return Print(Val{j, Kind::kStruct}, s);
}

// The value Go's encoding/json would see: maps with sorted keys (Go sorts
// them), structs in field order.
ojson GoValue(const Val& v, const TemplateSchema& s) {
  const ojson& j = v.j;
  if (v.kind == Kind::kNoValue) return nullptr;
  if (j.is_object()) {
    if (v.kind == Kind::kMap) {
      std::vector<std::string> keys;
      for (const auto& [k, _] : j.items()) keys.push_back(k);
      std::sort(keys.begin(), keys.end());
      ojson out = ojson::object();
      for (const auto& k : keys) out[k] = j[k];
      return out;
    }
    ojson out = ojson::object();
    for (const auto& [k, val] : j.items()) out[k] = GoValue(Child(val, k, s), s);
    return out;
  }
  if (j.is_array()) {
    ojson out = ojson::array();
    for (const auto& e : j) out.push_back(GoValue(Element(e), s));
    return out;
  }
  return j;
}

// ---- tokens inside an action ------------------------------------------------

enum class Tok {
  kDot,
  kField,
  kVar,
  kIdent,
  kString,
  kNumber,
  kBool,
  kPipe,
  kLParen,
  kRParen,
  kDeclare,
  kComma,
  kEnd
};

struct Token {
  Tok type;
  std::string text;     // field/var/ident name, decoded string, number text
  bool spaced = false;  // whitespace before it: `f .X` is two operands, `(p).X` one
};

oci::Result<std::vector<Token>> Tokenize(std::string_view a) {
  std::vector<Token> out;
  size_t i = 0;
  auto ident_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  bool spaced = false;
  while (i < a.size()) {
    char c = a[i];
    size_t before = out.size();
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      spaced = true;
      continue;
    } else if (c == '.') {
      size_t j = i + 1;
      while (j < a.size() && ident_char(a[j])) ++j;
      if (j == i + 1) {
        out.push_back({Tok::kDot, ""});
      } else {
        out.push_back({Tok::kField, std::string(a.substr(i + 1, j - i - 1))});
      }
      i = j;
    } else if (c == '$') {
      size_t j = i + 1;
      while (j < a.size() && ident_char(a[j])) ++j;
      out.push_back({Tok::kVar, std::string(a.substr(i, j - i))});
      i = j;
    } else if (c == '"') {
      std::string s;
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= a.size()) return std::unexpected(Bad("unterminated quoted string"));
        if (a[j] == '"') break;
        if (a[j] == '\\') {
          if (++j >= a.size()) return std::unexpected(Bad("unterminated quoted string"));
          switch (a[j]) {
            case 'n':
              s += '\n';
              break;
            case 't':
              s += '\t';
              break;
            case 'r':
              s += '\r';
              break;
            case '\\':
              s += '\\';
              break;
            case '"':
              s += '"';
              break;
            default:
              return std::unexpected(
                  Bad(std::string("unsupported escape \\") + a[j] + " in a quoted string"));
          }
        } else {
          s += a[j];
        }
      }
      out.push_back({Tok::kString, s});
      i = j + 1;
    } else if (c == '`') {
      size_t j = a.find('`', i + 1);
      if (j == std::string_view::npos) return std::unexpected(Bad("unterminated raw string"));
      out.push_back({Tok::kString, std::string(a.substr(i + 1, j - i - 1))});
      i = j + 1;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '-' && i + 1 < a.size() &&
                std::isdigit(static_cast<unsigned char>(a[i + 1])))) {
      size_t j = i + 1;
      while (j < a.size() && std::isdigit(static_cast<unsigned char>(a[j]))) ++j;
      out.push_back({Tok::kNumber, std::string(a.substr(i, j - i))});
      i = j;
    } else if (c == '|') {
      out.push_back({Tok::kPipe, ""});
      ++i;
    } else if (c == '(') {
      out.push_back({Tok::kLParen, ""});
      ++i;
    } else if (c == ')') {
      out.push_back({Tok::kRParen, ""});
      ++i;
    } else if (c == ',') {
      out.push_back({Tok::kComma, ""});
      ++i;
    } else if (c == ':' && i + 1 < a.size() && a[i + 1] == '=') {
      out.push_back({Tok::kDeclare, ""});
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < a.size() && ident_char(a[j])) ++j;
      std::string word(a.substr(i, j - i));
      out.push_back({word == "true" || word == "false" ? Tok::kBool : Tok::kIdent, word});
      i = j;
    } else {
      return std::unexpected(Bad(std::string("unexpected \"") + c + "\""));
    }
    if (out.size() > before) out.back().spaced = spaced;
    spaced = false;
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

// ---- syntax tree --------------------------------------------------------------

struct Pipeline;

// An operand: a literal, the dot, a variable, a function name or a
// parenthesised pipeline, followed by field names.
struct Operand {
  enum class Type { kLiteral, kDot, kVar, kFunc, kParen } type;
  ojson literal;
  std::string name;  // variable or function
  std::shared_ptr<Pipeline> inner;
  std::vector<std::string> fields;
};

struct Command {
  std::vector<Operand> args;  // args[0] is the function or the value
};

struct Pipeline {
  std::vector<std::string> decl;  // $x := / $i, $e :=
  std::vector<Command> cmds;
};

struct Node {
  enum class Type { kText, kAction, kIf, kRange, kWith } type;
  std::string text;
  Pipeline pipe;
  std::vector<Node> body, otherwise;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> t) : t_(std::move(t)) {}

  oci::Result<Pipeline> ParsePipeline(bool allow_decl) {
    Pipeline p;
    if (allow_decl && Peek().type == Tok::kVar) {
      // $x := … or $i, $e := …
      size_t save = pos_;
      std::vector<std::string> vars{Next().text};
      if (Peek().type == Tok::kComma) {
        Next();
        if (Peek().type != Tok::kVar) return std::unexpected(Bad("expected a variable after ,"));
        vars.push_back(Next().text);
      }
      if (Peek().type == Tok::kDeclare) {
        Next();
        p.decl = std::move(vars);
      } else {
        pos_ = save;
      }
    }
    for (;;) {
      Command c;
      while (Peek().type != Tok::kPipe && Peek().type != Tok::kEnd && Peek().type != Tok::kRParen) {
        MC_ASSIGN_OR_RETURN(Operand o, ParseOperand());
        c.args.push_back(std::move(o));
      }
      if (c.args.empty()) return std::unexpected(Bad("missing value in a pipeline"));
      p.cmds.push_back(std::move(c));
      if (Peek().type != Tok::kPipe) break;
      Next();
    }
    return p;
  }

  bool AtEnd() const { return t_[pos_].type == Tok::kEnd; }

 private:
  const Token& Peek() const { return t_[pos_]; }
  const Token& Next() { return t_[pos_ < t_.size() - 1 ? pos_++ : pos_]; }

  oci::Result<Operand> ParseOperand() {
    Operand o;
    const Token& tok = Next();
    switch (tok.type) {
      case Tok::kDot:
        o.type = Operand::Type::kDot;
        break;
      case Tok::kField:
        o.type = Operand::Type::kDot;
        o.fields.push_back(tok.text);
        break;
      case Tok::kVar:
        o.type = Operand::Type::kVar;
        o.name = tok.text;
        break;
      case Tok::kString:
        o.type = Operand::Type::kLiteral;
        o.literal = tok.text;
        break;
      case Tok::kNumber:
        o.type = Operand::Type::kLiteral;
        o.literal = std::stoll(tok.text);
        break;
      case Tok::kBool:
        o.type = Operand::Type::kLiteral;
        o.literal = tok.text == "true";
        break;
      case Tok::kIdent:
        o.type = Operand::Type::kFunc;
        o.name = tok.text;
        break;
      case Tok::kLParen: {
        o.type = Operand::Type::kParen;
        MC_ASSIGN_OR_RETURN(Pipeline inner, ParsePipeline(false));
        if (Next().type != Tok::kRParen) return std::unexpected(Bad("missing )"));
        o.inner = std::make_shared<Pipeline>(std::move(inner));
        break;
      }
      default:
        return std::unexpected(Bad("unexpected token in an action"));
    }
    while (Peek().type == Tok::kField && !Peek().spaced) o.fields.push_back(Next().text);
    return o;
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
};

// One {{ }} or text piece of the template, before building the tree.
struct Piece {
  bool action;
  std::string text;  // text, or the inside of the action (trimmed)
};

oci::Result<std::vector<Piece>> Split(std::string_view f) {
  std::vector<Piece> out;
  size_t i = 0;
  bool trim_next = false;
  while (i <= f.size()) {
    size_t open = f.find("{{", i);
    std::string text(
        f.substr(i, open == std::string_view::npos ? std::string_view::npos : open - i));
    if (trim_next)
      text.erase(0, text.find_first_not_of(" \t\r\n") == std::string::npos
                        ? text.size()
                        : text.find_first_not_of(" \t\r\n"));
    if (open == std::string_view::npos) {
      out.push_back({false, text});
      break;
    }
    size_t start = open + 2;
    if (start + 1 < f.size() + 1 && f.substr(start, 2) == "- ") {
      size_t keep = text.find_last_not_of(" \t\r\n");
      text.erase(keep == std::string::npos ? 0 : keep + 1);
      start += 2;
    }
    out.push_back({false, text});
    // The action ends at the first }} outside a string literal.
    size_t j = start;
    char quote = 0;
    for (; j + 1 < f.size(); ++j) {
      char c = f[j];
      if (quote) {
        if (c == '\\' && quote == '"') {
          ++j;
        } else if (c == quote) {
          quote = 0;
        }
      } else if (c == '"' || c == '`') {
        quote = c;
      } else if (c == '}' && f[j + 1] == '}') {
        break;
      }
    }
    if (j + 1 >= f.size()) return std::unexpected(Bad("unclosed action (missing }})"));
    std::string inside(f.substr(start, j - start));
    trim_next = false;
    if (inside.size() >= 2 && inside.ends_with(" -")) {
      inside.resize(inside.size() - 2);
      trim_next = true;
    }
    out.push_back({true, inside});
    i = j + 2;
  }
  return out;
}

// Outside actions, \t and \n written literally stand for a tab and a newline.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 't' || s[i + 1] == 'n')) {
      out += s[i + 1] == 't' ? '\t' : '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string FirstWord(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_first_of(" \t\r\n(", b);
  return s.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

std::string AfterWord(const std::string& s, const std::string& word) {
  size_t b = s.find(word);
  return s.substr(b + word.size());
}

class TreeBuilder {
 public:
  explicit TreeBuilder(std::vector<Piece> pieces) : p_(std::move(pieces)) {}

  // Parses nodes until {{end}} / {{else…}} (returned in *stop) or the end.
  oci::Result<std::vector<Node>> Parse(std::string* stop) {
    std::vector<Node> nodes;
    while (i_ < p_.size()) {
      const Piece& piece = p_[i_++];
      if (!piece.action) {
        if (!piece.text.empty())
          nodes.push_back({Node::Type::kText, Unescape(piece.text), {}, {}, {}});
        continue;
      }
      std::string inside = piece.text;
      size_t b = inside.find_first_not_of(" \t\r\n");
      if (b == std::string::npos) return std::unexpected(Bad("empty action {{}}"));
      if (inside.compare(b, 2, "/*") == 0) {
        if (inside.find("*/") == std::string::npos) return std::unexpected(Bad("unclosed comment"));
        continue;
      }
      std::string word = FirstWord(inside);
      if (word == "end" || word == "else") {
        if (!stop) return std::unexpected(Bad("{{" + word + "}} without if, range or with"));
        *stop = inside.substr(b);
        return nodes;
      }
      if (word == "if" || word == "range" || word == "with") {
        MC_ASSIGN_OR_RETURN(Node n, Block(word, AfterWord(inside, word)));
        nodes.push_back(std::move(n));
        continue;
      }
      if (word == "define" || word == "template" || word == "block" || word == "break" ||
          word == "continue") {
        return std::unexpected(Bad("{{" + word + "}} is not supported"));
      }
      MC_ASSIGN_OR_RETURN(Pipeline pipe, ParseAction(inside, true));
      nodes.push_back({Node::Type::kAction, "", std::move(pipe), {}, {}});
    }
    if (stop) return std::unexpected(Bad("missing {{end}}"));
    return nodes;
  }

 private:
  static oci::Result<Pipeline> ParseAction(const std::string& text, bool allow_decl) {
    MC_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text));
    Parser parser(std::move(tokens));
    MC_ASSIGN_OR_RETURN(Pipeline pipe, parser.ParsePipeline(allow_decl));
    if (!parser.AtEnd()) return std::unexpected(Bad("unexpected text in {{" + text + "}}"));
    return pipe;
  }

  oci::Result<Node> Block(const std::string& word, const std::string& rest) {
    Node n;
    n.type = word == "if"      ? Node::Type::kIf
             : word == "range" ? Node::Type::kRange
                               : Node::Type::kWith;
    MC_ASSIGN_OR_RETURN(n.pipe, ParseAction(rest, word != "if"));
    if (n.pipe.decl.size() == 2 && word != "range") {
      return std::unexpected(Bad("two variables are only allowed in range"));
    }
    std::string stop;
    MC_ASSIGN_OR_RETURN(n.body, Parse(&stop));
    if (stop == "end") return n;
    // else, or else if …
    std::string after = stop.substr(4);
    std::string next = FirstWord(after);
    if (next.empty()) {
      MC_ASSIGN_OR_RETURN(n.otherwise, Parse(&stop));
      if (stop != "end") return std::unexpected(Bad("{{" + stop + "}} after {{else}}"));
      return n;
    }
    if (next == "if" && word == "if") {
      // {{else if X}} … is {{else}}{{if X}} … {{end}}{{end}} sharing the end.
      MC_ASSIGN_OR_RETURN(Node inner, Block("if", AfterWord(after, "if")));
      n.otherwise.push_back(std::move(inner));
      return n;
    }
    return std::unexpected(Bad("{{" + stop + "}} is not supported"));
  }

  std::vector<Piece> p_;
  size_t i_ = 0;
};

// ---- evaluation ---------------------------------------------------------------

class Evaluator {
 public:
  Evaluator(const ojson& root, const TemplateSchema& s) : s_(s), root_{root, Kind::kStruct} {
    vars_.push_back({"$", root_});
  }

  oci::Result<void> Run(const std::vector<Node>& nodes, const Val& dot, std::string& out) {
    for (const auto& n : nodes) {
      switch (n.type) {
        case Node::Type::kText:
          out += n.text;
          break;
        case Node::Type::kAction: {
          MC_ASSIGN_OR_RETURN(Val v, Eval(n.pipe, dot));
          if (n.pipe.decl.empty()) out += Print(v, s_);
          break;
        }
        case Node::Type::kIf: {
          MC_ASSIGN_OR_RETURN(Val v, Eval(n.pipe, dot));
          MC_RETURN_IF_ERROR(Run(Truthy(v) ? n.body : n.otherwise, dot, out));
          break;
        }
        case Node::Type::kWith: {
          size_t mark = vars_.size();
          MC_ASSIGN_OR_RETURN(Val v, Eval(n.pipe, dot));
          if (Truthy(v)) {
            MC_RETURN_IF_ERROR(Run(n.body, v, out));
          } else {
            MC_RETURN_IF_ERROR(Run(n.otherwise, dot, out));
          }
          vars_.resize(mark);
          break;
        }
        case Node::Type::kRange:
          MC_RETURN_IF_ERROR(Range(n, dot, out));
          break;
      }
    }
    return {};
  }

 private:
  oci::Result<void> Range(const Node& n, const Val& dot, std::string& out) {
    Pipeline pipe = n.pipe;
    std::vector<std::string> decl = std::move(pipe.decl);
    pipe.decl.clear();
    MC_ASSIGN_OR_RETURN(Val v, Eval(pipe, dot));
    std::vector<std::pair<ojson, Val>> items;  // (key or index, element)
    if (v.kind == Kind::kNoValue || v.j.is_null()) {
      // nothing
    } else if (v.j.is_array()) {
      for (size_t i = 0; i < v.j.size(); ++i) items.emplace_back(ojson(i), Element(v.j[i]));
    } else if (v.kind == Kind::kMap && v.j.is_object()) {
      std::vector<std::string> keys;
      for (const auto& [k, _] : v.j.items()) keys.push_back(k);
      std::sort(keys.begin(), keys.end());
      for (const auto& k : keys) items.emplace_back(ojson(k), Plain(v.j[k]));
    } else {
      return std::unexpected(Bad("range can't iterate over " + Print(v, s_)));
    }
    if (items.empty()) return Run(n.otherwise, dot, out);
    for (const auto& [key, elem] : items) {
      size_t mark = vars_.size();
      if (decl.size() == 1) vars_.push_back({decl[0], elem});
      if (decl.size() == 2) {
        vars_.push_back({decl[0], Plain(key)});
        vars_.push_back({decl[1], elem});
      }
      auto r = Run(n.body, elem, out);
      vars_.resize(mark);
      if (!r) return r;
    }
    return {};
  }

  oci::Result<Val> Field(const Val& v, const std::string& name) {
    // Go: a field of a missing map value is missing too.
    if (v.kind == Kind::kNoValue) return v;
    if (v.kind == Kind::kMap) {
      if (v.j.is_object() && v.j.contains(name)) {
        // A map of maps (inspect's ModelPack) stays a map all the way down,
        // as Go's map[string]any does.
        const ojson& c = v.j[name];
        return c.is_object() ? Val{c, Kind::kMap} : Plain(c);
      }
      return Val{nullptr, Kind::kNoValue};
    }
    if (v.kind == Kind::kStruct) {
      if (v.j.contains(name)) return Child(v.j[name], name, s_);
      if (&v.j == &root_.j || v.j == root_.j) {
        // Fields skopeo omits when empty (Name, Tag, Variant) are still fields.
        if (name == "Name" || name == "Tag" || name == "Variant") return Plain("");
      }
      return std::unexpected(Bad("can't evaluate field " + name));
    }
    if (v.kind == Kind::kTime) {
      return std::unexpected(Bad(
          "field " + name + " of a time is not supported (use {{.Created}} or {{json .Created}})"));
    }
    return std::unexpected(Bad("can't evaluate field " + name + " in " + Print(v, s_)));
  }

  oci::Result<Val> Operand_(const Operand& o, const Val& dot, std::optional<Val> piped,
                            const std::vector<Operand>& args, size_t first_arg) {
    Val v;
    switch (o.type) {
      case Operand::Type::kLiteral:
        v = Plain(o.literal);
        break;
      case Operand::Type::kDot:
        v = dot;
        break;
      case Operand::Type::kVar: {
        auto it = std::find_if(vars_.rbegin(), vars_.rend(),
                               [&](const auto& p) { return p.first == o.name; });
        if (it == vars_.rend()) return std::unexpected(Bad("undefined variable " + o.name));
        v = it->second;
        break;
      }
      case Operand::Type::kParen: {
        MC_ASSIGN_OR_RETURN(v, Eval(*o.inner, dot));
        break;
      }
      case Operand::Type::kFunc: {
        std::vector<Val> values;
        for (size_t i = first_arg; i < args.size(); ++i) {
          MC_ASSIGN_OR_RETURN(Val a, Operand_(args[i], dot, std::nullopt, {}, 0));
          values.push_back(std::move(a));
        }
        if (piped) values.push_back(*piped);
        MC_ASSIGN_OR_RETURN(v, Call(o.name, values));
        break;
      }
    }
    for (const auto& f : o.fields) {
      MC_ASSIGN_OR_RETURN(v, Field(v, f));
    }
    return v;
  }

  oci::Result<Val> Eval(const Pipeline& p, const Val& dot) {
    std::optional<Val> piped;
    for (const auto& c : p.cmds) {
      const Operand& head = c.args[0];
      if (head.type != Operand::Type::kFunc && (c.args.size() > 1 || piped)) {
        return std::unexpected(Bad("can't give an argument to a non-function"));
      }
      MC_ASSIGN_OR_RETURN(Val v, Operand_(head, dot, piped, c.args, 1));
      piped = std::move(v);
    }
    if (p.decl.size() == 1) vars_.push_back({p.decl[0], *piped});
    return *piped;
  }

  static std::optional<double> Number(const Val& v) {
    if (v.kind == Kind::kPlain && v.j.is_number()) return v.j.get<double>();
    return std::nullopt;
  }

  oci::Result<Val> Compare(const std::string& fn, const std::vector<Val>& a) {
    if (a.size() < 2) return std::unexpected(Bad(fn + " needs two arguments"));
    auto cmp = [&](const Val& x, const Val& y) -> oci::Result<int> {
      if (auto nx = Number(x), ny = Number(y); nx && ny) return *nx < *ny ? -1 : *nx > *ny ? 1 : 0;
      if (x.j.is_string() && y.j.is_string()) {
        int c = x.j.get<std::string>().compare(y.j.get<std::string>());
        return c < 0 ? -1 : c > 0 ? 1 : 0;
      }
      if (x.j.is_boolean() && y.j.is_boolean() && (fn == "eq" || fn == "ne")) {
        return x.j == y.j ? 0 : 1;
      }
      return std::unexpected(Bad(fn + ": incompatible types for comparison"));
    };
    if (fn == "eq") {
      for (size_t i = 1; i < a.size(); ++i) {
        MC_ASSIGN_OR_RETURN(int c, cmp(a[0], a[i]));
        if (c == 0) return Plain(true);
      }
      return Plain(false);
    }
    if (a.size() != 2) return std::unexpected(Bad(fn + " needs two arguments"));
    MC_ASSIGN_OR_RETURN(int c, cmp(a[0], a[1]));
    bool r = fn == "ne"   ? c != 0
             : fn == "lt" ? c < 0
             : fn == "le" ? c <= 0
             : fn == "gt" ? c > 0
                          : c >= 0;
    return Plain(r);
  }

  oci::Result<std::string> Printf(const std::vector<Val>& a) {
    if (a.empty() || !a[0].j.is_string())
      return std::unexpected(Bad("printf needs a format string"));
    const std::string f = a[0].j.get<std::string>();
    std::string out;
    size_t next = 1;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] != '%') {
        out += f[i];
        continue;
      }
      if (++i >= f.size()) return std::unexpected(Bad("printf: format ends with %"));
      char verb = f[i];
      if (verb == '%') {
        out += '%';
        continue;
      }
      if (verb != 's' && verb != 'v' && verb != 'd' && verb != 'q') {
        return std::unexpected(
            Bad(std::string("printf: verb %") + verb + " is not supported (use %s, %v, %d, %q)"));
      }
      if (next >= a.size()) {
        out += std::string("%!") + verb + "(MISSING)";
        continue;
      }
      const Val& v = a[next++];
      if (verb == 'q') {
        out += GoJson(ojson(Print(v, s_)));
      } else if (verb == 'd' && !Number(v)) {
        return std::unexpected(Bad("printf: %d of a value that is not a number"));
      } else {
        out += Print(v, s_);
      }
    }
    return out;
  }

  oci::Result<Val> Call(const std::string& fn, const std::vector<Val>& a) {
    auto want = [&](size_t n) -> oci::Result<void> {
      if (a.size() != n) {
        return oci::Fail(oci::ErrorCode::kInvalidInput,
                         "--format: " + fn + " takes " + std::to_string(n) + " argument" +
                             (n == 1 ? "" : "s") + ", got " + std::to_string(a.size()));
      }
      return {};
    };
    if (fn == "json") {
      MC_RETURN_IF_ERROR(want(1));
      return Plain(GoJson(GoValue(a[0], s_)));
    }
    if (fn == "len") {
      MC_RETURN_IF_ERROR(want(1));
      const ojson& j = a[0].j;
      if (j.is_string()) return Plain(j.get_ref<const std::string&>().size());
      if (j.is_array() || (j.is_object() && a[0].kind == Kind::kMap)) return Plain(j.size());
      if (j.is_null() && (a[0].kind == Kind::kList || a[0].kind == Kind::kMap)) return Plain(0);
      return std::unexpected(Bad("len of " + Print(a[0], s_) + " is not defined"));
    }
    if (fn == "index") {
      if (a.empty()) return std::unexpected(Bad("index needs an argument"));
      Val v = a[0];
      for (size_t i = 1; i < a.size(); ++i) {
        const Val& k = a[i];
        if (v.j.is_array() && k.j.is_number_integer()) {
          auto n = k.j.get<int64_t>();
          if (n < 0 || static_cast<size_t>(n) >= v.j.size()) {
            return std::unexpected(Bad("index out of range: " + std::to_string(n)));
          }
          v = Element(v.j[static_cast<size_t>(n)]);
        } else if (v.kind == Kind::kMap && k.j.is_string()) {
          const std::string key = k.j.get<std::string>();
          v = v.j.is_object() && v.j.contains(key) ? Plain(v.j[key]) : Plain("");
        } else {
          return std::unexpected(Bad("can't index " + Print(v, s_) + " with " + Print(k, s_)));
        }
      }
      return v;
    }
    if (fn == "print" || fn == "println") {
      std::string out;
      for (size_t i = 0; i < a.size(); ++i) {
        // Sprint adds spaces between operands when neither is a string; Sprintln always.
        bool space = fn == "println" || (i > 0 && !a[i - 1].j.is_string() && !a[i].j.is_string());
        if (i > 0 && space) out += " ";
        out += Print(a[i], s_);
      }
      if (fn == "println") out += "\n";
      return Plain(out);
    }
    if (fn == "printf") {
      MC_ASSIGN_OR_RETURN(std::string s, Printf(a));
      return Plain(s);
    }
    if (fn == "not") {
      MC_RETURN_IF_ERROR(want(1));
      return Plain(!Truthy(a[0]));
    }
    if (fn == "and" || fn == "or") {
      if (a.empty()) return std::unexpected(Bad(fn + " needs arguments"));
      for (const auto& v : a) {
        if (Truthy(v) == (fn == "or")) return v;
      }
      return a.back();
    }
    if (fn == "eq" || fn == "ne" || fn == "lt" || fn == "le" || fn == "gt" || fn == "ge") {
      return Compare(fn, a);
    }
    return std::unexpected(Bad("function \"" + fn +
                               "\" is not supported (supported: json, index, len, print, printf, "
                               "println, eq, ne, lt, le, gt, ge, not, and, or)"));
  }

  const TemplateSchema& s_;
  Val root_;
  std::vector<std::pair<std::string, Val>> vars_;
};

void AppendGoEscaped(std::string& out, const std::string& dumped) {
  // nlohmann escapes quotes, backslashes and control characters as JSON
  // requires; Go's encoder also escapes <, >, & and U+2028/U+2029. Outside
  // strings JSON has none of these characters, so a plain pass is exact.
  for (size_t i = 0; i < dumped.size(); ++i) {
    char c = dumped[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (static_cast<unsigned char>(c) == 0xe2 && i + 2 < dumped.size() &&
               static_cast<unsigned char>(dumped[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(dumped[i + 2]) == 0xa8 ||
                static_cast<unsigned char>(dumped[i + 2]) == 0xa9)) {
      out += static_cast<unsigned char>(dumped[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string GoJson(const ojson& value, int indent) {
  std::string dumped =
      value.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  std::string out;
  out.reserve(dumped.size());
  AppendGoEscaped(out, dumped);
  return out;
}

std::optional<std::string> GoRfc3339(std::string_view s) {
  auto digits = [&](size_t at, size_t n) {
    if (at + n > s.size()) return false;
    for (size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
  };
  if (!digits(0, 4) || s.size() < 20 || s[4] != '-' || !digits(5, 2) || s[7] != '-' ||
      !digits(8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(11, 2) || s[13] != ':' ||
      !digits(14, 2) || s[16] != ':' || !digits(17, 2)) {
    return std::nullopt;
  }
  std::string out(s.substr(0, 19));
  out[10] = 'T';
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    size_t end = pos + 1;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
    if (end == pos + 1) return std::nullopt;
    std::string frac(s.substr(pos + 1, std::min<size_t>(end - pos - 1, 9)));
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    if (!frac.empty()) out += "." + frac;
    pos = end;
  }
  std::string_view zone = s.substr(pos);
  if (zone == "Z" || zone == "z") {
    out += "Z";
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(pos + 1, 2) &&
             zone[3] == ':' && digits(pos + 4, 2)) {
    out += zone == "+00:00" || zone == "-00:00" ? std::string("Z") : std::string(zone);
  } else {
    return std::nullopt;
  }
  return out;
}

oci::Result<void> CheckGoTemplate(std::string_view format) {
  MC_ASSIGN_OR_RETURN(std::vector<Piece> pieces, Split(format));
  TreeBuilder builder(std::move(pieces));
  MC_ASSIGN_OR_RETURN(std::vector<Node> tree, builder.Parse(nullptr));
  (void)tree;
  return {};
}

oci::Result<std::string> RenderGoTemplate(std::string_view format, const ojson& data,
                                          const TemplateSchema& schema) {
  MC_ASSIGN_OR_RETURN(std::vector<Piece> pieces, Split(format));
  TreeBuilder builder(std::move(pieces));
  MC_ASSIGN_OR_RETURN(std::vector<Node> tree, builder.Parse(nullptr));
  Evaluator ev(data, schema);
  std::string out;
  MC_RETURN_IF_ERROR(ev.Run(tree, Val{data, Kind::kStruct}, out));
  std::string normalized = Unescape(std::string(format));
  if (normalized.empty() || normalized.back() != '\n') out += "\n";
  return out;
}

}  // namespace mc::engine
