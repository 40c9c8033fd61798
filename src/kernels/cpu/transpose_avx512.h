// A 16 x 16 transpose of 32-bit words in AVX-512 registers, for packing operands into AMX tile
// layouts (int8 weight tiles, the attention's key tiles of bf16 dim pairs). Included only by
// AVX-512 translation units after their `#pragma GCC target`; internal linkage.
#pragma once

namespace {

// Word indices for _mm512_permutex2var_epi32 (16 and up: the second vector) of transpose round b:
// kLo[b] gives row i (bit b clear) its words with bit b clear and row i | 2^b's with bit b clear
// moved up; kHi[b] the converse for row i | 2^b.
struct TransposeIndices {
  alignas(64) int32_t lo[4][16], hi[4][16];
  constexpr TransposeIndices() : lo(), hi() {
    for (int b = 0; b < 4; ++b)
      for (int j = 0; j < 16; ++j) {
        const int bit = 1 << b;
        lo[b][j] = (j & bit) ? 16 + (j ^ bit) : j;
        hi[b][j] = (j & bit) ? 16 + j : (j ^ bit);
      }
  }
};
constexpr TransposeIndices kTranspose;

// r[i][j] <-> r[j][i] for 16 vectors of 16 32-bit words: four rounds, round b exchanging bit b of
// the row index with bit b of the word index between rows i and i | 2^b.
inline void transpose_16x16_words(__m512i r[16]) {
  for (int b = 0; b < 4; ++b) {
    const int bit = 1 << b;
    const __m512i il = _mm512_load_si512(kTranspose.lo[b]), ih = _mm512_load_si512(kTranspose.hi[b]);
    for (int i = 0; i < 16; ++i) {
      if (i & bit) continue;
      const __m512i x = r[i], y = r[i | bit];
      r[i] = _mm512_permutex2var_epi32(x, il, y);
      r[i | bit] = _mm512_permutex2var_epi32(x, ih, y);
    }
  }
}

}  // namespace
