#include "qdit/kernels/cpu/isa.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace qdit::kernels::cpu {
namespace {
const char* forced_isa() {
  static const char* v = std::getenv("QDIT_FORCE_ISA");
  return v ? v : "";
}
bool forced_baseline() { return std::strcmp(forced_isa(), "avx2") == 0; }

// CPUID says AMX-TILE and AMX-BF16, XCR0 has the tile config/data states (bits 17, 18) and Linux
// lets this process use the tile data (it traps the first use otherwise: permission is per process).
bool amx_bf16_usable() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
  if (!tile || !bf16) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
}  // namespace

bool has_avx512_bf16() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return ok && !forced_baseline();
}

bool has_avx512_vnni() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
  return ok && !forced_baseline();
}

bool has_amx_bf16() {
  static const bool ok = has_avx512_bf16() && std::strcmp(forced_isa(), "avx512") != 0 && amx_bf16_usable();
  return ok;
}

bool has_amx_int8() {
  static const bool ok = [] {
    unsigned a, b, c, d;
    return has_amx_bf16() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> 25) & 1);
  }();
  return ok;
}

const char* isa_name() {
  if (has_amx_bf16()) return "amx_bf16";
  return has_avx512_bf16() ? "avx512_bf16" : "avx2";
}
}  // namespace qdit::kernels::cpu
