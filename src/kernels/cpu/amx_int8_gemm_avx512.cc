// AmxInt8Gemm (amx_int8_gemm.h). Compiled with the AVX-512 flags; constructed and run only when
// AmxInt8Gemm::available().
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <algorithm>
#include <cstring>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/amx_int8_gemm.h"

#include <immintrin.h>
// After every standard header, so that only the code below is AMX code.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-int8")
#include "qdit/kernels/cpu/amx_tiles.h"
#include "qdit/kernels/cpu/activation_avx512.h"
#include "qdit/kernels/cpu/transpose_avx512.h"

namespace qdit::kernels::cpu {
namespace {

constexpr int64_t kPanel = 32;   // output columns per panel: two 16-column B tiles
constexpr int64_t kStep = 64;    // k per tile product (16 rows of 4-byte k quads)
constexpr int64_t kTile = 1024;  // bytes per B tile
constexpr int64_t kBlockBytes = int64_t{1} << 20;  // s8 activation rows per block: about 1 MiB, in L2
constexpr int64_t kAddendAhead = 16;  // rows between prefetching an addend line and using it
// k per pass: the panel's <= 36 KiB of weights for it stay in L1 while the activation tiles pass
// through (loaded with the non-temporal hint, which keeps them out of L1). Passes of 1152 rather
// than 576 (with plain loads the A stream evicted a 36 KiB slice) measured 7-10% faster per GEMM:
// fewer accumulator stores and reloads between passes.
constexpr int64_t kMaxDepth = 1152;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// c (32 x 32 s32, row stride 32) += or = a . b panel slice (steps tiles), a as AMX A tiles: rows
// 0-15 from a0, rows 16-31 from a1, one contiguous KiB per 64-deep step. The A tiles are used once
// per panel and come from L2: loaded with the non-temporal hint (TILELOADDT1), they leave the
// panel's weight slice in L1.
// Tiles 0-3: the accumulators (row half r, column half c at 2r + c); 4-5: A (16 rows x 64 k
// each); 6-7: B (64 k x 16 columns each).
void block_32x32(const int8_t* a0, const int8_t* a1, const int8_t* b, int64_t steps, int32_t* c, bool load_c) {
  if (load_c) {
    _tile_loadd(0, c, 128);
    _tile_loadd(1, c + 16, 128);
    _tile_loadd(2, c + 16 * 32, 128);
    _tile_loadd(3, c + 16 * 32 + 16, 128);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t s = 0; s < steps; ++s) {
    _tile_stream_loadd(4, a0 + s * kTile, 64);
    _tile_loadd(6, b + s * 2 * kTile, 64);
    _tile_loadd(7, b + s * 2 * kTile + kTile, 64);
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_stream_loadd(5, a1 + s * kTile, 64);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  _tile_stored(0, c, 128);
  _tile_stored(1, c + 16, 128);
  _tile_stored(2, c + 16 * 32, 128);
  _tile_stored(3, c + 16 * 32 + 16, 128);
}

// act((float(acc) * ws) * as + bias) for the 16 columns of acc, ws, bias that mk selects; with
// to_bf16 (the value is rounded to bf16 next) GELU is computed to bf16 precision only.
inline __m512 epilogue_value(const int32_t* acc, const float* ws, __m512 vas, const float* bias, Activation act,
                             __mmask16 mk, bool to_bf16 = false) {
  __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mk, acc)), _mm512_maskz_loadu_ps(mk, ws));
  v = _mm512_mul_ps(v, vas);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias));
  if (to_bf16 && act == Activation::GeluTanh) return gelu_tanh_to_bf16_precision(v);
  return activate(act, v);
}

__mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// y row (cols columns of a panel) = the epilogue value, or y + gate * that.
void epilogue_row(const int32_t* acc, int64_t cols, const float* ws, float as, const float* bias, Activation act,
                  bool accumulate, bool stream, const float* gate, float* y) {
  const __m512 vas = _mm512_set1_ps(as);
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 mk = first_lanes(cols - j);
    __m512 v = epilogue_value(acc + j, ws + j, vas, bias ? bias + j : nullptr, act, mk);
    if (gate) v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, gate + j), v);
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y + j), v);
    if (stream && mk == 0xFFFF && (reinterpret_cast<uintptr_t>(y + j) & 63) == 0) {
      _mm512_stream_ps(y + j, v);
    } else {
      _mm512_mask_storeu_ps(y + j, mk, v);
    }
  }
}

