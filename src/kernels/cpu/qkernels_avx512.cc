// AVX-512 variant of the quantization kernels (quant_kernels.h), entered only after
// cpu::has_avx512_bf16(): 16-lane versions of the shared algorithms (qkernels_impl.h); 4-bit table
// lookups straight to bf16 with vpermw (32 codes per instruction, the 16-entry table duplicated so
// that bit 4 of each index is don't-care) or to f32 with vpermps; int8 -> bf16 with vcvtne2ps2bf16
// when the row scale rules out denormal and NaN products (where it equals the exact RNE); and the
// bf16 pack with 16x16 dword transposes.
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qdit/kernels/cpu/qkernels.h"
#include "qdit/kernels/quant_kernels.h"

// Also set here so the file is AVX-512 code whatever flags the build passes (the kernel code below
// comes after every standard header, so no std inline function is compiled for AVX-512).
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")
#include "qdit/kernels/cpu/qkernels_impl.h"

namespace {

struct V16 {
  static constexpr int W = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static F load_bf16(const uint16_t* p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
  static F load_s8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static I load_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void storef(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void store_u16(uint16_t* p, I v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
  }
  static void store_s8(int8_t* p, I v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtsepi32_epi8(v)); }
  static void store_u8(uint8_t* p, I v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v)); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static I set1i(int32_t x) { return _mm512_set1_epi32(x); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F abs(F a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7FFFFFFF))); }
  static I cvt_rne(F a) { return _mm512_cvtps_epi32(a); }  // MXCSR default: round half even
  static F cvt_i2f(I a) { return _mm512_cvtepi32_ps(a); }
  static I castfi(F a) { return _mm512_castps_si512(a); }
  static F castif(I a) { return _mm512_castsi512_ps(a); }
  static I iand(I a, I b) { return _mm512_and_si512(a, b); }
  static I ior(I a, I b) { return _mm512_or_si512(a, b); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I isrl(I a, int n) { return _mm512_srli_epi32(a, static_cast<unsigned>(n)); }
  static I isll(I a, int n) { return _mm512_slli_epi32(a, static_cast<unsigned>(n)); }
  static I imin(I a, I b) { return _mm512_min_epi32(a, b); }
  static I imax(I a, I b) { return _mm512_max_epi32(a, b); }
  static M flt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M funord(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static M icmpgt(I a, I b) { return _mm512_cmpgt_epi32_mask(a, b); }
  static M icmpeq(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static F fsel(M m, F t, F f) { return _mm512_mask_blend_ps(m, f, t); }
  static I isel(M m, I t, I f) { return _mm512_mask_blend_epi32(m, f, t); }
  static float hmax(F v) { return _mm512_reduce_max_ps(v); }
  static F f16_round(F v) { return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
};

inline __mmask32 first_n32(int64_t n) { return n >= 32 ? ~__mmask32{0} : (__mmask32{1} << n) - 1; }
inline __mmask16 first_n16(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1); }

// ---- 4-bit lookups ----

void lut4_bf16(const Lut4Run& p, uint16_t* dst) {
  const bool field = p.layout == Nibbles::Field, low_first = p.layout == Nibbles::LowFirst;
  const __m512i fmask = _mm512_set1_epi16(static_cast<short>((1 << p.field_bits) - 1));
  const __m128i fshift = _mm_cvtsi32_si128(p.shift);
  lut_groups<V16>(p, [&](const float*, const uint16_t* tb, int64_t out0, int64_t len, int64_t pos) {
    const __m512i tab = _mm512_loadu_si512(tb);
    uint16_t* out = dst + out0;
    int64_t i = 0;
    if (!field && (pos & 1)) {
      out[0] = tb[code_at(p, pos)];
      i = 1;
    }
    while (i < len) {
      const int64_t cnt = min_i64(32, len - i), cur = pos + i;
      __m512i idx;
      if (field) {
        const __m256i v = _mm256_maskz_loadu_epi8(first_n32(cnt), p.bytes + cur);
        idx = _mm512_and_si512(_mm512_srl_epi16(_mm512_cvtepu8_epi16(v), fshift), fmask);
      } else {
        // One byte -> one dword holding the index words of its two codes (vpermw reads 5 bits).
        const __m128i v = _mm_maskz_loadu_epi8(first_n16((cnt + 1) / 2), p.bytes + cur / 2);
        const __m512i d = _mm512_cvtepu8_epi32(v);
        idx = low_first ? _mm512_or_si512(d, _mm512_slli_epi32(d, 12))
                        : _mm512_or_si512(_mm512_srli_epi32(d, 4), _mm512_slli_epi32(d, 16));
      }
      const __m512i r = _mm512_permutexvar_epi16(idx, tab);
      if (cnt == 32)
        _mm512_storeu_si512(out + i, r);
      else
        _mm512_mask_storeu_epi16(out + i, first_n32(cnt), r);
      i += cnt;
    }
  });
}

void lut4_f32(const Lut4Run& p, float* dst) {
  const bool field = p.layout == Nibbles::Field, low_first = p.layout == Nibbles::LowFirst;
  const __m512i fmask = _mm512_set1_epi32((1 << p.field_bits) - 1);
  const __m128i fshift = _mm_cvtsi32_si128(p.shift);
  lut_groups<V16>(p, [&](const float* tf, const uint16_t*, int64_t out0, int64_t len, int64_t pos) {
    const __m512 tab = _mm512_loadu_ps(tf);
    float* out = dst + out0;
    int64_t i = 0;
    if (!field && (pos & 1)) {
      out[0] = tf[code_at(p, pos)];
      i = 1;
    }
    while (i < len) {
      const int64_t cnt = min_i64(16, len - i), cur = pos + i;
      __m512i idx;
      if (field) {
        const __m128i v = _mm_maskz_loadu_epi8(first_n16(cnt), p.bytes + cur);
        idx = _mm512_and_si512(_mm512_srl_epi32(_mm512_cvtepu8_epi32(v), fshift), fmask);
      } else {
        // One byte -> one qword holding the index dwords of its two codes (vpermps reads 4 bits).
        const __m128i v = _mm_maskz_loadu_epi8(static_cast<__mmask16>(first_n16((cnt + 1) / 2) & 0xFF), p.bytes + cur / 2);
        const __m512i d = _mm512_cvtepu8_epi64(v);
        idx = low_first ? _mm512_or_si512(d, _mm512_slli_epi64(d, 28))
                        : _mm512_or_si512(_mm512_srli_epi64(d, 4), _mm512_slli_epi64(d, 32));
      }
      const __m512 r = _mm512_permutexvar_ps(idx, tab);
      if (cnt == 16)
        _mm512_storeu_ps(out + i, r);
      else
        _mm512_mask_storeu_ps(out + i, first_n16(cnt), r);
      i += cnt;
    }
  });
}

// ---- int8 -> bf16 ----

// float(c) * s is never denormal or NaN when s is zero or a finite normal number, and there the
// hardware conversion (which flushes denormals and keeps NaN payloads) equals the exact RNE.
void s8_mul_bf16(const int8_t* c, int64_t n, float s, Round r, uint16_t* dst) {
  const uint32_t e = (bits_of(s) >> 23) & 0xFF;
  const bool zero = (bits_of(s) & 0x7FFFFFFFu) == 0;
  if (!zero && (e == 0 || e == 0xFF)) {
    s8_mul_any<V16, uint16_t>(c, n, s, r, dst);
    return;
  }
  // With bf16 rounding (r), the rounded value's bits are the same RNE bits: r adds nothing here.
  const __m512 vs = _mm512_set1_ps(s);
  int64_t i = 0;
  for (; i < n; i += 32) {
    const int64_t cnt = min_i64(32, n - i);
    const __m256i v = _mm256_maskz_loadu_epi8(first_n32(cnt), c + i);
    const __m512 a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(v))), vs);
    const __m512 b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1))), vs);
    const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // a -> elements 0..15, b -> 16..31
    if (cnt == 32)
      _mm512_storeu_si512(dst + i, h);
    else
      _mm512_mask_storeu_epi16(dst + i, first_n32(cnt), h);
  }
}

