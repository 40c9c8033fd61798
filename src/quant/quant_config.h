// Which component gets which scheme, in diffusers' vocabulary (PipelineQuantizationConfig):
// a global scheme for `components_to_quantize` (every component when empty), or a per-component
// `quant_mapping`; each with `modules_to_not_convert` patterns. Built from the CLI spec or a JSON
// file; schemes are checked against the registry when parsed.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qdit::quant {

struct ComponentQuant {
  std::string scheme;                // registry name
  std::vector<std::string> exclude;  // module patterns left in float (see module_excluded)
};

struct PipelineQuantConfig {
  std::optional<ComponentQuant> global;
  std::vector<std::string> components;           // global mode: empty = every component
  std::map<std::string, ComponentQuant> mapping;  // granular mode

  bool empty() const { return !global && mapping.empty(); }
  std::optional<ComponentQuant> for_component(const std::string& component) const;
  std::string str() const;  // one line, for summaries and PNG parameters

  // CLI: "SCHEME" (every component), "SCHEME@comp+comp", or "comp=SCHEME,comp=SCHEME".
  // `exclude` patterns are added to every rule.
  static PipelineQuantConfig parse_spec(const std::string& spec, const std::vector<std::string>& exclude = {});
  // A JSON file mirroring PipelineQuantizationConfig (see docs/quantization.md); errors name the file and key.
  static PipelineQuantConfig from_json_file(const std::string& path);
  static PipelineQuantConfig from_json_text(const std::string& text, const std::string& source);
};

// One library config object (diffusers' quant_kwargs vocabulary: quant_type, weights_dtype,
// load_in_4bit/8bit, bnb_4bit_quant_type, ...) -> the rule; `lenient` ignores other keys.
ComponentQuant rule_from_json(const nlohmann::json& config, const std::string& where, bool lenient);

// fnmatch semantics on module paths: a pattern excludes a module when it matches the full path,
// its last name, any dotted suffix ("attn.to_q") or an ancestor ("transformer_blocks.0").
bool module_excluded(const std::string& path, const std::vector<std::string>& patterns);

}  // namespace qdit::quant
