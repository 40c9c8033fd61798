// nn::Linear: binds "<prefix>.weight" [out, in] and optional "<prefix>.bias" [out], then holds
// the LinearKernel the context's factory chose (packed float, tiled bf16, quantized ...).
#pragma once
#include <memory>
#include <string>

#include "qdit/kernels/gemm.h"
#include "qdit/nn/context.h"
#include "qdit/nn/weight_binder.h"

namespace qdit::nn {

// A Linear's input: a tensor, or layer_norm_modulate(x, shift, scale, eps) not computed yet, so
// that a kernel quantizing its input per token (int8dq) gets the rows quantized by the norm itself
// and the f32 rows are never written out. The norm runs when the input is first used: x must not
// change before.
class LinearInput {
 public:
  LinearInput(const Tensor& x) : rows_(x) {}  // NOLINT: a tensor is the usual input
  static LinearInput norm_modulated(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps);
  // The f32 rows (a deferred norm runs once, on first use).
  const Tensor& tensor() const;
  bool deferred() const { return !rows_.defined(); }
  // Deferred only: the norm's rows quantized as a kernel asks (`spec`), and the norm's input.
  kernels::QuantizedRows quantized(const kernels::RowQuantSpec& spec) const;
  const Tensor& norm_input() const { return x_; }

 private:
  LinearInput() = default;
  mutable Tensor rows_;
  Tensor x_, shift_, scale_;
  float eps_ = 0.0f;
};

class Linear {
 public:
  Linear() = default;
  Linear(const WeightBinder& parent, const std::string& name, int64_t in, int64_t out, bool bias,
         const ModuleContext& ctx);
  // A Linear over weights already bound (a fusion of `members`' weights, see LinearGroup).
  static Linear from_weights(const std::string& path, const std::vector<std::string>& members, const Tensor& weight,
                             const Tensor& bias, const ModuleContext& ctx);
  // x: [..., in] -> [..., out] f32; with prefer = BF16, bf16 (the f32 result rounded to nearest
  // even) where the kernel writes it, for consumers that round their input to bf16 anyway.
  Tensor operator()(const LinearInput& x, const kernels::GemmOptions& opt = {}, DType prefer = DType::F32) const;
  void forward_into(const Tensor& x, Tensor& y, const kernels::GemmOptions& opt = {}) const;
  // y += gate[b] * act(x W^T + b) (DiT's gated residual; gate [B, out] broadcast over each batch
  // item's rows): in the GEMM's epilogue where the kernel fuses it, else as its own pass.
  void forward_gated_residual(const Tensor& x, Tensor& y, const Tensor& gate,
                              kernels::Activation act = kernels::Activation::None) const;
  bool defined() const { return kernel_ != nullptr; }
  // BF16 when the kernel rounds its input to bf16 anyway (bf16 compute): what a producer feeding
  // only this Linear can write (the `prefer` of the producing Linear), else F32.
  DType input_dtype() const { return kernel_ && kernel_->rounds_input_to_bf16() ? DType::BF16 : DType::F32; }
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