// ---- bf16 pack into BA16a<nb>b2a ----

inline void transpose16(__m512i r[16]) {
  __m512i a[16], b[16];
  for (int q = 0; q < 8; ++q) {
    a[2 * q] = _mm512_unpacklo_epi32(r[2 * q], r[2 * q + 1]);
    a[2 * q + 1] = _mm512_unpackhi_epi32(r[2 * q], r[2 * q + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    b[4 * g + 0] = _mm512_unpacklo_epi64(a[4 * g + 0], a[4 * g + 2]);
    b[4 * g + 1] = _mm512_unpackhi_epi64(a[4 * g + 0], a[4 * g + 2]);
    b[4 * g + 2] = _mm512_unpacklo_epi64(a[4 * g + 1], a[4 * g + 3]);
    b[4 * g + 3] = _mm512_unpackhi_epi64(a[4 * g + 1], a[4 * g + 3]);
  }
  // b[4g + c] holds, in 128-bit lane L, rows 4g..4g+3 of column 4L + c.
  for (int c = 0; c < 4; ++c) {
    const __m512i c0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x88), c1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xDD);
    const __m512i c2 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x88);
    const __m512i c3 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xDD);
    r[c] = _mm512_shuffle_i32x4(c0, c2, 0x88);
    r[c + 8] = _mm512_shuffle_i32x4(c0, c2, 0xDD);
    r[c + 4] = _mm512_shuffle_i32x4(c1, c3, 0x88);
    r[c + 12] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
  }
}

void pack_vnni(const uint16_t* rows, int64_t ld, int64_t nrows, int64_t k, int64_t nb, uint16_t* dst,
               int64_t kblock_stride) {
  const int64_t kblocks = (k + 31) / 32;
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    const int64_t k0 = kb * 32;
    const __mmask32 km = first_n32(k - k0);
    uint16_t* blk = dst + kb * kblock_stride;
    for (int64_t r0 = 0; r0 < nb; r0 += 16) {
      __m512i r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = r0 + i < nrows ? _mm512_maskz_loadu_epi16(km, rows + (r0 + i) * ld + k0) : _mm512_setzero_si512();
      transpose16(r);
      // r[j] holds k pair j of rows r0..r0+15.
      for (int64_t j = 0; j < 16; ++j) _mm512_storeu_si512(blk + j * 2 * nb + 2 * r0, r[j]);
    }
  }
}

void act_quant(const float* x, int64_t k, float divisor, int8_t* q, float* scale) {
  act_quant_t<V16>(x, k, divisor, q, scale);
}

}  // namespace

namespace qdit::kernels::cpu {

extern const qk::Kernels kQuantKernelsAvx512 = {"avx512",
                                               &s8_mul_any<V16, float>,
                                               &s8_mul_bf16,
                                               &fp8_mul_any<V16, float>,
                                               &fp8_mul_any<V16, uint16_t>,
                                               &lut4_f32,
                                               &lut4_bf16,
                                               &abs_max_plain<V16>,
                                               &abs_max_f16<V16>,
                                               &quant_s8_any<V16>,
                                               &quant_fp8_any<V16>,
                                               &act_quant,
                                               &pack_vnni};

}  // namespace qdit::kernels::cpu
