// The AVX-512 / AMX half of amx_q4_gemm.h: panel decode into A tiles, x into B tiles, the tile
// loop and the transposing epilogue. Compiled with the AVX-512 flags (the name matches "_avx512")
// and without FMA contraction (the table arithmetic must be the codecs' own, bit for bit); entered
// only after cpu::has_amx_bf16() (amx_q4_decode_rows: has_avx512_bf16()).
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qdit/kernels/cpu/amx_q4_gemm.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"

// After every standard header: no std inline function is compiled for AVX-512 / AMX here.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")
#include "qdit/kernels/cpu/activation_avx512.h"
#include "qdit/kernels/cpu/amx_tiles.h"

namespace qdit::kernels::cpu::amx_q4 {

namespace {

using qk::Lut4Matrix;
using qk::Nibbles;
using qk::Round;

constexpr int64_t kTile = 512;  // uint16 elements of one 1 KiB tile


inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline __mmask16 first_n16(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1); }

// ---- the codecs' table arithmetic (qkernels_impl.h / qkernels_avx512.cc, restated) ----

// bf16 bits (RNE, NaN -> 0x7FC0) in the low half of each lane.
inline __m512i bf16_bits(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  return _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), r, _mm512_set1_epi32(0x7FC0));
}
inline __m512 round_bf16(__m512 v) { return _mm512_castsi512_ps(_mm512_slli_epi32(bf16_bits(v), 16)); }

// The bf16 table of (row, group) g, R(R(base * scale) + zero), duplicated to 32 words (vpermw reads
// 5 index bits; the neighbouring nibble's low bit lands in bit 4).
inline __m512 round_bf16_fast(__m512 v) { return _mm512_cvtpbh_ps(_mm512_cvtneps_pbh(v)); }

inline __m512i group_table(const Lut4Matrix& w, __m512 base, int64_t row, int64_t g) {
  const bool bf = w.round == Round::BF16;
  const float s = w.scale[row * w.scale_row + g * w.scale_group];
  const float z = w.zero ? w.zero[row * w.zero_row + g * w.zero_group] : 0.0f;
  __m512 t = _mm512_mul_ps(base, _mm512_set1_ps(s));
  __m256i h;
  if (w.tame) {  // the common case: hardware rounding, 4 instructions fewer per step
    if (bf) t = round_bf16_fast(t);
    if (w.zero) {
      t = _mm512_add_ps(t, _mm512_set1_ps(z));
      if (bf) t = round_bf16_fast(t);
    }
    h = (__m256i)_mm512_cvtneps_pbh(t);
  } else {
    if (bf) t = round_bf16(t);
    if (w.zero) {
      t = _mm512_add_ps(t, _mm512_set1_ps(z));
      if (bf) t = round_bf16(t);
    }
    h = _mm512_cvtepi32_epi16(bf16_bits(t));
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(h), h, 1);
}

// 32 index words from the 16 bytes of 32 codes: one byte -> one dword holding its codes' words.
template <Nibbles kL>
inline __m512i code_words(const uint8_t* p) {
  const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  if constexpr (kL == Nibbles::LowFirst) return _mm512_or_si512(d, _mm512_slli_epi32(d, 12));
  return _mm512_or_si512(_mm512_srli_epi32(d, 4), _mm512_slli_epi32(d, 16));
}

// Rows [i0, i1) of one A tile: weight rows r0 + i (zeros past n) x codes [kc * 32, kc * 32 + 32),
// row i at dst + i * ds. tables[i] holds row i's current group table, rebuilt when kc starts a
// group (a row block's tiles are decoded in k order).
template <Nibbles kL>
inline void decode_unit(const Lut4Matrix& w, __m512 base, int64_t r0, int64_t kc, int64_t i0, int64_t i1,
                        uint16_t* dst, int64_t ds, __m512i* tables) {
  const int64_t k0 = kc * 32, g = k0 / w.group;
  const bool fresh = k0 % w.group == 0;
  const int64_t rows = min64(i1, w.n - r0);
  const uint8_t* codes = w.codes + r0 * w.row_bytes + k0 / 2;
  for (int64_t i = i0; i < rows; ++i) {
    const uint8_t* c = codes + i * w.row_bytes;
    // Each row is its own strided stream through memory: fetch its next cache lines of codes
    // ahead of the tiles that read them (a miss holds up retirement, and the tile products with it).
    if (kc % 4 == 0) {
      if (k0 / 2 + 64 < w.row_bytes) _mm_prefetch(reinterpret_cast<const char*>(c) + 64, _MM_HINT_T0);
      if (k0 / 2 + 128 < w.row_bytes) _mm_prefetch(reinterpret_cast<const char*>(c) + 128, _MM_HINT_T0);
    }
    __m512i t;
    if (fresh) {
      t = group_table(w, base, r0 + i, g);
      _mm512_store_si512(tables + i, t);
    } else {
      t = _mm512_load_si512(tables + i);
    }
    _mm512_storeu_si512(dst + i * ds, _mm512_permutexvar_epi16(code_words<kL>(c), t));
  }
  for (int64_t i = rows > i0 ? rows : i0; i < i1; ++i) _mm512_storeu_si512(dst + i * ds, _mm512_setzero_si512());
}

