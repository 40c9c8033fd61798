#include "quant_args.h"

#include <sstream>
#include <vector>

#include "qdit/core/error.h"

namespace qdit::cli {

bool QuantArgs::parse(const std::string& a, const std::function<std::string()>& value) {
  if (a == "--quant") spec = value();
  else if (a == "--quant-exclude") exclude = value();
  else if (a == "--quant-config") config_file = value();
  else return false;
  return true;
}

quant::PipelineQuantConfig QuantArgs::resolve() const {
  QDIT_CHECK(spec.empty() || config_file.empty(), "[quant] give --quant or --quant-config, not both");
  std::vector<std::string> patterns;
  std::istringstream is(exclude);
  for (std::string p; std::getline(is, p, ',');)
    if (!p.empty()) patterns.push_back(p);
  if (!config_file.empty()) {
    quant::PipelineQuantConfig cfg = quant::PipelineQuantConfig::from_json_file(config_file);
    if (cfg.global) cfg.global->exclude.insert(cfg.global->exclude.end(), patterns.begin(), patterns.end());
    for (auto& [c, rule] : cfg.mapping) rule.exclude.insert(rule.exclude.end(), patterns.begin(), patterns.end());
    return cfg;
  }
  QDIT_CHECK(!spec.empty() || patterns.empty(), "[quant] --quant-exclude needs --quant or --quant-config");
  return spec.empty() ? quant::PipelineQuantConfig{} : quant::PipelineQuantConfig::parse_spec(spec, patterns);
}

const char* QuantArgs::help() {
  return "  --quant SPEC         quantize on load: SCHEME (every component), SCHEME@comp+comp, or comp=SCHEME,...\n"
         "                       schemes: qint8 qfloat8 qfloat8_e5m2 qint4 qint2 int8wo int8dq int4wo[-32|-64|-256]\n"
         "                       int4dq float8wo float8wo_e5m2 float8dq float8dq_row fpX_eAmB uint1wo..uint7wo\n"
         "                       nf4 nf4_dq fp4 fp4_dq llm_int8\n"
         "  --quant-exclude PATS modules left in float, comma-separated fnmatch patterns (e.g. proj_out)\n"
         "  --quant-config FILE  JSON mirroring diffusers' PipelineQuantizationConfig\n";
}

}  // namespace qdit::cli
