// 2^f for |f| <= 1/2 as a degree-3 polynomial (minimax for relative error: 7.5e-5), for
// exponentials whose results are rounded to bf16 (half-ulp 2^-9) right after: the attention's
// softmax weights and GELU for bf16 GEMM outputs. Included only by AVX-512 translation units after
// their `#pragma GCC target`; internal linkage.
#pragma once

namespace {

inline __m512 exp2_fraction_bf16_precision(__m512 f) {
  __m512 p = _mm512_set1_ps(0.05517167035420652f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24261114309941975f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6932609870388906f));
  return _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.9999280723037175f));
}

}  // namespace
