#include "qdit/io/json_config.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qdit::io {

namespace detail {

std::string json_describe(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_array()) return ::qdit::detail::concat("an array of ", v.size(), " elements");
  if (v.is_object()) return "an object";
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  if (v.is_number_integer()) return ::qdit::detail::concat("an integer ", text);
  if (v.is_number_float()) return ::qdit::detail::concat("a number ", text);
  if (v.is_boolean()) return ::qdit::detail::concat("a boolean ", text);
  return ::qdit::detail::concat("a ", v.type_name(), " ", text);
}

void json_type_error(const std::string& where, const char* expected, const nlohmann::json& v) {
  fail(where, ": expected ", expected, ", found ", json_describe(v));
}

}  // namespace detail

namespace {

// Marker strings standing in for Python's non-finite literals until after parsing; they hold a
// control character, which no real config string can contain unescaped or needs.
constexpr const char* kNonFinite[][2] = {
    {"-Infinity", "\"\\u0001-Infinity\""}, {"Infinity", "\"\\u0001Infinity\""}, {"NaN", "\"\\u0001NaN\""}};

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Replaces bare NaN / Infinity / -Infinity outside strings by marker strings.
std::string mark_non_finite(const std::string& text, bool& found) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < text.size()) out.push_back(text[++i]);
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.push_back(c);
      continue;
    }
    bool replaced = false;
    for (const auto& nf : kNonFinite) {
      const size_t n = std::strlen(nf[0]);
      if (text.compare(i, n, nf[0]) == 0 && (i == 0 || !is_word_char(text[i - 1])) &&
          (i + n == text.size() || !is_word_char(text[i + n]))) {
        out += nf[1];
        i += n - 1;
        replaced = found = true;
        break;
      }
    }
    if (!replaced) out.push_back(c);
  }
  return out;
}

template <typename J>
void unmark_non_finite(J& j) {
  if (j.is_string()) {
    const auto& s = j.template get_ref<const std::string&>();
    if (s.size() > 1 && s[0] == '\x01') {
      if (s == "\x01NaN") j = std::numeric_limits<double>::quiet_NaN();
      else if (s == "\x01Infinity") j = std::numeric_limits<double>::infinity();
      else if (s == "\x01-Infinity") j = -std::numeric_limits<double>::infinity();
    }
  } else if (j.is_structured()) {
    for (auto& e : j) unmark_non_finite(e);
  }
}

template <typename J>
J parse_impl(const std::string& text, const std::string& origin) {
  bool found = false;
  const std::string marked = mark_non_finite(text, found);
  try {
    J j = J::parse(marked);
    if (found) unmark_non_finite(j);
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line L, column C: ..."
    if (auto k = what.find("] "); what.rfind("[json.exception", 0) == 0 && k != std::string::npos) what.erase(0, k + 2);
    fail("[", origin, "] malformed JSON: ", what);
  }
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& origin) {
  return parse_impl<nlohmann::json>(text, origin);
}

nlohmann::ordered_json parse_ordered_json(const std::string& text, const std::string& origin) {
  return parse_impl<nlohmann::ordered_json>(text, origin);
}

JsonConfig JsonConfig::load(const std::string& path) {
  std::error_code ec;
  QDIT_CHECK(std::filesystem::is_regular_file(path, ec), "[", path, "] config file not found",
             std::filesystem::exists(path, ec) ? " (not a regular file)" : "");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("[", path, "] cannot open config file: ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = parse_json(ss.str(), path);
  QDIT_CHECK(j.is_object(), "[", path, "] expected a JSON object at the top level, found ", detail::json_describe(j));
  return from_json(std::move(j), path);
}

JsonConfig JsonConfig::from_json(nlohmann::json j, std::string origin) {
  QDIT_CHECK(j.is_object(), "[", origin, "] expected a JSON object, found ", detail::json_describe(j));
  JsonConfig c;
  c.json_ = std::move(j);
  c.path_ = std::move(origin);
  return c;
}

std::vector<std::string> JsonConfig::keys() const {
  std::vector<std::string> k;
  for (auto it = json_.begin(); it != json_.end(); ++it) k.push_back(it.key());
  return k;
}

JsonConfig JsonConfig::sub(const std::string& key) const {
  auto it = json_.find(key);
  QDIT_CHECK(it != json_.end(), "[", path_, "] missing key '", key, "'");
  if (!it->is_object()) detail::json_type_error("[" + path_ + "] key '" + key + "'", "an object", *it);
  return from_json(*it, path_ + ":" + key);
}

}  // namespace qdit::io
