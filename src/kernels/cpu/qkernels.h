// The per-ISA tables behind qk::get() (quant_kernels.h).
#pragma once
#include "qdit/kernels/quant_kernels.h"

namespace qdit::kernels::cpu {
extern const qk::Kernels kQuantKernelsAvx2;
extern const qk::Kernels kQuantKernelsAvx512;  // only call into it when has_avx512_bf16()
}  // namespace qdit::kernels::cpu