// In-register 16 x 16 transpose of 32-bit elements.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int b = 0; b < 4; ++b) {
    r[4 * b + 0] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
    r[4 * b + 1] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0xEE);
    r[4 * b + 2] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
    r[4 * b + 3] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0x88);
    t[c + 4] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0xDD);
    t[c + 8] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0x88);
    t[c + 12] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0xDD);
  }
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xDD);
  }
}

// The four C tiles of panel rows [n0, n0 + 32) x tokens [m0, m0 + 32) (c: tile (a, b) =
// features n0 + 16a, tokens m0 + 16b at c + (2a + b) * 256, rows = features) into y: + bias, the
// activation, then y + that when accumulating (the post-op order of the oneDNN path).
inline void epilogue(const Problem& p, int64_t n0, int64_t m0, const float* c) {
  const int64_t n = p.w->n;
  for (int64_t a = 0; a < 2; ++a) {
    const int64_t nn = n0 + 16 * a;
    if (nn >= n) break;
    const __mmask16 mask = first_n16(n - nn);
    const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(mask, p.bias + nn) : _mm512_setzero_ps();
    for (int64_t b = 0; b < 2; ++b) {
      const int64_t mm = m0 + 16 * b;
      if (mm >= p.m) break;
      __m512 r[16];
      const float* t = c + (2 * a + b) * 256;
      for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(t + 16 * i);
      transpose16(r);
      const int64_t rows = min64(16, p.m - mm);
      float* out = p.y + mm * n + nn;
      for (int64_t j = 0; j < rows; ++j, out += n) {
        __m512 v = r[j];
        if (p.bias) v = _mm512_add_ps(v, bias);
        v = activate(p.act, v);
        if (p.accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        _mm512_mask_storeu_ps(out, mask, v);
      }
    }
  }
}

// Panels go in groups of ws.group: while the tiles of one group run (tokens outer, so that a
// 32-token block of x is read from L3 once per group and from L2 for the group's other panels),
// the next group is decoded into the other buffer, a few units after every tile step.
template <Nibbles kL>
void run_panels_t(const Problem& p, int64_t p0, int64_t p1, const Workspace& ws) {
  const Lut4Matrix& w = *p.w;
  const __m512 base = _mm512_loadu_ps(w.base);
  const int64_t nkc = w.k / 32, per_panel = 2 * nkc, mblocks = p.mp / 32;
  __m512i* tables = reinterpret_cast<__m512i*>(ws.tables);
  // Unit u of the group from panel g: panel g + u / per_panel, row block (u % per_panel) / nkc
  // (16 rows), k tile u % nkc, at buf + u * kTile.
  auto decode = [&](int64_t g, uint16_t* buf, int64_t u, int64_t i0, int64_t i1) {
    const int64_t rb = (u % per_panel) / nkc;
    decode_unit<kL>(w, base, (g + u / per_panel) * kPanel + rb * 16, u % nkc, i0, i1, buf + u * kTile, 32,
                    tables + rb * 16);
  };
  // Group sizes 1, 2, 4, ... up to ws.group: only the first (smallest) group is decoded before
  // any tile work.
  auto size = [&](int64_t gi) { return gi < 62 ? min64(ws.group, int64_t{1} << gi) : ws.group; };
  for (int64_t u = 0; u < min64(size(0), p1 - p0) * per_panel; ++u) decode(p0, ws.panel[0], u, 0, 16);

  load_16x64_tiles();
  for (int64_t g = p0, gi = 0, gn = 0; g < p1; g += gn, ++gi) {
    gn = min64(size(gi), p1 - g);
    const int64_t ng = g + gn;
    const uint16_t* cur = ws.panel[gi & 1];
    uint16_t* next = ws.panel[(gi + 1) & 1];
    // The next group's tile rows (16 per unit), spread evenly over this group's tile steps.
    const int64_t todo = ng < p1 ? min64(size(gi + 1), p1 - ng) * per_panel * 16 : 0, steps = mblocks * gn * nkc;
    // Cursor into the next group (kept incrementally: no divisions between tile steps): tile
    // u = (panel jp, row block rb, k tile kc), row i; `done` rows so far.
    int64_t jp = 0, rb = 0, kc0 = 0, i = 0, u = 0, done = 0;
    auto decode_to = [&](int64_t target) {
      while (done < target) {
        const int64_t i1 = min64(16, i + target - done);
        decode_unit<kL>(w, base, (ng + jp) * kPanel + rb * 16, kc0, i, i1, next + u * kTile, 32, tables + rb * 16);
        done += i1 - i;
        i = i1;
        if (i == 16) {
          i = 0;
          ++u;
          if (++kc0 == nkc) {
            kc0 = 0;
            if (++rb == 2) {
              rb = 0;
              ++jp;
            }
          }
        }
      }
    };
    // Rows due after each step: todo / steps, the remainder spread Bresenham-style.
    const int64_t per_step = todo / steps, extra = todo % steps;
    int64_t due = 0, frac = 0;
    memory_barrier();
    for (int64_t mb = 0; mb < mblocks; ++mb) {
      const uint16_t* b0 = p.xv + 2 * mb * nkc * kTile;
      const uint16_t* b1 = b0 + nkc * kTile;
      for (int64_t j = 0; j < gn; ++j) {
        const uint16_t* a = cur + j * per_panel * kTile;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t kc = 0; kc < nkc; ++kc) {
          _tile_loadd(4, a + kc * kTile, 64);
          _tile_loadd(6, b0 + kc * kTile, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_loadd(7, b1 + kc * kTile, 64);
          _tile_dpbf16ps(1, 4, 7);
          _tile_loadd(5, a + (nkc + kc) * kTile, 64);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
          due += per_step;
          frac += extra;
          if (frac >= steps) {
            frac -= steps;
            ++due;
          }
          decode_to(due);
        }
        _tile_stored(0, ws.c, 64);
        _tile_stored(1, ws.c + 256, 64);
        _tile_stored(2, ws.c + 512, 64);
        _tile_stored(3, ws.c + 768, 64);
        memory_barrier();
        epilogue(p, (g + j) * kPanel, mb * 32, ws.c);
      }
    }
    decode_to(todo);
  }
  _tile_release();
}

}  // namespace

