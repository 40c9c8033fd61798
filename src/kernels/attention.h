// Fused scaled-dot-product attention (flash-style online softmax; scores never materialised), used
// by every attention block of the DiT and text-encoder models. CPU implementations live in
// cpu/attention*.cc (AVX-512 BF16 when the CPU has it, AVX2 otherwise).
#pragma once
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::kernels {

// out = softmax(Q K^T * scale + mask) V.
// q: [B, H, Sq, D]; k, v: [B, H, Skv, D]; any strides with a contiguous last dim (a [B, S, H, D]
// projection output permuted to [B, H, S, D] needs no copy). q, k, v all f32 or all bf16:
// f32 computes in f32; bf16 uses bf16 dot products with f32 accumulation and softmax, and rounds
// the probabilities P to bf16 for the P.V product.
// mask: optional f32 additive tensor, 4-D, each dim equal to the full size or 1 (broadcast), i.e.
// broadcastable to [B, H, Sq, Skv] (key padding [B,1,1,Skv], T5 bias [B|1,H,Sq,Skv], causal
// [1,1,Sq,Skv]). -inf and finfo(f32).min are fine: a row masked with finfo.min everywhere gives
// PyTorch's uniform distribution; a row that is -inf everywhere gives zeros (not NaN).
// out: [B, Sq, H*D] contiguous f32 (heads merged); allocated when null.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, float scale,
                 Tensor* out = nullptr);

// bf16 compute on f32 (or bf16) q, k, v: the result of attention(q.to(bf16), k.to(bf16),
// v.to(bf16), ...) (round to nearest even), without the bf16 copies where the kernel rounds while
// it packs (the AMX kernel); q/k/v may be strided views such as heads of a fused q/k/v GEMM output.
// out may be bf16: the f32 result rounded to nearest even (written so by the AMX kernel).
Tensor attention_bf16(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, float scale,
                      Tensor* out = nullptr);

// Joint attention over a sequence given in parts (SD3/AuraFlow: image then text tokens, or text
// then image): q, k, v as one or two [B, H, S_i, D] views each, concatenated along S, bf16
// compute. Returns one [B, Sq_i, H*D] f32 output per q part: the same values as
// attention_bf16(cat(q), cat(k), cat(v)) split along S, without the concatenation and slicing
// copies where the kernel reads the parts directly (AMX); elsewhere it concatenates.
std::vector<Tensor> attention_bf16_parts(const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                         const std::vector<Tensor>& v, float scale);

// Bytes attention() / attention_bf16() (round_to_bf16) allocate besides the output for batch*heads
// heads of q [sq, head_dim] and k, v [skv, head_dim] stored as `stored`: each worker's packed K/V,
// query and score tiles, and bf16 copies where the kernel cannot round while packing. The memory
// planner counts them.
size_t attention_scratch_bytes(int64_t batch_heads, int64_t sq, int64_t skv, int64_t head_dim, DType stored,
                               bool round_to_bf16);

// Plain reference for tests: materialises the scores, accumulates in double.
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                           float scale);

}  // namespace qdit::kernels
