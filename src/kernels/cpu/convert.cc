#include "qdit/kernels/cpu/convert.h"

#include <immintrin.h>

#include "qdit/core/float_cast.h"
#include "qdit/core/parallel.h"

namespace qdit::kernels::cpu {

namespace {
// 8 floats -> 8 bf16 with round-to-nearest-even and NaN -> 0x7FC0, as the scalar cast.
inline __m128i cvt8_f32_bf16(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
  // pack 32->16 (values fit in 16 bits unsigned); packus works per 128-bit lane.
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm_unpacklo_epi64(_mm256_castsi256_si128(packed), _mm256_extracti128_si256(packed, 1));
}
}  // namespace

void f32_to_bf16_buffer(const float* src, uint16_t* dst, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), cvt8_f32_bf16(_mm256_loadu_ps(src + i)));
    for (; i < e; ++i) dst[i] = f32_to_bf16(src[i]);
  });
}

void bf16_to_f32_buffer(const uint16_t* src, float* dst, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
      __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < e; ++i) dst[i] = bf16_to_f32(src[i]);
  });
}

void f16_to_f32_buffer(const uint16_t* src, float* dst, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < e; ++i) dst[i] = f16_to_f32(src[i]);
  });
}

}  // namespace qdit::kernels::cpu
