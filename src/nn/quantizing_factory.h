// A LinearFactory that quantizes each Linear weight on load with one scheme, except the modules
// its exclude patterns name and shapes the scheme cannot take (they stay float, as in diffusers).
// An optional sink sees every quantized weight (qdit quantize writes them to a checkpoint).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "qdit/nn/context.h"
#include "qdit/quant/quant_config.h"
#include "qdit/quant/scheme.h"

namespace qdit::nn {

class QuantizingLinearFactory : public LinearFactory {
 public:
  using Sink = std::function<void(const std::string& path, const quant::QuantizedWeight&)>;
  QuantizingLinearFactory(quant::ComponentQuant rule, Sink sink = {});
  std::unique_ptr<kernels::LinearKernel> make(const std::string& path, const Tensor& weight, const Tensor& bias,
                                              DType compute) const override;

 private:
  quant::ComponentQuant rule_;
  const quant::Scheme& scheme_;
  Sink sink_;
};

// The module context for one component under a pipeline quantization config.
ModuleContext context_for_component(const ModuleContext& base, const quant::PipelineQuantConfig& cfg,
                                    const std::string& component, QuantizingLinearFactory::Sink sink = {});

}  // namespace qdit::nn
