// A LinearFactory that quantizes each Linear weight on load with one scheme, except the modules
// its exclude patterns name and shapes the scheme cannot take (they stay float, as in diffusers).
// An optional sink sees every quantized weight (qdit quantize writes them to a checkpoint).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qdit/io/json_config.h"
#include "qdit/nn/context.h"
#include "qdit/quant/quant_config.h"
#include "qdit/quant/scheme.h"

namespace qdit::nn {

class QuantizingLinearFactory : public LinearFactory {
 public:
  using Sink = std::function<void(const std::string& path, const quant::QuantizedWeight&)>;
  // record_only: hand each quantized weight to the sink and build no kernels (the model is built
  // only to learn which tensors are Linear weights, as `qdit quantize` does); forward then fails.
  QuantizingLinearFactory(quant::ComponentQuant rule, Sink sink = {}, bool record_only = false);
  std::unique_ptr<kernels::LinearKernel> make(const std::string& path, const Tensor& weight, const Tensor& bias,
                                              DType compute) const override;
  std::unique_ptr<kernels::LinearKernel> make_fused(const std::string& path, const std::vector<std::string>& members,
                                                    const Tensor& weight, const Tensor& bias,
                                                    DType compute) const override;

 private:
  quant::ComponentQuant rule_;
  const quant::Scheme& scheme_;
  Sink sink_;
  bool record_only_ = false;
};

// Reads a checkpoint written by `qdit quantize`: Linears whose parts are stored run with the
// scheme's kernel, never re-quantized; the float ones (excluded modules) stay float.
class PrequantizedLinearFactory : public LinearFactory {
 public:
  // infer_dtype: take the source dtype from the parts (checkpoints that do not record it).
  PrequantizedLinearFactory(std::string scheme, DType source_dtype, std::string origin, bool infer_dtype = false);
  bool reads_parts() const override { return true; }
  std::unique_ptr<kernels::LinearKernel> make_from_parts(const std::string& path, std::map<std::string, Tensor> parts,
                                                         int64_t in, int64_t out, const Tensor& bias,
                                                         DType compute) const override;
  void check_parts(const std::string& path, std::map<std::string, Tensor> parts, int64_t in,
                   int64_t out) const override;

 private:
  std::string scheme_, origin_;
  DType source_dtype_;
  bool infer_dtype_ = false;
};

// The `quantization_config` qdit writes into a quantized component's config.json.
struct StoredQuantization {
  std::string scheme;
  DType source_dtype = DType::F32;
  std::vector<std::string> modules_to_not_convert;
  bool infer_dtype = false;  // diffusers bitsandbytes/quanto checkpoints: dtype read from the parts
};
// Reads it (nullopt when the config has none); other quant_methods are refused by name.
std::optional<StoredQuantization> stored_quantization(const io::JsonConfig& component_config);
nlohmann::json stored_quantization_json(const StoredQuantization& q);

// The module context for one component: pre-quantized when its config.json says so, otherwise
// quantized on load when the pipeline quantization config names it (asking for both is an error).
ModuleContext context_for_component(const ModuleContext& base, const quant::PipelineQuantConfig& cfg,
                                    const std::string& component, QuantizingLinearFactory::Sink sink = {},
                                    const io::JsonConfig* component_config = nullptr);

}  // namespace qdit::nn
