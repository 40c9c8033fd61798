// `qdit quantize`: writes a copy of a diffusers pipeline folder whose chosen components hold
// quantized Linear weights (the scheme's parts, in its library's key layout, replacing
// "<module>.weight") and a `quantization_config` in their config.json. Other components and
// files are copied unchanged. Loading the copy runs the stored codes without re-quantizing.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "qdit/io/diffusers_folder.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/quant/quant_config.h"

namespace qdit::api {

struct QuantizeOptions {
  bool overwrite = false;  // allow writing into a non-empty output folder
  std::function<void(const std::string& component, int done, int total)> progress;
};

// Bytes a model component's checkpoint would hold once quantized with `rule` (the Linear weights
// are quantized for real, so the number is exact); the checkpoint's size when `rule` matches none.
size_t quantized_checkpoint_bytes(const io::ModelFolder& f, const std::string& component,
                                  const quant::ComponentQuant& rule);

// Returns one row per model component (checkpoint bytes before and after).
std::vector<pipelines::ComponentStats> quantize_pipeline(const std::string& src, const std::string& out,
                                                         const quant::PipelineQuantConfig& cfg,
                                                         const QuantizeOptions& opt = {});

}  // namespace qdit::api
