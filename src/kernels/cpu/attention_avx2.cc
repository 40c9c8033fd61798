// AVX2 + FMA attention variants (the baseline: every CPU qdit runs on has them). bf16 inputs are
// widened to f32 when K/V/Q are packed (AVX2 has no bf16 dot product; bf16 x bf16 products are
// exact in f32, so this matches vdpbf16ps up to summation order); P is still rounded to bf16.
// Also holds the 16-lane emulation of the AVX-512 variant for testing it without AVX-512.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qdit/kernels/cpu/attention_cpu.h"
#include "qdit/kernels/cpu/attention_impl.h"

namespace {

inline __m256 round_bf16_256(__m256 x) {
  __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb));
  return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
}
inline __m256 round_int_256(__m256 x) {
  return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline __m256 pow2i_256(__m256 n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
inline float hmax_256(__m256 v) {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  a = _mm_max_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}
inline float hsum_256(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

// 8 lanes; 4 query rows x 3 key vectors of accumulators (12 of the 16 ymm registers).
struct Avx2 {
  static constexpr int W = 8, R = 4, CQK = 3, CPV = 3, MB = 64, NB = 96, DQA = 2, KA = W;
  using F = __m256;
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static float hmax(F v) { return hmax_256(v); }
  static float hsum(F v) { return hsum_256(v); }
  static float first(F v) { return _mm256_cvtss_f32(v); }
  static F round_int(F x) { return round_int_256(x); }
  static F pow2i(F n) { return pow2i_256(n); }
  static F round_bf16(F x) { return round_bf16_256(x); }
};

// The AVX-512 variant's geometry and bf16 pair semantics on two ymm halves (tests only).
struct Emu512 : Geometry512 {
  struct F {
    __m256 a, b;
  };
  struct P {
    __m256i a, b;
  };
  static F zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static F load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static void store(float* p, F v) {
    _mm256_storeu_ps(p, v.a);
    _mm256_storeu_ps(p + 8, v.b);
  }
  static F set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
  static F fmadd(F x, F y, F z) { return {_mm256_fmadd_ps(x.a, y.a, z.a), _mm256_fmadd_ps(x.b, y.b, z.b)}; }
  static F add(F x, F y) { return {_mm256_add_ps(x.a, y.a), _mm256_add_ps(x.b, y.b)}; }
  static F sub(F x, F y) { return {_mm256_sub_ps(x.a, y.a), _mm256_sub_ps(x.b, y.b)}; }
  static F mul(F x, F y) { return {_mm256_mul_ps(x.a, y.a), _mm256_mul_ps(x.b, y.b)}; }
  static F max(F x, F y) { return {_mm256_max_ps(x.a, y.a), _mm256_max_ps(x.b, y.b)}; }
  static float hmax(F v) { return hmax_256(_mm256_max_ps(v.a, v.b)); }
  static float hsum(F v) { return hsum_256(_mm256_add_ps(v.a, v.b)); }
  static float first(F v) { return _mm256_cvtss_f32(v.a); }
  static F round_int(F x) { return {round_int_256(x.a), round_int_256(x.b)}; }
  static F pow2i(F n) { return {pow2i_256(n.a), pow2i_256(n.b)}; }
  static P load_pairs(const uint16_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16))};
  }
  static P bcast_pair(const uint16_t* p) {
    int32_t x;
    std::memcpy(&x, p, 4);
    return {_mm256_set1_epi32(x), _mm256_set1_epi32(x)};
  }
  // vdpbf16ps: per 32-bit lane, acc += a.odd * b.odd + a.even * b.even (bf16 widened to f32).
  static __m256 dot_half(__m256 acc, __m256i a, __m256i b) {
    const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
    acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, hi)),
                          _mm256_castsi256_ps(_mm256_and_si256(b, hi)), acc);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)),
                           _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), acc);
  }
  static F dot_pairs(F acc, P a, P b) { return {dot_half(acc.a, a.a, b.a), dot_half(acc.b, a.b, b.b)}; }
  static F store_bf16_rounded(uint16_t* dst, F x) {
    const F r = {round_bf16_256(x.a), round_bf16_256(x.b)};
    const __m256i ua = _mm256_srli_epi32(_mm256_castps_si256(r.a), 16);
    const __m256i ub = _mm256_srli_epi32(_mm256_castps_si256(r.b), 16);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(ua, ub), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), packed);
    return r;
  }
};

using Avx2F32 = Flash<Avx2, false, false>;
using Avx2Bf16 = Flash<Avx2, false, true>;
using EmuF32 = Flash<Emu512, false, false>;
using EmuBf16 = Flash<Emu512, true, true>;

template <class Fp, class Bp>
size_t ws_bytes(const AttentionProblem& p) {
  return p.bf16 ? Bp::workspace_bytes(p) : Fp::workspace_bytes(p);
}
template <class Fp, class Bp>
void run_tasks(const AttentionProblem& p, int64_t t0, int64_t t1, void* ws) {
  if (p.bf16) {
    Bp::run(p, t0, t1, ws);
  } else {
    Fp::run(p, t0, t1, ws);
  }
}

}  // namespace

namespace qdit::kernels::cpu {

AttentionVariant attention_variant_avx2() {
  return {"avx2", false, &ws_bytes<Avx2F32, Avx2Bf16>, &run_tasks<Avx2F32, Avx2Bf16>};
}

AttentionVariant attention_variant_avx512_emulated() {
  return {"avx512-emulated", false, &ws_bytes<EmuF32, EmuBf16>, &run_tasks<EmuF32, EmuBf16>};
}

}  // namespace qdit::kernels::cpu
