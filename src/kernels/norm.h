// Normalisations and softmax over f32 tensors. Statistics accumulate in double: the cost is
// negligible next to the GEMMs and it keeps float32 parity with PyTorch comfortable.
#pragma once
#include "qdit/core/tensor.h"
#include "qdit/kernels/quantized_rows.h"

namespace qdit::kernels {

// Over the last dim; weight/bias [D] or undefined (elementwise_affine=False).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
// T5/Flux RMSNorm: x / sqrt(mean(x^2) + eps) * weight (weight optional).
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
// x: [N, C, ...spatial]; weight/bias [C] or undefined.
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, float eps);
// Fused LayerNorm (no affine) + AdaLN modulation: LN(x) * (1 + scale[B,D]) + shift[B,D].
Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps);
// The rows of layer_norm_modulate(x, shift, scale, eps) [B*S, D] quantized per token in `spec`'s
// layout (the same codes and scales quantize_rows_s8 gives for them), without the f32 result.
QuantizedRows layer_norm_modulate_s8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                     const RowQuantSpec& spec);
// Softmax over the last dim.
Tensor softmax(const Tensor& x);

}  // namespace qdit::kernels
