// AVX-512 variant of the quantization kernels (quant_kernels.h), entered only after
// cpu::has_avx512_bf16(): 16-lane versions of the shared algorithms (qkernels_impl.h); 4-bit table
// lookups straight to bf16 with vpermw (32 codes per instruction, the 16-entry table duplicated so
// that bit 4 of each index is don't-care) or to f32 with vpermps; int8 and fp8 -> bf16 with
// vcvtne2ps2bf16 when the row scale rules out denormal and NaN products (where it equals the exact
// RNE).
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
  static I loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static I permute(I table, I idx) { return _mm512_permutexvar_epi32(idx, table); }
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

// The f32 table of group g, R(R(base * scale) + zero), in registers.
inline __m512 group_table(const Lut4Run& p, __m512 base, int64_t g) {
  const bool bf = p.round == Round::BF16;
  __m512 t = _mm512_mul_ps(base, _mm512_set1_ps(p.scale[g * p.scale_stride]));
  if (bf) t = round_bf16<V16>(t);
  if (p.zero) {
    t = _mm512_add_ps(t, _mm512_set1_ps(p.zero[g * p.zero_stride]));
    if (bf) t = round_bf16<V16>(t);
  }
  return t;
}

// Index vectors for the lookups from the codes at byte-aligned nibble (pair layouts) or byte
// (Field) position cur of `bytes`; masked: only the bytes of cnt codes are read.
struct LutIdx {
  const uint8_t* bytes;
  __m128i fshift;
  __m512i fmask16, fmask32;

  // 32 index words for vpermw. Pairs: one byte -> one dword holding the index words of its two
  // codes (vpermw reads 5 bits; the table is duplicated so bit 4 is don't-care).
  template <Nibbles kL>
  __m512i idx32(int64_t cur, bool masked, int64_t cnt) const {
    if constexpr (kL == Nibbles::Field) {
      const __m256i v = masked ? _mm256_maskz_loadu_epi8(first_n32(cnt), bytes + cur)
                               : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + cur));
      return _mm512_and_si512(_mm512_srl_epi16(_mm512_cvtepu8_epi16(v), fshift), fmask16);
    } else {
      const __m128i v = masked ? _mm_maskz_loadu_epi8(first_n16((cnt + 1) / 2), bytes + cur / 2)
                               : _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + cur / 2));
      const __m512i d = _mm512_cvtepu8_epi32(v);
      if constexpr (kL == Nibbles::LowFirst) return _mm512_or_si512(d, _mm512_slli_epi32(d, 12));
      return _mm512_or_si512(_mm512_srli_epi32(d, 4), _mm512_slli_epi32(d, 16));
    }
  }

  // 16 index dwords for vpermps. Pairs: one byte -> one qword holding its two codes' dwords.
  template <Nibbles kL>
  __m512i idx16(int64_t cur, bool masked, int64_t cnt) const {
    if constexpr (kL == Nibbles::Field) {
      const __m128i v = masked ? _mm_maskz_loadu_epi8(first_n16(cnt), bytes + cur)
                               : _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + cur));
      return _mm512_and_si512(_mm512_srl_epi32(_mm512_cvtepu8_epi32(v), fshift), fmask32);
    } else {
      const __m128i v = masked
                            ? _mm_maskz_loadu_epi8(static_cast<__mmask16>(first_n16((cnt + 1) / 2) & 0xFF), bytes + cur / 2)
                            : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + cur / 2));
      const __m512i d = _mm512_cvtepu8_epi64(v);
      if constexpr (kL == Nibbles::LowFirst) return _mm512_or_si512(d, _mm512_slli_epi64(d, 28));
      return _mm512_or_si512(_mm512_srli_epi64(d, 4), _mm512_slli_epi64(d, 32));
    }
  }
};

