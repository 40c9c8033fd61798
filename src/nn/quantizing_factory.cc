#include "qdit/nn/quantizing_factory.h"

#include "qdit/quant/quantized_linear.h"

namespace qdit::nn {

QuantizingLinearFactory::QuantizingLinearFactory(quant::ComponentQuant rule, Sink sink)
    : rule_(std::move(rule)), scheme_(quant::find_scheme(rule_.scheme)), sink_(std::move(sink)) {}

std::unique_ptr<kernels::LinearKernel> QuantizingLinearFactory::make(const std::string& path, const Tensor& weight,
                                                                     const Tensor& bias, DType compute) const {
  if (weight.dim() != 2 || quant::module_excluded(path, rule_.exclude) ||
      !scheme_.applies_to(weight.size(0), weight.size(1)))
    return LinearFactory::make(path, weight, bias, compute);
  quant::QuantizedWeight q = quant::quantize_weight(scheme_, weight);
  if (sink_) sink_(path, q);
  return quant::make_quantized_linear(q, bias, compute);
}

ModuleContext context_for_component(const ModuleContext& base, const quant::PipelineQuantConfig& cfg,
                                    const std::string& component, QuantizingLinearFactory::Sink sink) {
  ModuleContext ctx = base;
  if (auto rule = cfg.for_component(component))
    ctx.linear_factory = std::make_shared<QuantizingLinearFactory>(*rule, std::move(sink));
  return ctx;
}

}  // namespace qdit::nn
