#include "qdit/nn/quantizing_factory.h"

#include "qdit/core/error.h"
#include "qdit/quant/quantized_linear.h"

namespace qdit::nn {

namespace {

// Shape-only stand-in for record_only factories.
class UnbuiltLinear : public kernels::LinearKernel {
 public:
  UnbuiltLinear(std::string path, int64_t in, int64_t out) : path_(std::move(path)), in_(in), out_(out) {}
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  size_t weight_bytes() const override { return 0; }
  void forward_into(const Tensor&, Tensor&, const kernels::GemmOptions&) const override {
    fail("[quant] ", path_, " was loaded only to record its quantized weight; it cannot run");
  }

 private:
  std::string path_;
  int64_t in_, out_;
};

}  // namespace

QuantizingLinearFactory::QuantizingLinearFactory(quant::ComponentQuant rule, Sink sink, bool record_only)
    : rule_(std::move(rule)), scheme_(quant::find_scheme(rule_.scheme)), sink_(std::move(sink)), record_only_(record_only) {}

std::unique_ptr<kernels::LinearKernel> QuantizingLinearFactory::make(const std::string& path, const Tensor& weight,
                                                                     const Tensor& bias, DType compute) const {
  if (weight.dim() != 2 || quant::module_excluded(path, rule_.exclude) ||
      !scheme_.applies_to(weight.size(0), weight.size(1))) {
    if (record_only_) return std::make_unique<UnbuiltLinear>(path, weight.size(-1), weight.size(0));
    return LinearFactory::make(path, weight, bias, compute);
  }
  quant::QuantizedWeight q = quant::quantize_weight(scheme_, weight);
  if (sink_) sink_(path, q);
  if (record_only_) return std::make_unique<UnbuiltLinear>(path, weight.size(1), weight.size(0));
  return quant::make_quantized_linear(q, bias, compute);
}

PrequantizedLinearFactory::PrequantizedLinearFactory(std::string scheme, DType source_dtype, std::string origin,
                                                     bool infer_dtype)
    : scheme_(std::move(scheme)), origin_(std::move(origin)), source_dtype_(source_dtype), infer_dtype_(infer_dtype) {
  quant::find_scheme(scheme_);  // an unknown scheme fails here, naming it
}

std::unique_ptr<kernels::LinearKernel> PrequantizedLinearFactory::make_from_parts(const std::string& path,
                                                                                  std::map<std::string, Tensor> parts,
                                                                                  int64_t in, int64_t out,
                                                                                  const Tensor& bias,
                                                                                  DType compute) const {
  DType source = source_dtype_;
  if (infer_dtype_) {
    // quanto stores its scales in the original weight dtype; other layouts do not depend on it.
    auto it = parts.find("weight._scale");
    if (it != parts.end()) source = it->second.dtype();
  }
  quant::QuantizedWeight q{quant::find_scheme(scheme_).name(), out, in, source, std::move(parts)};
  try {
    return quant::make_quantized_linear(q, bias, compute);
  } catch (const Error& e) {
    fail("[quant] ", origin_, ": ", path, ": ", e.what());
  }
}

void PrequantizedLinearFactory::check_parts(const std::string& path, std::map<std::string, Tensor> parts, int64_t in,
                                            int64_t out) const {
  const quant::Scheme& s = quant::find_scheme(scheme_);
  quant::QuantizedWeight q{s.name(), out, in, source_dtype_, std::move(parts)};
  try {
    s.validate(q);
  } catch (const Error& e) {
    fail("[quant] ", origin_, ": ", path, ": ", e.what());
  }
}

std::optional<StoredQuantization> stored_quantization(const io::JsonConfig& config) {
  const nlohmann::json& raw = config.raw();
  if (!raw.contains("quantization_config") || raw["quantization_config"].is_null()) return std::nullopt;
  const nlohmann::json& q = raw["quantization_config"];
  QDIT_CHECK(q.is_object(), "[quant] ", config.path(), ": quantization_config must be an object");
  const std::string method = q.value("quant_method", "");
  StoredQuantization s;
  if (method == "bitsandbytes" || method == "quanto") {
    // diffusers' own BitsAndBytesConfig / QuantoConfig checkpoints: the part layouts are the ones
    // qdit writes; quanto scales are in the weight dtype, read from the parts (infer_dtype).
    quant::ComponentQuant rule = quant::rule_from_json(q, config.path() + ": quantization_config", true);
    s.scheme = rule.scheme;
    s.modules_to_not_convert = rule.exclude;
    s.infer_dtype = true;
    return s;
  }
  QDIT_CHECK(method == "qdit", "[quant] ", config.path(), ": quantization_config.quant_method '", method,
             "' is not supported (qdit reads `qdit quantize` checkpoints and diffusers' bitsandbytes and quanto ones)");
  QDIT_CHECK(q.contains("scheme") && q["scheme"].is_string(), "[quant] ", config.path(),
             ": quantization_config.scheme missing");
  s.scheme = q["scheme"].get<std::string>();
  const std::string dt = q.value("weight_dtype", "f32");
  auto d = dtype_from_name(dt);
  QDIT_CHECK(d, "[quant] ", config.path(), ": quantization_config.weight_dtype '", dt, "' is not a dtype");
  s.source_dtype = *d;
  if (q.contains("modules_to_not_convert"))
    s.modules_to_not_convert = q["modules_to_not_convert"].get<std::vector<std::string>>();
  return s;
}

nlohmann::json stored_quantization_json(const StoredQuantization& s) {
  const quant::Scheme& scheme = quant::find_scheme(s.scheme);
  nlohmann::json j = {{"quant_method", "qdit"},
                      {"scheme", scheme.name()},
                      {"library", scheme.library()},
                      {"bits", scheme.bits()},
                      {"weight_dtype", dtype_name(s.source_dtype)},
                      {"modules_to_not_convert", s.modules_to_not_convert}};
  nlohmann::json attrs = nlohmann::json::object();
  for (const auto& [k, v] : scheme.attributes()) attrs[k] = v;
  j["scheme_attributes"] = attrs;
  return j;
}

std::unique_ptr<kernels::LinearKernel> QuantizingLinearFactory::make_fused(const std::string& path,
                                                                           const std::vector<std::string>& members,
                                                                           const Tensor& weight, const Tensor& bias,
                                                                           DType compute) const {
  for (const auto& m : members)
    if (quant::module_excluded(m, rule_.exclude)) {
      if (record_only_) return std::make_unique<UnbuiltLinear>(path, weight.size(1), weight.size(0));
      return LinearFactory::make(path, weight, bias, compute);
    }
  return make(path, weight, bias, compute);
}

ModuleContext context_for_component(const ModuleContext& base, const quant::PipelineQuantConfig& cfg,
                                    const std::string& component, QuantizingLinearFactory::Sink sink,
                                    const io::JsonConfig* component_config) {
  ModuleContext ctx = base;
  if (component_config) {
    if (auto stored = stored_quantization(*component_config)) {
      QDIT_CHECK(!cfg.for_component(component), "[quant] component '", component, "' is already quantized (",
                 stored->scheme, ", ", component_config->path(), "); do not ask to quantize it again");
      ctx.linear_factory = std::make_shared<PrequantizedLinearFactory>(stored->scheme, stored->source_dtype,
                                                                       component_config->path(), stored->infer_dtype);
      return ctx;
    }
  }
  if (auto rule = cfg.for_component(component))
    ctx.linear_factory = std::make_shared<QuantizingLinearFactory>(*rule, std::move(sink));
  return ctx;
}

}  // namespace qdit::nn
