// Vectorised dtype conversion of contiguous buffers (AVX-512 where it pays).
#pragma once
#include <cstdint>

namespace qdit::kernels::cpu {
void f32_to_bf16_buffer(const float* src, uint16_t* dst, int64_t n);  // RNE, as PyTorch
void bf16_to_f32_buffer(const uint16_t* src, float* dst, int64_t n);
void f16_to_f32_buffer(const uint16_t* src, float* dst, int64_t n);
}  // namespace qdit::kernels::cpu
