// Multi-head attention on projected activations: q [B, Sq, H*D], k/v [B, Skv, H*D] are viewed as
// heads without copies and handed to the fused kernel; the result is [B, Sq, H*D].
#pragma once
#include "qdit/core/tensor.h"

namespace qdit::nn {

// mask: optional additive f32 mask broadcastable to [B, H, Sq, Skv]. scale defaults to D^-0.5.
// compute BF16 rounds q/k/v to bf16 and uses the bf16 kernel.
Tensor multi_head_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                            const Tensor* mask = nullptr, float scale = 0.0f, DType compute = DType::F32);

// [B, S, H*D] -> [B, H, S, D] view (no copy).
Tensor split_heads(const Tensor& x, int64_t heads);

}  // namespace qdit::nn
