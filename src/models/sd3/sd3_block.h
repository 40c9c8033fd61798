// One SD3 MMDiT block (diffusers JointTransformerBlock, 0.30.3): AdaLN-Zero modulation of the image
// and text streams, one joint attention over cat([image, text]), gated residuals and GELU-tanh
// feed-forwards. The last block is context_pre_only. Used by SD3Transformer (sd3_transformer.h).
#pragma once
#include <cstdint>

#include "qdit/core/tensor.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/linear_group.h"

namespace qdit::models::sd3 {

class JointBlock {
 public:
  JointBlock() = default;
  // b is scoped at "transformer_blocks.<i>". context_pre_only: norm1_context is
  // AdaLayerNormContinuous and there is no to_add_out / ff_context (the text stream ends here).
  JointBlock(const nn::WeightBinder& b, int64_t dim, int64_t heads, bool context_pre_only,
             const nn::ModuleContext& ctx);

  // x: [B, N, D] image tokens, ctx: [B, L, D] text tokens, both contiguous and updated in place
  // (ctx is left untouched by a context_pre_only block). silu_temb: SiLU(temb) [B, D].
  void forward(Tensor& x, Tensor& ctx, const Tensor& silu_temb) const;

  bool context_pre_only() const { return pre_only_; }
  size_t weight_bytes() const;

 private:
  int64_t dim_ = 0, heads_ = 0;
  bool pre_only_ = false;
  DType compute_ = DType::F32;
  nn::Linear norm1_, norm1_ctx_;       // norm1.linear [6D], norm1_context.linear [6D or 2D]
  nn::LinearGroup qkv_, add_qkv_;      // attn.to_q/k/v (image), attn.add_q/k/v_proj (text)
  nn::Linear out_, add_out_;           // attn.to_out.0, attn.to_add_out
  nn::Linear ff1_, ff2_;               // ff.net.0.proj, ff.net.2
  nn::Linear cff1_, cff2_;             // ff_context.net.0.proj, ff_context.net.2
};

}  // namespace qdit::models::sd3
