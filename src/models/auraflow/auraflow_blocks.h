// The AuraFlow transformer blocks (diffusers 0.30.3): AuraFlowJointTransformerBlock (MMDiT, two
// streams) and AuraFlowSingleTransformerBlock (one concatenated [text, image] stream). Both use
// AdaLayerNormZero without bias over a non-affine fp32 LayerNorm, bias-free projections, a
// non-affine LayerNorm q/k norm per head and the SiLU-gated AuraFlowFeedForward.
// Used by AuraFlowTransformer (auraflow_transformer.h).
#pragma once
#include <cstdint>

#include "qdit/core/tensor.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/linear_group.h"

namespace qdit::models::auraflow {

// AuraFlowFeedForward(dim, 4*dim) hidden width: int(2 * 4*dim / 3) rounded up to a multiple of 256.
int64_t ff_hidden_dim(int64_t dim);

// out_projection(silu(linear_1 x) * linear_2 x), all without bias.
class FeedForward {
 public:
  FeedForward() = default;
  FeedForward(const nn::WeightBinder& b, int64_t dim, const nn::ModuleContext& ctx);  // b at "...ff"
  Tensor operator()(const Tensor& x) const;
  size_t weight_bytes() const;

 private:
  nn::Linear l1_, l2_, out_;
};

class JointBlock {
 public:
  JointBlock() = default;
  // b is scoped at "joint_transformer_blocks.<i>".
  JointBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx);

  // x: [B, N, D] image tokens, ctx: [B, L, D] text tokens (registers included), both contiguous
  // and updated in place. silu_temb: SiLU(temb) [B, D].
  void forward(Tensor& x, Tensor& ctx, const Tensor& silu_temb) const;
  size_t weight_bytes() const;

 private:
  int64_t dim_ = 0, heads_ = 0;
  DType compute_ = DType::F32;
  nn::Linear norm1_, norm1_ctx_;       // norm1.linear, norm1_context.linear [6D, D], no bias
  nn::LinearGroup qkv_, add_qkv_;      // attn.to_q/k/v (image), attn.add_q/k/v_proj (text)
  nn::Linear out_, add_out_;           // attn.to_out.0, attn.to_add_out
  FeedForward ff_, ff_ctx_;
};

class SingleBlock {
 public:
  SingleBlock() = default;
  // b is scoped at "single_transformer_blocks.<i>".
  SingleBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, const nn::ModuleContext& ctx);

  // x: [B, L+N, D] = cat([text, image]) contiguous, updated in place. silu_temb: SiLU(temb) [B, D].
  void forward(Tensor& x, const Tensor& silu_temb) const;
  size_t weight_bytes() const;

 private:
  int64_t dim_ = 0, heads_ = 0;
  DType compute_ = DType::F32;
  nn::Linear norm1_;            // norm1.linear [6D, D], no bias
  nn::LinearGroup qkv_;         // attn.to_q/k/v
  nn::Linear out_;              // attn.to_out.0
  FeedForward ff_;
};

}  // namespace qdit::models::auraflow
