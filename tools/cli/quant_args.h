// The quantization flags shared by generate, check and quantize:
//   --quant SPEC           "SCHEME" (every component), "SCHEME@comp+comp" or "comp=SCHEME,comp=SCHEME"
//   --quant-exclude PATS   comma-separated module patterns left in float (fnmatch; e.g. proj_out)
//   --quant-config FILE    a JSON file mirroring diffusers' PipelineQuantizationConfig
#pragma once
#include <functional>
#include <string>

#include "qdit/quant/quant_config.h"

namespace qdit::cli {

struct QuantArgs {
  std::string spec, exclude, config_file;
  // Consumes flag `a` (reading its value through `value`) when it is a quantization flag.
  bool parse(const std::string& a, const std::function<std::string()>& value);
  quant::PipelineQuantConfig resolve() const;  // empty when no flag was given
  static const char* help();
};

}  // namespace qdit::cli
