// AVX-512 attention variants (Zen 4, Sapphire Rapids): bf16 Q.K^T and P.V with vdpbf16ps on
// pair-interleaved packs, f32 with 16-lane FMA. Compiled with the AVX-512 flags (the file name
// matches "_avx512"), entered only after cpu::has_avx512_bf16().
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qdit/kernels/cpu/attention_cpu.h"

// Also set here so the file is AVX-512 code whatever flags the build passes (the kernel code below
// comes after every standard header, so no std inline function is compiled for AVX-512).
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")
#include "qdit/kernels/cpu/attention_impl.h"

namespace {

struct Avx512 : Geometry512 {
  using F = __m512;
  using P = __m512i;
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static float hmax(F v) { return _mm512_reduce_max_ps(v); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
  static float first(F v) { return _mm512_cvtss_f32(v); }
  static F round_int(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F pow2i(F n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static P load_pairs(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static P bcast_pair(const uint16_t* p) {
    int32_t x;
    std::memcpy(&x, p, 4);
    return _mm512_set1_epi32(x);
  }
  static F dot_pairs(F acc, P a, P b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static F store_bf16_rounded(uint16_t* dst, F x) {
    const __m256bh h = _mm512_cvtneps_pbh(x);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), (__m256i)h);
    return _mm512_cvtpbh_ps(h);
  }
};

using F32 = Flash<Avx512, false, false>;
using Bf16 = Flash<Avx512, true, true>;

size_t ws_bytes(const AttentionProblem& p) {
  return p.bf16 ? Bf16::workspace_bytes(p) : F32::workspace_bytes(p);
}
void run_tasks(const AttentionProblem& p, int64_t t0, int64_t t1, void* ws) {
  if (p.bf16) {
    Bf16::run(p, t0, t1, ws);
  } else {
    F32::run(p, t0, t1, ws);
  }
}

}  // namespace

namespace qdit::kernels::cpu {

AttentionVariant attention_variant_avx512() { return {"avx512_bf16", &ws_bytes, &run_tasks}; }

}  // namespace qdit::kernels::cpu
