// Run-time CPU feature checks: kernels compiled for AVX-512 are only entered when the CPU has it.
// QDIT_FORCE_ISA=avx2 forces the baseline paths (to test them on an AVX-512 machine).
#pragma once

namespace qdit::kernels::cpu {
bool has_avx512_bf16();  // AVX-512 F/BW/VL + BF16 (Zen 4, Sapphire Rapids)
bool has_avx512_vnni();
const char* isa_name();
}  // namespace qdit::kernels::cpu
