#include "qdit/kernels/cpu/isa.h"

#include <cstdlib>
#include <cstring>

namespace qdit::kernels::cpu {
namespace {
bool forced_baseline() {
  static const bool forced = [] {
    const char* v = std::getenv("QDIT_FORCE_ISA");
    return v && std::strcmp(v, "avx2") == 0;
  }();
  return forced;
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

const char* isa_name() { return has_avx512_bf16() ? "avx512_bf16" : "avx2"; }
}  // namespace qdit::kernels::cpu