// Zero, or a magnitude in [2^-100, 2^100): with |base| <= 8 (int4wo codes; nf4 / fp4 maps in
// [-1, 1], none of them tiny but zero), no product, sum or rounding of such scales and zeros is
// denormal, infinite or NaN, and there vcvtneps2bf16 (which flushes denormals) is the exact RNE.
bool tame(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  const uint32_t e = (u >> 23) & 0xFF;
  return (u & 0x7FFFFFFFu) == 0 || (e >= 127 - 100 && e < 127 + 100);
}

void pack_x(const float* x, int64_t m, int64_t k, int64_t b0, int64_t b1, uint16_t* xv) {
  const int64_t nkc = k / 32;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t rows = min64(16, m - 16 * b);
    for (int64_t kc = 0; kc < nkc; ++kc) {
      __m512 r[16];
      for (int64_t j = 0; j < 16; ++j) {
        if (j >= rows) {
          r[j] = _mm512_setzero_ps();
          continue;
        }
        const float* src = x + (16 * b + j) * k + kc * 32;
        const __m256i lo = _mm512_cvtepi32_epi16(bf16_bits(_mm512_loadu_ps(src)));
        const __m256i hi = _mm512_cvtepi32_epi16(bf16_bits(_mm512_loadu_ps(src + 16)));
        r[j] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));  // 16 pairs
      }
      transpose16(r);  // dword (pair) r of token j -> row r, column j
      uint16_t* t = xv + (b * nkc + kc) * kTile;
      for (int i = 0; i < 16; ++i) _mm512_store_ps(reinterpret_cast<float*>(t + 32 * i), r[i]);
    }
  }
}

void run_panels(const Problem& p, int64_t p0, int64_t p1, const Workspace& ws) {
  if (p0 >= p1) return;
  if (p.w->layout == Nibbles::LowFirst)
    run_panels_t<Nibbles::LowFirst>(p, p0, p1, ws);
  else
    run_panels_t<Nibbles::HighFirst>(p, p0, p1, ws);
}

void decode_rows(const Lut4Matrix& w, int64_t n0, int64_t n1, uint16_t* dst, const Workspace& ws) {
  const __m512 base = _mm512_loadu_ps(w.base);
  __m512i* tables = reinterpret_cast<__m512i*>(ws.tables);
  uint16_t* tile = ws.panel[0];
  for (int64_t r0 = n0; r0 < n1; r0 += 16) {
    const int64_t rows = min64(16, n1 - r0);
    for (int64_t kc = 0; kc < w.k / 32; ++kc) {
      if (w.layout == Nibbles::LowFirst)
        decode_unit<Nibbles::LowFirst>(w, base, r0, kc, 0, 16, tile, 32, tables);
      else
        decode_unit<Nibbles::HighFirst>(w, base, r0, kc, 0, 16, tile, 32, tables);
      for (int64_t i = 0; i < rows; ++i) memcpy(dst + (r0 - n0 + i) * w.k + kc * 32, tile + 32 * i, 64);
    }
  }
}

}  // namespace qdit::kernels::cpu::amx_q4
