// Rotary position embedding on interleaved pairs (x[2j], x[2j+1]), as Flux applies it:
// out = [c*x0 - s*x1, s*x0 + c*x1], with cos/sin precomputed per position and pair.
#pragma once
#include "qdit/core/tensor.h"

namespace qdit::kernels {

// x: [B, S, H, D] (last dim contiguous; any other strides), cos/sin: [S, D/2] f32.
// Returns a contiguous [B, S, H, D] tensor.
Tensor rope_interleaved(const Tensor& x, const Tensor& cos, const Tensor& sin);

}  // namespace qdit::kernels
