// The Linear kernel a quantized weight runs with follows from its scheme's activation mode:
// weight-only schemes decode weight tiles into the compute dtype for oneDNN's float GEMM; int8dq
// runs oneDNN's int8 GEMM on per-token int8 activations; the other dynamic-activation schemes
// quantize-dequantize the activation (the CPU has no fp8 or int4 GEMM) before the tiled GEMM.
#pragma once
#include <memory>

#include "qdit/kernels/gemm.h"
#include "qdit/quant/scheme.h"

namespace qdit::quant {

// compute: F32 or BF16 (bf16 rounds both the activation and the decoded weight tiles).
std::unique_ptr<kernels::LinearKernel> make_quantized_linear(const QuantizedWeight& q, const Tensor& bias,
                                                             DType compute);

// What the dynamic-activation schemes do to x [m, k] in place (exposed for tests).
void fake_quantize_activation(ActivationQuant mode, float* x, int64_t m, int64_t k);

}  // namespace qdit::quant