// Tables are built 16 groups ahead of their lookups (independent work the core can overlap,
// instead of each group's lookups waiting on its table's dependency chain). Everything the loops
// read is in locals: the output stores could otherwise alias the run's fields.
template <bool kBf16, Nibbles kL>
void lut4_t(const Lut4Run& p, void* out_base) {
  constexpr bool kField = kL == Nibbles::Field;
  const LutIdx ix{p.bytes, _mm_cvtsi32_si128(p.shift), _mm512_set1_epi16(static_cast<short>((1 << p.field_bits) - 1)),
                  _mm512_set1_epi32((1 << p.field_bits) - 1)};
  const __m512 base = _mm512_loadu_ps(p.base);
  const int64_t n = p.n, group = p.group, first_group = p.first_group, start = kField ? 0 : (p.odd_start ? 1 : 0);
  uint16_t* const ob = static_cast<uint16_t*>(out_base);
  float* const of = static_cast<float*>(out_base);
  constexpr int64_t kStep = kBf16 ? 32 : 16;
  constexpr int64_t kAhead = 16;
  __m512 tfs[kAhead];
  __m512i tbs[kAhead];
  int64_t done = 0;
  for (int64_t g0 = 0; done < n; g0 += kAhead) {
    int64_t ng = 0;
    for (int64_t left = n - done; ng < kAhead && left > 0; ++ng) {
      const int64_t g = g0 + ng;
      left -= g == 0 ? first_group : group;
      tfs[ng] = group_table(p, base, g);
      if constexpr (kBf16) {
        const __m256i w = _mm512_cvtepi32_epi16(bf16_bits<V16>(tfs[ng]));
        tbs[ng] = _mm512_inserti64x4(_mm512_castsi256_si512(w), w, 1);
      }
    }
    for (int64_t j = 0; j < ng; ++j) {
      const int64_t g = g0 + j;
      const int64_t len = min_i64(g == 0 ? first_group : group, n - done);
      const __m512 tf = tfs[j];
      const __m512i tb = tbs[j];
      const int64_t pos = start + done;
      int64_t i = 0;
      if (!kField && (pos & 1)) {  // the group starts inside a byte: its first code alone
        alignas(64) float lf[16];
        alignas(64) uint16_t lb[32];
        const int c = code_at(p, pos);
        if constexpr (kBf16) {
          _mm512_store_si512(lb, tb);
          ob[done] = lb[c];
        } else {
          _mm512_store_ps(lf, tf);
          of[done] = lf[c];
        }
        i = 1;
      }
      for (; i + kStep <= len; i += kStep) {
        if constexpr (kBf16)
          _mm512_storeu_si512(ob + done + i, _mm512_permutexvar_epi16(ix.idx32<kL>(pos + i, false, kStep), tb));
        else
          _mm512_storeu_ps(of + done + i, _mm512_permutexvar_ps(ix.idx16<kL>(pos + i, false, kStep), tf));
      }
      if (i < len) {
        const int64_t cnt = len - i;
        if constexpr (kBf16)
          _mm512_mask_storeu_epi16(ob + done + i, first_n32(cnt),
                                   _mm512_permutexvar_epi16(ix.idx32<kL>(pos + i, true, cnt), tb));
        else
          _mm512_mask_storeu_ps(of + done + i, first_n16(cnt), _mm512_permutexvar_ps(ix.idx16<kL>(pos + i, true, cnt), tf));
      }
      done += len;
    }
  }
}

template <bool kBf16>
void lut4_any(const Lut4Run& p, void* out) {
  switch (p.layout) {
    case Nibbles::LowFirst: return lut4_t<kBf16, Nibbles::LowFirst>(p, out);
    case Nibbles::HighFirst: return lut4_t<kBf16, Nibbles::HighFirst>(p, out);
    case Nibbles::Field: return lut4_t<kBf16, Nibbles::Field>(p, out);
  }
}

void lut4_bf16(const Lut4Run& p, uint16_t* dst) { lut4_any<true>(p, dst); }
void lut4_f32(const Lut4Run& p, float* dst) { lut4_any<false>(p, dst); }

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
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i)))), vs);
    const __m512 b = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i + 16)))), vs);
    _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(b, a));  // a -> elements 0..15, b -> 16..31
  }
  if (i < n) {
    const int64_t cnt = n - i;
    const __m256i v = _mm256_maskz_loadu_epi8(first_n32(cnt), c + i);
    const __m512 a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(v))), vs);
    const __m512 b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1))), vs);
    _mm512_mask_storeu_epi16(dst + i, first_n32(cnt), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
}

// fp8 -> bf16 likewise: fp8(c) * s has no denormal product when s is zero or a normal number of at
// least 2^-110 (e5m2's smallest subnormal is 2^-16, e4m3fn's 2^-9); NaN codes decode to the
// positive quiet NaN, which the hardware conversion also maps to 0x7FC0. e5m2's inf times a zero
// scale would be the negative default NaN: that case takes the exact path.
void fp8_mul_bf16(const uint8_t* c, int64_t n, bool e5m2, float s, Round r, uint16_t* dst) {
  const uint32_t e = (bits_of(s) >> 23) & 0xFF;
  const bool zero = (bits_of(s) & 0x7FFFFFFFu) == 0;
  if (zero ? e5m2 : (e < 127 - 110 || e == 0xFF)) {
    fp8_mul_any<V16, uint16_t>(c, n, e5m2, s, r, dst);
    return;
  }
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 32) {
    const int64_t cnt = min_i64(32, n - i);
    const __m256i v = cnt == 32 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i))
                                : _mm256_maskz_loadu_epi8(first_n32(cnt), c + i);
    const __m512 a = _mm512_mul_ps(fp8_decode<V16>(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(v)), e5m2), vs);
    const __m512 b = _mm512_mul_ps(fp8_decode<V16>(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(v, 1)), e5m2), vs);
    const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(b, a);
    if (cnt == 32)
      _mm512_storeu_si512(dst + i, h);
    else
      _mm512_mask_storeu_epi16(dst + i, first_n32(cnt), h);
  }
}

void act_quant(const void* x, bool bf16, int64_t k, float divisor, int8_t* q, float* scale) {
  act_quant_t<V16>(x, bf16, k, divisor, q, scale);
}

}  // namespace

namespace qdit::kernels::cpu {

extern const qk::Kernels kQuantKernelsAvx512 = {"avx512",
                                               &s8_mul_any<V16, float>,
                                               &s8_mul_bf16,
                                               &fp8_mul_any<V16, float>,
                                               &fp8_mul_bf16,
                                               &lut4_f32,
                                               &lut4_bf16,
                                               &abs_max_plain<V16>,
                                               &abs_max_f16<V16>,
                                               &quant_s8_any<V16>,
                                               &quant_fp8_any<V16>,
                                               &min_max_t<V16>,
                                               &affine_codes_t<V16>,
                                               &nearest_codes_t<V16>,
                                               &epilogue_rows_t<V16>,
                                               &act_quant};

}  // namespace qdit::kernels::cpu
