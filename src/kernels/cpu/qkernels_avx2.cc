// AVX2 (baseline) variant of the quantization kernels (quant_kernels.h): 8-lane versions of the
// shared algorithms (qkernels_impl.h), 4-bit table lookups with pshufb (bf16: the 16 table entries
// split into a low-byte and a high-byte table) or two permps + blend (f32).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qdit/kernels/cpu/qkernels.h"
#include "qdit/kernels/quant_kernels.h"
#include "qdit/kernels/cpu/qkernels_impl.h"

namespace {

struct V8 {
  static constexpr int W = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256i;
  static F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static F load_bf16(const uint16_t* p) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  static F load_s8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static I load_u8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static void storef(float* p, F v) { _mm256_storeu_ps(p, v); }
  static __m128i narrow16(I v, bool sign) {  // 8 x i32 -> 8 x i16, saturating
    const I w = sign ? _mm256_packs_epi32(v, v) : _mm256_packus_epi32(v, v);
    return _mm_unpacklo_epi64(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  }
  static void store_u16(uint16_t* p, I v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow16(v, false)); }
  static void store_s8(int8_t* p, I v) {
    const __m128i w = narrow16(v, true);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(w, w));
  }
  static void store_u8(uint8_t* p, I v) {
    const __m128i w = narrow16(v, false);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
  }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static I set1i(int32_t x) { return _mm256_set1_epi32(x); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static I loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static I permute(I table, I idx) { return _mm256_permutevar8x32_epi32(table, idx); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static I cvt_rne(F a) { return _mm256_cvtps_epi32(a); }  // MXCSR default: round half even
  static F cvt_i2f(I a) { return _mm256_cvtepi32_ps(a); }
  static I castfi(F a) { return _mm256_castps_si256(a); }
  static F castif(I a) { return _mm256_castsi256_ps(a); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I ior(I a, I b) { return _mm256_or_si256(a, b); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I isrl(I a, int n) { return _mm256_srli_epi32(a, n); }
  static I isll(I a, int n) { return _mm256_slli_epi32(a, n); }
  static I imin(I a, I b) { return _mm256_min_epi32(a, b); }
  static I imax(I a, I b) { return _mm256_max_epi32(a, b); }
  static M flt(F a, F b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static M funord(F a) { return _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
  static M icmpgt(I a, I b) { return _mm256_cmpgt_epi32(a, b); }
  static M icmpeq(I a, I b) { return _mm256_cmpeq_epi32(a, b); }
  static F fsel(M m, F t, F f) { return _mm256_blendv_ps(f, t, _mm256_castsi256_ps(m)); }
  static I isel(M m, I t, I f) { return _mm256_blendv_epi8(f, t, m); }
  static float hmax(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static F f16_round(F v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
};

// ---- 4-bit lookups ----

// 32 code indices (bytes 0..15) of the codes starting at byte-aligned `b` (pair layouts: 16 bytes;
// Field: 32 bytes). Bytes past `avail` input bytes read as zero.
inline __m256i lut_indices(const Lut4Run& p, const uint8_t* b, int64_t avail) {
  alignas(32) uint8_t tmp[32];
  const int64_t need = p.layout == Nibbles::Field ? 32 : 16;
  if (avail < need) {
    memset(tmp, 0, sizeof(tmp));
    memcpy(tmp, b, static_cast<size_t>(avail));
    b = tmp;
  }
  const __m128i nib = _mm_set1_epi8(0x0F);
  if (p.layout == Nibbles::Field) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << p.field_bits) - 1));
    return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(p.shift)), mask);
  }
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  const __m128i lo = _mm_and_si128(v, nib), hi = _mm_and_si128(_mm_srli_epi16(v, 4), nib);
  const __m128i first = p.layout == Nibbles::LowFirst ? lo : hi, second = p.layout == Nibbles::LowFirst ? hi : lo;
  return _mm256_set_m128i(_mm_unpackhi_epi8(first, second), _mm_unpacklo_epi8(first, second));
}

void lut4_bf16(const Lut4Run& p, uint16_t* dst) {
  lut_groups<V8>(p, [&](const float*, const uint16_t* tb, int64_t out0, int64_t len, int64_t pos) {
    // Low and high bytes of the 16 bf16 entries, in both 128-bit lanes for pshufb.
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb));  // 16 x u16
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10,
                                           12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m256i sb = _mm256_shuffle_epi8(t, split);  // lane0: lo0-7 hi0-7, lane1: lo8-15 hi8-15
    const __m256i lo_lo = _mm256_permute4x64_epi64(sb, 0x88), hi_hi = _mm256_permute4x64_epi64(sb, 0xDD);
    // lo_lo: qwords [lo0-7, lo8-15, lo0-7, lo8-15]; hi_hi likewise for the high bytes.
    const __m256i tlo = lo_lo, thi = hi_hi;
    uint16_t* out = dst + out0;
    int64_t i = 0;
    if (p.layout != Nibbles::Field && (pos & 1)) {
      out[0] = tb[code_at(p, pos)];
      i = 1;
    }
    const int64_t nbytes_total = p.layout == Nibbles::Field ? pos + len : (pos + len + 1) / 2;
    while (i < len) {
      const int64_t cur = pos + i;  // byte-aligned
      const uint8_t* b = p.bytes + (p.layout == Nibbles::Field ? cur : cur / 2);
      const int64_t avail = nbytes_total - (p.layout == Nibbles::Field ? cur : cur / 2);
      const __m256i idx = lut_indices(p, b, avail);
      const __m256i l = _mm256_shuffle_epi8(tlo, idx), h = _mm256_shuffle_epi8(thi, idx);
      const __m256i w0 = _mm256_unpacklo_epi8(l, h), w1 = _mm256_unpackhi_epi8(l, h);
      const __m256i a = _mm256_permute2x128_si256(w0, w1, 0x20), c = _mm256_permute2x128_si256(w0, w1, 0x31);
      const int64_t cnt = min_i64(32, len - i);
      if (cnt == 32) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), a);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 16), c);
      } else {
        alignas(32) uint16_t tmp[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), a);
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 16), c);
        memcpy(out + i, tmp, sizeof(uint16_t) * static_cast<size_t>(cnt));
      }
      i += cnt;
    }
  });
}

