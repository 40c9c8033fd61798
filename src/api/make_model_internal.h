// Pieces of `qdit make-model` shared between its files (not a public API).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qdit/api/make_model.h"

namespace qdit::api::make_model_detail {

// Writes `j` as Python's json.dumps(j, indent=2, sort_keys=True) + "\n" does (what diffusers and
// transformers save_pretrained write), including the bare -Infinity / Infinity / NaN tokens.
void write_json_file(const std::string& path, const nlohmann::json& j);

// Every tensor of a model of `class_name` built from `config` (the config.json content), in
// module registration order, with its initialisation. Throws naming the class when unknown.
std::vector<WeightSpec> plan_weights(const std::string& class_name, const nlohmann::json& config);

// The components of one architecture (configs, classes, tokenizers), weights not yet planned.
PipelineSpec plan_components(const std::string& arch, bool tiny, DType dtype);

}  // namespace qdit::api::make_model_detail