// The same values rounded to bf16 (nearest even), for consumers that round them anyway.
void epilogue_row_bf16(const int32_t* acc, int64_t cols, const float* ws, float as, const float* bias, Activation act,
                       bool stream, uint16_t* y) {
  const __m512 vas = _mm512_set1_ps(as);
  for (int64_t j = 0; j < cols; j += 32) {
    const __mmask16 m0 = first_lanes(cols - j), m1 = first_lanes(cols - j - 16);
    const __m512 v0 = epilogue_value(acc + j, ws + j, vas, bias ? bias + j : nullptr, act, m0, true);
    const __m512 v1 = epilogue_value(acc + j + 16, ws + j + 16, vas, bias ? bias + j + 16 : nullptr, act, m1, true);
    const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
    if (stream && m1 == 0xFFFF && (reinterpret_cast<uintptr_t>(y + j) & 63) == 0) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(y + j), h);
    } else {
      _mm512_mask_storeu_epi16(y + j, (static_cast<__mmask32>(m1) << 16) | m0, h);
    }
  }
}

}  // namespace

AmxInt8Gemm::AmxInt8Gemm(const int8_t* w, int64_t n, int64_t k)
    : n_(n), k_(k), kp_(round_up(std::max<int64_t>(k, 1), kStep)), panels_((n + kPanel - 1) / kPanel) {
  QDIT_CHECK(available(), "[int8 linear] the AMX int8 GEMM needs AMX-INT8, which this CPU lacks");
  const int64_t steps = kp_ / kStep;
  packed_ = Tensor::empty({panels_ * steps * 2 * kTile}, DType::I8, MemTag::Weights);  // every byte written below
  int8_t* dst = packed_.data<int8_t>();
  // Tile word [r][c] = the 4 bytes of column c at k = s*64 + 4r: a 16 x 16 transpose of words.
  parallel_for(panels_, 1, [&](int64_t p0, int64_t p1) {
    __m512i rows[16];
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t s = 0; s < steps; ++s) {
        const int64_t k0 = s * kStep, kn = std::min(kStep, k - k0);
        const __mmask64 kmask = kn == 64 ? ~__mmask64{0} : (__mmask64{1} << kn) - 1;
        for (int64_t t = 0; t < 2; ++t) {
          for (int64_t c = 0; c < 16; ++c) {
            const int64_t col = p * kPanel + t * 16 + c;
            rows[c] = col < n ? _mm512_maskz_loadu_epi8(kmask, w + col * k + k0) : _mm512_setzero_si512();
          }
          transpose_16x16_words(rows);
          int8_t* tile = dst + ((p * steps + s) * 2 + t) * kTile;
          for (int64_t r = 0; r < 16; ++r) _mm512_storeu_si512(tile + r * 64, rows[r]);
        }
      }
  });
}

