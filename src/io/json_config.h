// JsonConfig: a JSON object loaded from a config file (config.json, model_index.json,
// scheduler_config.json, ...) with strictly typed accessors whose errors name the file and
// the key. Models, schedulers and pipelines read their hyper-parameters through it.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "qdit/core/error.h"

namespace qdit::io {

namespace detail {

template <typename T> struct is_vector : std::false_type {};
template <typename U> struct is_vector<std::vector<U>> : std::true_type {};
template <typename T> struct is_optional : std::false_type {};
template <typename U> struct is_optional<std::optional<U>> : std::true_type {};
template <typename T> struct is_string_map : std::false_type {};
template <typename U> struct is_string_map<std::map<std::string, U>> : std::true_type {};

// "a string \"x\"", "an array", ...: what a value is, for error messages.
std::string json_describe(const nlohmann::json& v);

[[noreturn]] void json_type_error(const std::string& where, const char* expected, const nlohmann::json& v);

// Strict conversion: no silent float->int truncation, no number<->string or bool<->number
// coercion, integer range checked. `where` is "[file] key 'k'" (plus "[i]" for elements).
template <typename T>
T json_as(const nlohmann::json& v, const std::string& where) {
  if constexpr (std::is_same_v<T, nlohmann::json>) {
    return v;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) json_type_error(where, "a boolean", v);
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) json_type_error(where, "an integer", v);
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) json_type_error(where, "an integer in range", v);
      return static_cast<T>(u);
    }
    const int64_t s = v.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      json_type_error(where, "a non-negative integer", v);
    } else {
      if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          s > static_cast<int64_t>(std::numeric_limits<T>::max()))
        json_type_error(where, "an integer in range", v);
      return static_cast<T>(s);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) json_type_error(where, "a number", v);
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) json_type_error(where, "a string", v);
    return v.get<std::string>();
  } else if constexpr (is_optional<T>::value) {
    if (v.is_null()) return std::nullopt;
    return json_as<typename T::value_type>(v, where);
  } else if constexpr (is_vector<T>::value) {
    if (!v.is_array()) json_type_error(where, "an array", v);
    T out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(json_as<typename T::value_type>(v[i], where + "[" + std::to_string(i) + "]"));
    return out;
  } else if constexpr (is_string_map<T>::value) {
    if (!v.is_object()) json_type_error(where, "an object", v);
    T out;
    for (auto it = v.begin(); it != v.end(); ++it)
      out.emplace(it.key(), json_as<typename T::mapped_type>(it.value(), where + "." + it.key()));
    return out;
  } else {
    static_assert(sizeof(T) == 0, "JsonConfig: unsupported target type");
  }
}

}  // namespace detail

// Parses JSON text as Python's json module writes it: besides strict JSON, the bare tokens
// NaN, Infinity and -Infinity (diffusers configs contain e.g. "lambda_min_clipped": -Infinity)
// become the corresponding doubles. Errors name `origin` and the line and column.
nlohmann::json parse_json(const std::string& text, const std::string& origin);
nlohmann::ordered_json parse_ordered_json(const std::string& text, const std::string& origin);

class JsonConfig {
 public:
  JsonConfig() : json_(nlohmann::json::object()) {}
  // Reads and parses `path`; it must hold a JSON object. Errors name the file (and the line and
  // column of a syntax error).
  static JsonConfig load(const std::string& path);
  // Wraps an in-memory object; `origin` stands for the file name in error messages.
  static JsonConfig from_json(nlohmann::json j, std::string origin);

  const std::string& path() const { return path_; }
  const nlohmann::json& raw() const { return json_; }
  std::vector<std::string> keys() const;

  // Present and not null (diffusers writes null to mean "use the default").
  bool has(const std::string& key) const {
    auto it = json_.find(key);
    return it != json_.end() && !it->is_null();
  }

  // Throws naming the file and key when missing, null or of another type. T: bool, integers,
  // float/double, std::string, nlohmann::json, and std::vector / std::optional /
  // std::map<std::string, .> of those (std::optional accepts null).
  template <typename T>
  T get(const std::string& key) const {
    auto it = json_.find(key);
    if constexpr (detail::is_optional<T>::value) {
      if (it == json_.end()) return std::nullopt;
    } else {
      QDIT_CHECK(it != json_.end(), "[", path_, "] missing key '", key, "'");
      QDIT_CHECK(!it->is_null(), "[", path_, "] key '", key, "' is null, a value is required");
    }
    return detail::json_as<T>(*it, "[" + path_ + "] key '" + key + "'");
  }

  // Missing or null -> `fallback`; present with the wrong type -> error.
  template <typename T>
  T get_or(const std::string& key, const T& fallback) const {
    return has(key) ? get<T>(key) : fallback;
  }
  std::string get_or(const std::string& key, const char* fallback) const {
    return get_or<std::string>(key, std::string(fallback));
  }

  // A nested object as its own config; errors then read "[file:key] ...".
  JsonConfig sub(const std::string& key) const;

 private:
  std::string path_;
  nlohmann::json json_;
};

}  // namespace qdit::io
