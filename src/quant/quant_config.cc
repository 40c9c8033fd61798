#include "qdit/quant/quant_config.h"

#include <fnmatch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qdit/core/error.h"
#include "qdit/quant/scheme.h"

namespace qdit::quant {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string checked_scheme(const std::string& name, const std::string& where) {
  if (!has_scheme(name)) {
    try {
      find_scheme(name);
    } catch (const Error& e) {
      fail("[quant] ", where, ": ", e.what());
    }
  }
  return find_scheme(name).name();
}

using json = nlohmann::json;

std::vector<std::string> string_list(const json& j, const std::string& where) {
  if (j.is_null()) return {};
  if (j.is_string()) return {j.get<std::string>()};
  QDIT_CHECK(j.is_array(), "[quant] ", where, " must be a string or a list of strings");
  std::vector<std::string> out;
  for (const auto& e : j) {
    QDIT_CHECK(e.is_string(), "[quant] ", where, " must hold strings, found ", e.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

// One backend config (quant_backend + quant_kwargs, or a flat object with a quant_type) -> rule.
// lenient: ignore keys that do not choose the scheme (a checkpoint's serialized config carries many).
ComponentQuant rule_from_json(const json& j, const std::string& where, bool lenient) {
  QDIT_CHECK(j.is_object(), "[quant] ", where, " must be an object");
  std::string backend = j.value("quant_backend", "");
  json kw = j.contains("quant_kwargs") ? j["quant_kwargs"] : j;
  QDIT_CHECK(kw.is_object(), "[quant] ", where, ".quant_kwargs must be an object");
  ComponentQuant r;
  std::string scheme;
  for (const auto& [key, value] : kw.items()) {
    const std::string at = where + "." + key;
    if (key == "quant_backend" || key == "quant_kwargs" || key == "quant_method") continue;
    if (key == "quant_type") {
      scheme = value.get<std::string>();
    } else if (key == "weights_dtype") {  // diffusers QuantoConfig
      static const std::map<std::string, std::string> quanto = {
          {"int8", "qint8"}, {"float8", "qfloat8"}, {"int4", "qint4"}, {"int2", "qint2"}};
      auto it = quanto.find(value.get<std::string>());
      QDIT_CHECK(it != quanto.end(), "[quant] ", at, ": '", value.get<std::string>(),
                 "' is not one of int8, float8, int4, int2");
      scheme = it->second;
    } else if (key == "load_in_4bit") {
      if (value.get<bool>() && scheme.empty()) scheme = "fp4";  // BitsAndBytesConfig's default type
    } else if (key == "load_in_8bit") {
      if (value.get<bool>()) scheme = "llm_int8";
    } else if (key == "bnb_4bit_quant_type") {
      scheme = value.get<std::string>();
    } else if (key == "bnb_4bit_use_double_quant") {
      if (value.get<bool>()) r.exclude.push_back("\x01dq");  // marker resolved below
    } else if (key == "modules_to_not_convert" || key == "llm_int8_skip_modules") {
      for (auto& p : string_list(value, at)) r.exclude.push_back(p);
    } else if (key == "group_size") {
      r.exclude.push_back("\x01g" + std::to_string(value.get<int>()));
    } else if (key == "bnb_4bit_compute_dtype" || key == "llm_int8_threshold" || key == "quant_storage" ||
               key == "bnb_4bit_quant_storage") {
      // Compute dtype comes from --dtype; the threshold is bitsandbytes' default 6.0.
    } else if (!lenient) {
      fail("[quant] ", at, ": unknown key (known: quant_type, weights_dtype, load_in_4bit, load_in_8bit, "
           "bnb_4bit_quant_type, bnb_4bit_use_double_quant, group_size, modules_to_not_convert, llm_int8_skip_modules)");
    }
  }
  QDIT_CHECK(!scheme.empty(), "[quant] ", where, ": no scheme given (quant_type, weights_dtype or load_in_4bit/8bit)",
             backend.empty() ? "" : " for backend " + backend);
  std::vector<std::string> patterns;
  for (const auto& p : r.exclude) {
    if (p == "\x01dq") scheme += "_dq";
    else if (p.rfind("\x01g", 0) == 0) scheme += "-" + p.substr(2);
    else patterns.push_back(p);
  }
  r.exclude = patterns;
  r.scheme = checked_scheme(scheme, where);
  return r;
}



std::optional<ComponentQuant> PipelineQuantConfig::for_component(const std::string& component) const {
  if (!mapping.empty()) {
    auto it = mapping.find(component);
    if (it == mapping.end()) return std::nullopt;
    return it->second;
  }
  if (!global) return std::nullopt;
  if (components.empty() || std::find(components.begin(), components.end(), component) != components.end())
    return global;
  return std::nullopt;
}

std::string PipelineQuantConfig::str() const {
  if (empty()) return "none";
  std::string out;
  auto excl = [](const ComponentQuant& q) {
    std::string e;
    for (const auto& p : q.exclude) e += (e.empty() ? " (not " : ",") + p;
    return e.empty() ? e : e + ")";
  };
  if (global) {
    out = global->scheme + excl(*global);
    if (!components.empty()) {
      out += " on ";
      for (size_t i = 0; i < components.size(); ++i) out += (i ? "+" : "") + components[i];
    }
    return out;
  }
  for (const auto& [c, q] : mapping) out += (out.empty() ? "" : ", ") + c + "=" + q.scheme + excl(q);
  return out;
}

PipelineQuantConfig PipelineQuantConfig::parse_spec(const std::string& spec, const std::vector<std::string>& exclude) {
  PipelineQuantConfig cfg;
  QDIT_CHECK(!spec.empty(), "[quant] empty --quant spec");
  if (spec.find('=') != std::string::npos) {
    for (const auto& item : split(spec, ',')) {
      const size_t eq = item.find('=');
      QDIT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "[quant] --quant item '", item,
                 "' is not COMPONENT=SCHEME");
      cfg.mapping[item.substr(0, eq)] = {checked_scheme(item.substr(eq + 1), "--quant " + item), exclude};
    }
    return cfg;
  }
  const size_t at = spec.find('@');
  cfg.global = ComponentQuant{checked_scheme(spec.substr(0, at), "--quant"), exclude};
  if (at != std::string::npos) {
    cfg.components = split(spec.substr(at + 1), '+');
    QDIT_CHECK(!cfg.components.empty(), "[quant] --quant ", spec, ": no component after '@'");
  }
  return cfg;
}

PipelineQuantConfig PipelineQuantConfig::from_json_text(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  QDIT_CHECK(!j.is_discarded(), "[quant] ", source, ": malformed JSON");
  QDIT_CHECK(j.is_object(), "[quant] ", source, ": expected a JSON object");
  PipelineQuantConfig cfg;
  const bool granular = j.contains("quant_mapping");
  QDIT_CHECK(!(granular && (j.contains("quant_backend") || j.contains("quant_kwargs"))), "[quant] ", source,
             ": give either quant_mapping or quant_backend/quant_kwargs, not both (as diffusers requires)");
  for (const auto& [key, value] : j.items())
    QDIT_CHECK(key == "quant_mapping" || key == "quant_backend" || key == "quant_kwargs" ||
                   key == "components_to_quantize",
               "[quant] ", source, ": unknown key '", key,
               "' (known: quant_backend, quant_kwargs, components_to_quantize, quant_mapping)");
  if (granular) {
    QDIT_CHECK(j["quant_mapping"].is_object(), "[quant] ", source, ": quant_mapping must be an object");
    for (const auto& [component, rule] : j["quant_mapping"].items())
      cfg.mapping[component] = rule_from_json(rule, source + ": quant_mapping." + component, false);
    return cfg;
  }
  QDIT_CHECK(j.contains("quant_kwargs"), "[quant] ", source, ": missing quant_kwargs (or quant_mapping)");
  cfg.global = rule_from_json(j, source, false);
  if (j.contains("components_to_quantize"))
    cfg.components = string_list(j["components_to_quantize"], source + ": components_to_quantize");
  return cfg;
}

PipelineQuantConfig PipelineQuantConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  QDIT_CHECK(in.good(), "[quant] cannot open quantization config ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

bool module_excluded(const std::string& path, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return false;
  std::vector<std::string> candidates{path};
  for (size_t i = path.find('.'); i != std::string::npos; i = path.find('.', i + 1)) {
    candidates.push_back(path.substr(i + 1));  // dotted suffixes, down to the last name
    candidates.push_back(path.substr(0, i));   // ancestors
  }
  for (const auto& p : patterns)
    for (const auto& c : candidates)
      if (fnmatch(p.c_str(), c.c_str(), 0) == 0) return true;
  return false;
}

}  // namespace qdit::quant
