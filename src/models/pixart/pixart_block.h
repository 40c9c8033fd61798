// One PixArt transformer block (diffusers BasicTransformerBlock with norm_type="ada_norm_single"):
// AdaLN-single modulated self-attention, unnormalised cross-attention to the caption, modulated
// GELU feed-forward. Used by PixArtTransformer (pixart_transformer.h).
#pragma once
#include <cstdint>

#include "qdit/core/tensor.h"
#include "qdit/kernels/gemm.h"
#include "qdit/nn/layers.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/linear_group.h"

namespace qdit::models::pixart {

struct BlockConfig {
  int64_t dim = 0;        // inner_dim = heads * head_dim
  int64_t heads = 0;
  int64_t cross_dim = 0;  // width of the (projected) caption tokens
  int64_t ff_inner = 0;   // 4 * dim
  float eps = 1e-6f;      // norm1 / norm2 eps (config norm_eps)
  bool attention_bias = true;
  bool norm_affine = false;  // norm_elementwise_affine
  kernels::Activation ff_act = kernels::Activation::GeluTanh;
};

class PixArtBlock {
 public:
  PixArtBlock() = default;
  // b is scoped at "transformer_blocks.<i>".
  PixArtBlock(const nn::WeightBinder& b, const BlockConfig& cfg, const nn::ModuleContext& ctx);

  // x: [B, N, D] contiguous, updated in place. t6: [B, 6D] (adaln_single.linear output).
  // context: [B, L, cross_dim]. mask_bias: additive [B, 1, 1, L] over keys, or null.
  void forward(Tensor& x, const Tensor& t6, const Tensor& context, const Tensor* mask_bias) const;

  size_t weight_bytes() const;

 private:
  // LN(x) * (1 + scale) + shift; without affine norm parameters fused, and left to the Linear that
  // reads it (see nn::LinearInput).
  nn::LinearInput norm_modulate(const nn::LayerNorm& norm, const Tensor& x, const Tensor& shift,
                                const Tensor& scale) const;

  BlockConfig cfg_;
  DType compute_ = DType::F32;
  Tensor table_;  // scale_shift_table [6, D] f32
  nn::LayerNorm norm1_, norm2_;
  nn::LinearGroup qkv1_;          // attn1 to_q/k/v (self)
  nn::Linear o1_;                 // attn1 to_out.0
  nn::Linear q2_, o2_;            // attn2 to_q, to_out.0 (cross)
  nn::LinearGroup kv2_;           // attn2 to_k/v on the caption
  nn::Linear ff1_, ff2_;          // ff.net.0.proj, ff.net.2
};

}  // namespace qdit::models::pixart