void AmxInt8Gemm::run(const int8_t* a, int64_t m, const float* a_scale, const float* w_scale, const Epilogue& e,
                      void* y, int64_t ldy) const {
  if (m <= 0) return;
  QDIT_CHECK(!e.bf16_out || (!e.accumulate && !e.gate), "[int8 linear] a bf16 output takes no accumulate or gate");
  const int64_t mp = round_up(m, kRowAlign), steps = kp_ / kStep;
  const int8_t* b = packed_.data<int8_t>();
  const int8_t* end = b + packed_.nbytes();
  // Threads take panels; each sweeps its panels once per block of rows (kept in its L2).
  // Blocks of at most ~1 MiB of codes (1024 rows), as equal as 32-row units allow: a thin last
  // block would stream every weight once more for few rows.
  const int64_t units32 = mp / 32, most = std::clamp<int64_t>(kBlockBytes / kp_ / 32, 1, 32);
  const int64_t blocks = (units32 + most - 1) / most;
  auto block_start = [&](int64_t i) { return 32 * (units32 * i / blocks); };
  const int64_t block_rows = 32 * ((units32 + blocks - 1) / blocks);  // the largest block
  // k per pass: at most kMaxDepth, as equal as 64-deep steps allow (a thin last pass would store
  // and reload the accumulators for few tile products).
  const int64_t depth_passes = (steps + kMaxDepth / kStep - 1) / (kMaxDepth / kStep);
  const int64_t depth = (steps + depth_passes - 1) / depth_passes * kStep;
  const bool stream = e.stream && !e.accumulate;
  const int64_t workers = std::min<int64_t>(num_threads(), panels_), slot_elems = 2 * block_rows * kPanel;
  Tensor scratch = Tensor::empty({workers * slot_elems * 4}, DType::U8, MemTag::Workspace);
  parallel_for(panels_, 1, [&](int64_t p0, int64_t p1) {
    load_16x64_tiles();
    // Run inline (nested or one thread), thread_index() may be an outer team's: any slot will do.
    int32_t* slot = reinterpret_cast<int32_t*>(scratch.raw_data()) +
                    std::min<int64_t>(thread_index(), workers - 1) * slot_elems;
    int32_t* acc[2] = {slot, slot + block_rows * kPanel};
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const int64_t r0 = block_start(bi), rows = block_start(bi + 1) - r0, live = std::min(rows, m - r0);
      // The epilogue of panel p runs whole after panel p+1's tile products: interleaving it in
      // pieces between them measured ~5% slower per forward here (AMX and AVX-512 work do not
      // overlap on this machine, and switching between them costs), and one panel later its
      // accumulators are long stored.
      auto epilogue = [&](int64_t panel) {
        const int64_t c0 = panel * kPanel, cols = std::min(kPanel, n_ - c0);
        const int32_t* c = acc[panel & 1];
        const float* bias = e.bias ? e.bias + c0 : nullptr;
        for (int64_t i = 0; i < live; ++i) {
          const int64_t row = r0 + i;
          // The addend rows lie a whole output row apart (pages, for DiT widths), which the hardware
          // prefetchers do not follow: fetch the panel's lines kAddendAhead rows on.
          if (e.accumulate && i + kAddendAhead < live) {
            const float* ahead = static_cast<const float*>(y) + (row + kAddendAhead) * ldy + c0;
            _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(ahead + cols - 1), _MM_HINT_T0);
          }
          if (e.bf16_out) {
            epilogue_row_bf16(c + i * kPanel, cols, w_scale + c0, a_scale[row], bias, e.act, stream,
                              static_cast<uint16_t*>(y) + row * ldy + c0);
          } else {
            epilogue_row(c + i * kPanel, cols, w_scale + c0, a_scale[row], bias, e.act, e.accumulate, stream,
                         e.gate ? e.gate + (row / e.gate_rows) * e.gate_ld + c0 : nullptr,
                         static_cast<float*>(y) + row * ldy + c0);
          }
        }
      };
      for (int64_t p = p0; p < p1; ++p) {
        const int8_t* bp = b + p * steps * 2 * kTile;
        int32_t* c = acc[p & 1];
        for (int64_t k0 = 0; k0 < kp_; k0 += depth) {
          const int64_t ks = std::min(depth, kp_ - k0) / kStep;
          const int8_t* slice = bp + (k0 / kStep) * 2 * kTile;
          // The weights of a model's forward come from DRAM: fetch the next slice (the bytes right
          // after this one) into L2 while this one is multiplied, a few lines per 32-row block.
          const int8_t* next = slice + ks * 2 * kTile;
          const int64_t lines = std::min<int64_t>(depth / kStep * 2 * kTile, end - next) / 64;
          const int64_t row_pairs = rows / 32;  // 32-row steps of this pass
          for (int64_t i = 0; i < rows; i += 32) {
            const int8_t* a0 = a + ((r0 + i) / 16 * steps + k0 / kStep) * kTile;
            block_32x32(a0, a0 + steps * kTile, slice, ks, c + i * kPanel, k0 > 0);
            for (int64_t l = lines * (i / 32) / row_pairs; l < lines * (i / 32 + 1) / row_pairs; ++l)
              _mm_prefetch(reinterpret_cast<const char*>(next + l * 64), _MM_HINT_T1);
          }
        }
        if (p > p0) epilogue(p - 1);
      }
      if (p1 > p0) epilogue(p1 - 1);
    }
    if (stream) _mm_sfence();  // the streamed stores are weakly ordered: done before the join
    _tile_release();
  });
}

}  // namespace qdit::kernels::cpu
