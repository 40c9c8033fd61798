// Dispatch of the quantization kernels: the AVX-512 table on CPUs with AVX-512 BF16 (unless
// QDIT_FORCE_ISA=avx2), else AVX2; tests pin a variant with ScopedIsa.
#include <atomic>

#include "qdit/core/error.h"
#include "qdit/kernels/cpu/isa.h"
#include "qdit/kernels/cpu/qkernels.h"
#include "qdit/kernels/quant_kernels.h"

namespace qdit::kernels::qk {

namespace {
std::atomic<int> g_override{static_cast<int>(Isa::Auto)};

Isa resolve(Isa isa) {
  if (isa != Isa::Auto) return isa;
  const Isa o = static_cast<Isa>(g_override.load(std::memory_order_relaxed));
  if (o != Isa::Auto) return o;
  return cpu::has_avx512_bf16() ? Isa::Avx512 : Isa::Avx2;
}
}  // namespace

bool isa_available(Isa isa) {
  switch (isa) {
    case Isa::Auto:
    case Isa::Avx2: return true;
    case Isa::Avx512: return cpu::has_avx512_bf16();
  }
  return false;
}

const char* isa_name(Isa isa) { return resolve(isa) == Isa::Avx512 ? "avx512" : "avx2"; }

const Kernels& get(Isa isa) {
  const Isa r = resolve(isa);
  if (r == Isa::Avx512) {
    QDIT_CHECK(cpu::has_avx512_bf16(), "[quant kernels] the AVX-512 variant needs AVX-512 BF16, which this CPU (or ",
               "QDIT_FORCE_ISA) does not offer");
    return cpu::kQuantKernelsAvx512;
  }
  return cpu::kQuantKernelsAvx2;
}

ScopedIsa::ScopedIsa(Isa isa) : prev_(g_override.load()) {
  QDIT_CHECK(isa_available(isa), "[quant kernels] ScopedIsa: ", isa == Isa::Avx512 ? "avx512" : "?",
             " is not available on this CPU");
  g_override.store(static_cast<int>(isa));
}

ScopedIsa::~ScopedIsa() { g_override.store(prev_); }

}  // namespace qdit::kernels::qk
