#include "qdit/nn/linear.h"

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/norm.h"

namespace qdit::nn {

std::unique_ptr<kernels::LinearKernel> LinearFactory::make_from_parts(const std::string& path,
                                                                    std::map<std::string, Tensor>, int64_t, int64_t,
                                                                    const Tensor&, DType) const {
  fail("[linear] ", path, ": the checkpoint holds quantized parts but the component has no quantization_config");
}

void LinearFactory::check_parts(const std::string& path, std::map<std::string, Tensor> parts, int64_t in,
                                int64_t out) const {
  make_from_parts(path, std::move(parts), in, out, Tensor(), DType::F32);
}

std::unique_ptr<kernels::LinearKernel> LinearFactory::make(const std::string&, const Tensor& weight,
                                                           const Tensor& bias, DType compute) const {
  return kernels::make_float_linear(weight, bias, compute);
}

Linear::Linear(const WeightBinder& parent, const std::string& name, int64_t in, int64_t out, bool bias,
               const ModuleContext& ctx)
    : in_(in), out_(out), path_(parent.path(name)) {
  WeightBinder b = parent.sub(name);
  if (ctx.linear_factory->reads_parts()) {
    std::map<std::string, Tensor> parts = b.take_all();
    parts.erase("bias");
    // A lone "weight" is a float Linear (excluded from quantization); anything else is parts
    // (bitsandbytes keeps its packed codes under "weight" beside "weight.absmax" etc.).
    const bool quantized = parts.size() > 1 || (parts.size() == 1 && !parts.count("weight"));
    if (quantized) {
      Tensor bb = bias ? b.get("bias", {out}) : Tensor();
      if (bias && !bb.defined()) return;
      kernel_ = ctx.linear_factory->make_from_parts(path_, std::move(parts), in, out, bb, ctx.compute);
      return;
    }
  }
  Tensor w = b.get("weight", {out, in});
  Tensor bb = bias ? b.get("bias", {out}) : Tensor();
  // A missing or mis-shaped tensor is recorded by the binder and reported at finish().
  if (!w.defined() || (bias && !bb.defined())) return;
  kernel_ = ctx.linear_factory->make(path_, w, bb, ctx.compute);
}

Linear Linear::from_weights(const std::string& path, const std::vector<std::string>& members, const Tensor& weight,
                            const Tensor& bias, const ModuleContext& ctx) {
  QDIT_CHECK(weight.dim() == 2, "[linear] ", path, ": weight must be [out, in], got ", weight.desc());
  Linear l;
  l.in_ = weight.size(1);
  l.out_ = weight.size(0);
  l.path_ = path;
  l.kernel_ = ctx.linear_factory->make_fused(path, members, weight, bias, ctx.compute);
  return l;
}

LinearInput LinearInput::norm_modulated(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) {
  LinearInput in;
  in.x_ = x;
  in.shift_ = shift;
  in.scale_ = scale;
  in.eps_ = eps;
  return in;
}

const Tensor& LinearInput::tensor() const {
  if (!rows_.defined()) rows_ = kernels::layer_norm_modulate(x_, shift_, scale_, eps_);
  return rows_;
}

kernels::QuantizedRows LinearInput::quantized(const kernels::RowQuantSpec& spec) const {
  QDIT_CHECK(deferred(), "[linear input] only a deferred norm hands out quantized rows");
  return kernels::layer_norm_modulate_s8(x_, shift_, scale_, eps_, spec);
}

Tensor Linear::operator()(const LinearInput& x, const kernels::GemmOptions& opt, DType prefer) const {
  QDIT_CHECK(kernel_, "[linear] ", path_, " has no weights bound");
  const bool bf16 = prefer == DType::BF16 && kernel_->writes_bf16() && !opt.accumulate;
  const std::optional<kernels::RowQuantSpec> spec = x.deferred() ? kernel_->input_quantization() : std::nullopt;
  if (!spec && !bf16) return kernel_->forward(x.tensor(), opt);
  const Tensor& src = spec ? x.norm_input() : x.tensor();  // the norm keeps the shape
  QDIT_CHECK(src.dim() >= 1 && src.size(-1) == in_, "[linear] ", path_, ": input ", src.desc(),
             " does not end in in_features=", in_);
  Shape out_shape = src.shape();
  out_shape.back() = out_;
  Tensor y = Tensor::empty(out_shape, bf16 ? DType::BF16 : DType::F32);
  if (spec) {
    kernel_->forward_quantized(x.quantized(*spec), y, opt);
  } else {
    kernel_->forward_into(src, y, opt);
  }
  return y;
}

void Linear::forward_into(const Tensor& x, Tensor& y, const kernels::GemmOptions& opt) const {
  QDIT_CHECK(kernel_, "[linear] ", path_, " has no weights bound");
  QDIT_CHECK(!opt.gate || opt.accumulate, "[linear] ", path_, ": a gate needs accumulate (y += gate * result)");
  if (opt.gate && !kernel_->fuses_gate()) {  // the result, then the gated residual as its own pass
    kernels::GemmOptions plain = opt;
    plain.gate = nullptr;
    plain.accumulate = false;
    kernels::gated_residual_inplace(y, kernel_->forward(x, plain), *opt.gate);
    return;
  }
  kernel_->forward_into(x, y, opt);
}

void Linear::forward_gated_residual(const Tensor& x, Tensor& y, const Tensor& gate, kernels::Activation act) const {
  kernels::GemmOptions opt;
  opt.activation = act;
  opt.accumulate = true;
  opt.gate = &gate;
  forward_into(x, y, opt);
}

}  // namespace qdit::nn
