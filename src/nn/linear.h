// nn::Linear: binds "<prefix>.weight" [out, in] and optional "<prefix>.bias" [out], then holds
// the LinearKernel the context's factory chose (packed float, tiled bf16, quantized ...).
#pragma once
#include <memory>
#include <string>

#include "qdit/kernels/gemm.h"
#include "qdit/nn/context.h"
#include "qdit/nn/weight_binder.h"

namespace qdit::nn {

class Linear {
 public:
  Linear() = default;
  Linear(const WeightBinder& parent, const std::string& name, int64_t in, int64_t out, bool bias,
         const ModuleContext& ctx);
  // A Linear over weights already bound (a fusion of `members`' weights, see LinearGroup).
  static Linear from_weights(const std::string& path, const std::vector<std::string>& members, const Tensor& weight,
                             const Tensor& bias, const ModuleContext& ctx);
  // x: [..., in] -> [..., out] f32.
  Tensor operator()(const Tensor& x, const kernels::GemmOptions& opt = {}) const;
  void forward_into(const Tensor& x, Tensor& y, const kernels::GemmOptions& opt = {}) const;
  // y += gate[b] * act(x W^T + b) (DiT's gated residual; gate [B, out] broadcast over each batch
  // item's rows): in the GEMM's epilogue where the kernel fuses it, else as its own pass.
  void forward_gated_residual(const Tensor& x, Tensor& y, const Tensor& gate,
                              kernels::Activation act = kernels::Activation::None) const;
  bool defined() const { return kernel_ != nullptr; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  size_t weight_bytes() const { return kernel_ ? kernel_->weight_bytes() : 0; }
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<kernels::LinearKernel> kernel_;
  int64_t in_ = 0, out_ = 0;
  std::string path_;
};

}  // namespace qdit::nn
