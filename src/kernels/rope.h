// Rotary position embedding on interleaved pairs (x[2j], x[2j+1]), as Flux applies it:
// out = [c*x0 - s*x1, s*x0 + c*x1], with cos/sin precomputed per position and pair.
#pragma once
#include <cstdint>

#include "qdit/core/tensor.h"

namespace qdit::kernels {

// x: [B, S, H, D] (last dim contiguous; any other strides), cos/sin: [S, D/2] f32.
// Returns a contiguous [B, S, H, D] tensor.
Tensor rope_interleaved(const Tensor& x, const Tensor& cos, const Tensor& sin);

// Flux's q/k preparation in one pass instead of three (RMSNorm copy, concatenation, RoPE copy):
// out = rope_interleaved(rms_norm(x, norm_weight, eps)) with the table rows of positions
// first_position .. first_position + S - 1. Bit for bit the unfused result.
// x, out: [B, S, H, D] f32, last dim contiguous, any other strides (x may be heads of a fused
// q/k/v GEMM output, out a row range of a bigger tensor, so that two streams fill one sequence);
// norm_weight: [D] f32 or undefined; cos/sin: [P, D/2] f32 with P >= first_position + S.
// out is written in place and must not overlap x.
void rms_norm_rope_into(const Tensor& x, const Tensor& norm_weight, float eps, const Tensor& cos,
                        const Tensor& sin, int64_t first_position, Tensor& out);

}  // namespace qdit::kernels
