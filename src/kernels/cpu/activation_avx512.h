// The activations of apply_activation() on 16 floats in AVX-512, for GEMM epilogues (the AMX int8
// and 4-bit kernels): within a few ulp of f32 (tanh and erf through exp). Included only by AVX-512
// translation units after their `#pragma GCC target`; internal linkage, so no copy compiled for
// AVX-512 can stand in for code that runs elsewhere. Callers are compiled without FMA contraction
// and include qdit/kernels/gemm.h (Activation) and <immintrin.h> before their pragma.
#pragma once

#include "qdit/kernels/cpu/exp2_avx512.h"

namespace {

using qdit::kernels::Activation;

// e^x to about 2 ulp for x in [-87, 88] (clamped there): 2^n by scalef times a degree-6
// polynomial of the reduced argument |r| <= ln2/2.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.4426950408889634f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 split in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// x / d for d in [1, e^80]: one Newton step on the 14-bit reciprocal (about 1 ulp), several times
// the throughput of a 512-bit division.
inline __m512 divide(__m512 x, __m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(x, _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f))));
}

// The activations of apply_activation(), to within a few ulp of f32 (tanh and erf through exp).
inline __m512 activate(Activation act, __m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  switch (act) {
    case Activation::None: return x;
    case Activation::Relu: return _mm512_max_ps(x, _mm512_setzero_ps());
    case Activation::Silu: {  // x / (1 + e^-x); below x = -80 the result is 0 to f32 precision anyway
      const __m512 e = exp_ps(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(80.0f)));
      return divide(x, _mm512_add_ps(one, e));
    }
    case Activation::GeluTanh: {  // 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
      const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
      const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
      const __m512 e = exp_ps(_mm512_min_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), u), _mm512_set1_ps(80.0f)));
      return divide(x, _mm512_add_ps(one, e));
    }
    case Activation::GeluErf: {  // 0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz-Stegun 7.1.26 (|err| < 1.5e-7)
      // erf(z) is 1 in f32 from z = 4 on; the clamp keeps the reciprocal's argument small.
      const __m512 z = _mm512_min_ps(_mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.7071067811865476f))),
                                     _mm512_set1_ps(8.0f));
      const __m512 t = divide(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), z, one));
      __m512 p = _mm512_set1_ps(1.061405429f);
      p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
      p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
      p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
      p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
      p = _mm512_mul_ps(p, t);
      const __m512 e = _mm512_fnmadd_ps(p, exp_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)), one);
      const __m512 erf = _mm512_mask_sub_ps(e, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ),
                                            _mm512_setzero_ps(), e);
      return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(one, erf));
    }
  }
  return x;
}

// GELU (tanh form) for values that are rounded to bf16 next: 2^t by a degree-3 polynomial (relative
// error 7.5e-5, exp2_avx512.h) and the unrefined 14-bit reciprocal (6.1e-5), against bf16's 2^-9 half-ulp: the
// rounded result is the correctly rounded one or one ulp from it, at about 60% of activate()'s
// instructions. x / (1 + 2^t) with t = -2 log2(e) sqrt(2/pi) (x + 0.044715 x^3), clamped to
// [-125, 80 log2(e)]: above, the same e^80 bound as activate() (the result is x e^-80 there, not
// an underflow to 0), below, 2^t would come near the denormals (the polynomial's 2^-126 is one)
// and 1 + 2^t is 1 anyway.
inline __m512 gelu_tanh_to_bf16_precision(__m512 x) {
  constexpr float c1 = -2.0f * 1.4426950408889634f * 0.7978845608028654f;
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 t = _mm512_mul_ps(x, _mm512_fmadd_ps(x2, _mm512_set1_ps(c1 * 0.044715f), _mm512_set1_ps(c1)));
  t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-125.0f)), _mm512_set1_ps(80.0f * 1.4426950408889634f));
  const __m512 d = _mm512_add_ps(exp2_bf16_precision(t), _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(x, _mm512_rcp14_ps(d));
}

}  // namespace
