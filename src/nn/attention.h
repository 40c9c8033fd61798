// Multi-head attention on projected activations: q [B, Sq, H*D], k/v [B, Skv, H*D] are viewed as
// heads without copies and handed to the fused kernel; the result is [B, Sq, H*D].
#pragma once
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::nn {

// q, k, v: [B, S, H*D] rows or [B, S, H, D] head views (e.g. LinearGroup::views of a fused q/k/v
// projection, read in place). mask: optional additive f32 mask broadcastable to [B, H, Sq, Skv].
// scale defaults to D^-0.5.
// compute BF16 rounds q/k/v to bf16 and uses the bf16 kernel.
// out_dtype BF16 (with bf16 compute): the result rounded to bf16, for a consumer that rounds its
// input to bf16 anyway (nn::Linear::input_dtype()).
Tensor multi_head_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                            const Tensor* mask = nullptr, float scale = 0.0f, DType compute = DType::F32,
                            DType out_dtype = DType::F32);

// Joint attention (SD3, AuraFlow) over the concatenation along the sequence of one or two streams:
// q/k/v parts [B, S_i, H*D] (or [B, S_i, H, D] head views); returns one [B, Sq_i, H*D] output per
// q part. The same as multi_head_attention(cat(q), cat(k), cat(v)) split into the parts' rows; with
// bf16 compute the kernel reads the parts and writes the outputs directly (no concatenation or
// slicing copies).
std::vector<Tensor> joint_attention(const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                    const std::vector<Tensor>& v, int64_t heads, DType compute = DType::F32);

// [B, S, H*D] -> [B, H, S, D] view (no copy).
Tensor split_heads(const Tensor& x, int64_t heads);

}  // namespace qdit::nn
