// 2^t to bf16 precision, for exponentials whose results are rounded to bf16 (half-ulp 2^-9) right
// after: the attention's softmax weights and GELU for bf16 GEMM outputs. Included only by AVX-512
// translation units after their `#pragma GCC target`; internal linkage.
#pragma once

namespace {

// 2^f for 0 <= f < 1 as a degree-3 polynomial (relative error 7.5e-5: the minimax polynomial for
// |f| <= 1/2 shifted by 1/2 and scaled by sqrt(2)).
inline __m512 exp2_unit_fraction_bf16_precision(__m512 f) {
  __m512 p = _mm512_set1_ps(0.07802452447369648f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.22606718224349442f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6958335145357909f));
  return _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.9999252228615211f));
}

// 2^t in the lanes of keep (0 in the others), for t whose result is a normal float: VREDUCEPS gives
// t - floor(t) in one instruction and VSCALEFPS multiplies by 2^floor(t) itself (rounding t and
// subtracting measured ~3% slower per attention call).
inline __m512 exp2_bf16_precision(__m512 t, __mmask16 keep = static_cast<__mmask16>(0xFFFF)) {
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  return _mm512_maskz_scalef_ps(keep, exp2_unit_fraction_bf16_precision(f), t);
}

}  // namespace
