// Run-time CPU feature checks: kernels compiled for AVX-512 / AMX are only entered when the CPU
// (and, for AMX, the kernel) allows it. QDIT_FORCE_ISA=avx2 forces the baseline paths (to test
// them on an AVX-512 machine); QDIT_FORCE_ISA=avx512 keeps AVX-512 but turns qdit's AMX paths off.
#pragma once

namespace qdit::kernels::cpu {
bool has_avx512_bf16();  // AVX-512 F/BW/VL + BF16 (Zen 4, Sapphire Rapids)
bool has_avx512_vnni();
// AMX-TILE + AMX-BF16 (Sapphire Rapids and later), enabled by the OS in XCR0, and this process
// granted the tile data state (Linux arch_prctl(ARCH_REQ_XCOMP_PERM), requested on the first call).
bool has_amx_bf16();
bool has_amx_int8();  // has_amx_bf16() and AMX-INT8 (every CPU with AMX so far)
const char* isa_name();
}  // namespace qdit::kernels::cpu