void lut4_f32(const Lut4Run& p, float* dst) {
  lut_groups<V8>(p, [&](const float* tf, const uint16_t*, int64_t out0, int64_t len, int64_t pos) {
    const __m256 t0 = _mm256_loadu_ps(tf), t1 = _mm256_loadu_ps(tf + 8);
    float* out = dst + out0;
    int64_t i = 0;
    if (p.layout != Nibbles::Field && (pos & 1)) {
      out[0] = tf[code_at(p, pos)];
      i = 1;
    }
    const int64_t nbytes_total = p.layout == Nibbles::Field ? pos + len : (pos + len + 1) / 2;
    while (i < len) {
      const int64_t cur = pos + i;
      const uint8_t* b = p.bytes + (p.layout == Nibbles::Field ? cur : cur / 2);
      const int64_t avail = nbytes_total - (p.layout == Nibbles::Field ? cur : cur / 2);
      alignas(32) uint8_t idx[32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(idx), lut_indices(p, b, avail));
      const int64_t cnt = min_i64(32, len - i);
      alignas(32) float tmp[32];
      for (int j = 0; j < 32; j += 8) {
        const __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + j)));
        const __m256 lo = _mm256_permutevar8x32_ps(t0, k), hi = _mm256_permutevar8x32_ps(t1, k);
        _mm256_store_ps(tmp + j, _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(k, 28))));
      }
      memcpy(out + i, tmp, sizeof(float) * static_cast<size_t>(cnt));
      i += cnt;
    }
  });
}

void act_quant(const void* x, bool bf16, int64_t k, float divisor, int8_t* q, float* scale) {
  act_quant_t<V8>(x, bf16, k, divisor, q, scale);
}

}  // namespace

namespace qdit::kernels::cpu {

extern const qk::Kernels kQuantKernelsAvx2 = {"avx2",
                                             &s8_mul_any<V8, float>,
                                             &s8_mul_any<V8, uint16_t>,
                                             &fp8_mul_any<V8, float>,
                                             &fp8_mul_any<V8, uint16_t>,
                                             &lut4_f32,
                                             &lut4_bf16,
                                             &abs_max_plain<V8>,
                                             &abs_max_f16<V8>,
                                             &quant_s8_any<V8>,
                                             &quant_fp8_any<V8>,
                                             &min_max_t<V8>,
                                             &affine_codes_t<V8>,
                                             &nearest_codes_t<V8>,
                                             &epilogue_rows_t<V8>,
                                             &act_quant};

}  // namespace qdit::kernels::cpu
