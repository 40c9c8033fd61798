// AVX-512 attention variants (Zen 4, Sapphire Rapids): bf16 Q.K^T and P.V with vdpbf16ps on
// pair-interleaved packs, f32 with 16-lane FMA; and the AMX variant (Sapphire Rapids and later):
// bf16 Q.K^T and P.V as AMX tile products, softmax in AVX-512. Compiled with the AVX-512 flags
// (the file name matches "_avx512"), entered only after cpu::has_avx512_bf16() / has_amx_bf16().
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qdit/kernels/cpu/attention_cpu.h"

// Also set here so the file is AVX-512 code whatever flags the build passes (the kernel code below
// comes after every standard header, so no std inline function is compiled for AVX-512).
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c,amx-tile,amx-bf16")
#include "qdit/kernels/cpu/attention_impl.h"
#include "qdit/kernels/cpu/amx_tiles.h"
#include "qdit/kernels/cpu/exp2_avx512.h"
#include "qdit/kernels/cpu/transpose_avx512.h"

namespace {

struct Avx512 : Geometry512 {
  using F = __m512;
  using P = __m512i;
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static float hmax(F v) { return _mm512_reduce_max_ps(v); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
  static float first(F v) { return _mm512_cvtss_f32(v); }
  static F round_int(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F pow2i(F n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static P load_pairs(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static P bcast_pair(const uint16_t* p) {
    int32_t x;
    std::memcpy(&x, p, 4);
    return _mm512_set1_epi32(x);
  }
  static F dot_pairs(F acc, P a, P b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static F store_bf16_rounded(uint16_t* dst, F x) {
    const __m256bh h = _mm512_cvtneps_pbh(x);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), (__m256i)h);
    return _mm512_cvtpbh_ps(h);
  }
};

// ---- AMX variant: bf16 Q.K^T and P.V as tile products, online softmax in AVX-512 ----
// On Sapphire Rapids one core does ~2 TFLOP/s of AMX bf16 but only ~85 GFLOP/s of vdpbf16ps, so
// the dot products of the Flash kernel above become nearly free and the softmax dominates.
// Every tile is 16 rows x 64 bytes (16 f32 or 32 bf16). Per query block (one or two 16-row tiles)
// and key block (NK keys):
//   S = Q.K^T: C tmm0-3 (row tile x 16-key tile), A tmm4-5 (Q, 32 dims), B tmm6-7 (K pairs);
//   O += P.V:  C tmm0-3 (row tile x 16-dim tile, loaded from / stored to the f32 O rows),
//              A tmm4-5 (P, 32 keys), B tmm6-7 (V pairs).
// The K/V/Q packs are the pair layouts of the Flash kernel (key tiles of 16, pairs of dims for K;
// pairs of keys for V), which are exactly AMX's B-operand layout; head dims are padded to 32 for
// Q and K, keys to 32.
struct AmxGeo : Avx512 {
  static constexpr int DQA = 32, KA = 32;
};


// NK: the most keys per block (the S/P buffer width); kBlock: the block size of longer key ranges.
template <int NK, int kBlock>
struct AmxFlash {
  static_assert(NK % 32 == 0 && kBlock % 32 == 0 && kBlock <= NK, "key blocks are whole 32-key A/B tiles");
  using Fl = Flash<AmxGeo, true, true>;
  static constexpr int MQ = 32;
  // Row strides of the score (f32) and weight (bf16) buffers: one cache line more than the
  // width, so that the 16 rows a tile touches do not all fall into the same L1 sets.
  static constexpr int SS = NK + 16, PS = NK + 32;
  // The running max is raised only when a block's max exceeds it by more than this (in log2 of
  // the weight): unnormalised weights stay <= 2^8 (exact enough in f32, bf16 rounding is
  // relative), and O is rescaled only when the max really moves, not on every block.
  static constexpr float kLazyLog2 = 8.0f;

  struct Ws {
    uint16_t *kp, *vp, *qp, *pb;
    float *o, *s, *m, *l, *alpha, *mrow;
  };
  static size_t layout(const AttentionProblem& p, char* base, Ws* ws) {
    const typename Fl::Geo g = Fl::geo(p);
    size_t off = 0;
    auto take = [&](size_t bytes) {
      char* ptr = base ? base + off : nullptr;
      off += (bytes + 63) / 64 * 64;
      return ptr;
    };
    Ws w;
    w.kp = reinterpret_cast<uint16_t*>(take(2 * g.skv_pad * g.dq));
    w.vp = reinterpret_cast<uint16_t*>(take(2 * g.skv_pad * g.dp));
    // Q, O, m, l: one per query block in flight (two); S and P: one per key block step (two).
    w.qp = reinterpret_cast<uint16_t*>(take(2 * 2 * MQ * g.dq));
    w.pb = reinterpret_cast<uint16_t*>(take(2 * 2 * MQ * PS));
    w.o = reinterpret_cast<float*>(take(2 * 4 * MQ * g.dp));
    w.s = reinterpret_cast<float*>(take(2 * 4 * MQ * SS));
    w.m = reinterpret_cast<float*>(take(2 * 4 * MQ));
    w.l = reinterpret_cast<float*>(take(2 * 4 * MQ));
    w.alpha = reinterpret_cast<float*>(take(4 * MQ));
    w.mrow = reinterpret_cast<float*>(take(4 * NK));
    if (ws) *ws = w;
    return off + 64;
  }
  static size_t workspace_bytes(const AttentionProblem& p) { return layout(p, nullptr, nullptr); }

  // The tile work is cut into pieces of a few hundred cycles that run between softmax rows: the
  // AMX unit then works on the next block's scores and the previous block's P.V while the vector
  // units compute exponentials (out-of-order execution overlaps them within its window).
  // Each piece leaves no tile state behind.

  // s[NR*16][32 keys at kc*32] (row stride SS) = q[NR*16][dq] . k^T, keys from key tile kblk.
  template <int NR>
  static void qk_piece(const uint16_t* q, int64_t dq, const uint16_t* kblk, int64_t kc, float* s) {
    const int64_t kts = 16 * dq;  // one 16-key tile: dq/2 rows of 16 keys x 2 dims
    const uint16_t* k0 = kblk + 2 * kc * kts;
    const uint16_t* k1 = k0 + kts;
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (NR == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
    for (int64_t dc = 0; dc < dq / 32; ++dc) {
      _tile_loadd(4, q + dc * 32, dq * 2);
      _tile_loadd(6, k0 + dc * 512, 64);
      _tile_loadd(7, k1 + dc * 512, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if constexpr (NR == 2) {
        _tile_loadd(5, q + 16 * dq + dc * 32, dq * 2);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, s + kc * 32, SS * 4);
    _tile_stored(1, s + kc * 32 + 16, SS * 4);
    if constexpr (NR == 2) {
      _tile_stored(2, s + 16 * SS + kc * 32, SS * 4);
      _tile_stored(3, s + 16 * SS + kc * 32 + 16, SS * 4);
    }
  }

  // o[NR*16][16-dim tiles c, c+1 (only c when c+1 == nd)] += p[NR*16][keys kc0*32..kc1*32)
  // (row stride PS) . v (pairs of keys from vblk, row stride 2*dp).
  template <int NR>
  static void pv_piece(const uint16_t* pb, const uint16_t* vblk, int64_t dp, float* o, int64_t c, int64_t kc0,
                       int64_t kc1, bool fresh) {
    const int64_t vrow = 2 * dp;  // elements per pair-of-keys row
    if (c + 2 <= dp / 16) {
      if (fresh) {
        _tile_zero(0);
        _tile_zero(1);
        if constexpr (NR == 2) {
          _tile_zero(2);
          _tile_zero(3);
        }
      } else {
        _tile_loadd(0, o + c * 16, dp * 4);
        _tile_loadd(1, o + c * 16 + 16, dp * 4);
        if constexpr (NR == 2) {
          _tile_loadd(2, o + 16 * dp + c * 16, dp * 4);
          _tile_loadd(3, o + 16 * dp + c * 16 + 16, dp * 4);
        }
      }
      for (int64_t kc = kc0; kc < kc1; ++kc) {
        const uint16_t* v = vblk + kc * 16 * vrow + c * 32;
        _tile_loadd(4, pb + kc * 32, PS * 2);
        _tile_loadd(6, v, vrow * 2);
        _tile_loadd(7, v + 32, vrow * 2);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if constexpr (NR == 2) {
          _tile_loadd(5, pb + 16 * PS + kc * 32, PS * 2);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      _tile_stored(0, o + c * 16, dp * 4);
      _tile_stored(1, o + c * 16 + 16, dp * 4);
      if constexpr (NR == 2) {
        _tile_stored(2, o + 16 * dp + c * 16, dp * 4);
        _tile_stored(3, o + 16 * dp + c * 16 + 16, dp * 4);
      }
    } else {  // odd number of 16-dim tiles: the last one alone
      if (fresh) {
        _tile_zero(0);
        if constexpr (NR == 2) _tile_zero(2);
      } else {
        _tile_loadd(0, o + c * 16, dp * 4);
        if constexpr (NR == 2) _tile_loadd(2, o + 16 * dp + c * 16, dp * 4);
      }
      for (int64_t kc = kc0; kc < kc1; ++kc) {
        _tile_loadd(4, pb + kc * 32, PS * 2);
        _tile_loadd(6, vblk + kc * 16 * vrow + c * 32, vrow * 2);
        _tile_dpbf16ps(0, 4, 6);
        if constexpr (NR == 2) {
          _tile_loadd(5, pb + 16 * PS + kc * 32, PS * 2);
          _tile_dpbf16ps(2, 5, 6);
        }
      }
      _tile_stored(0, o + c * 16, dp * 4);
      if constexpr (NR == 2) _tile_stored(2, o + 16 * dp + c * 16, dp * 4);
    }
  }

  // The tile work of one pipeline step: P.V of the previous key block (pv_nkp keys, 0 for none)
  // and Q.K^T of the next one (qk_nkp keys, 0 for none), as a list of pieces.
  struct TileWork {
    int64_t nr, dq, dp;
    const uint16_t* q;
    const uint16_t* pb;
    const uint16_t* vblk;
    float* o;
    int64_t pv_nkp = 0;
    bool pv_first_block = false;  // O holds nothing yet: the first piece of each tile starts from 0
    const uint16_t* kblk;
    float* s;
    int64_t qk_nkp = 0;
    static constexpr int64_t kPvChunks = 4;  // 32-key chunks per P.V piece
    int64_t pv_groups() const { return (dp / 16 + 1) / 2; }
    int64_t pv_splits() const { return (pv_nkp / 32 + kPvChunks - 1) / kPvChunks; }
    int64_t pieces() const { return (pv_nkp ? pv_groups() * pv_splits() : 0) + qk_nkp / 32; }
    void run(int64_t i) const {
      const int64_t npv = pv_nkp ? pv_groups() * pv_splits() : 0;
      if (i < npv) {
        const int64_t g = i / pv_splits(), sp = i % pv_splits();
        const int64_t kc0 = sp * kPvChunks, kc1 = min64(kc0 + kPvChunks, pv_nkp / 32);
        const bool fresh = pv_first_block && sp == 0;
        if (nr == 2) {
          pv_piece<2>(pb, vblk, dp, o, 2 * g, kc0, kc1, fresh);
        } else {
          pv_piece<1>(pb, vblk, dp, o, 2 * g, kc0, kc1, fresh);
        }
      } else if (nr == 2) {
        qk_piece<2>(q, dq, kblk, i - npv, s);
      } else {
        qk_piece<1>(q, dq, kblk, i - npv, s);
      }
    }
  };

  // 2^t for t <= kLazyLog2 (degree 3, rel. error 7.5e-5: well below the bf16 rounding of P, 2^-9); exactly
  // 0 below -125.5, where 2^t would be a denormal (the bf16 conversion flushes those to 0 anyway):
  // producing a denormal costs a microcode assist of ~100 cycles per instruction, and every masked
  // or padding key (score -inf) would pay it.
  static __m512 exp2(__m512 t) {
    // The mask also zeroes -inf and NaN scores (their f is NaN), so t needs no clamp.
    const __mmask16 normal = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-125.5f), _CMP_GE_OQ);
    return exp2_bf16_precision(t, normal);
  }

  // Online softmax of one row over keys [0, nk) of the block; writes nkp bf16 weights (zeros past
  // nk) and returns the factor for what O and l accumulated so far. raw: x holds unscaled scores
  // (no mask, scale > 0) and cx = scale*log2(e); otherwise x becomes scale*x + mask and cx = log2(e).
  // With sum_in_v the row sum l is not accumulated here: V carries a column of ones, so the P.V
  // product yields it (in O's column d).
  template <bool kSumInV>
  static float softmax_row(const AttentionProblem& p, const float* mk, float* x, int64_t nk, int64_t nkp,
                           uint16_t* prow, float& m, float& l, float* tmp, bool raw, float cx) {
    const float ninf = -__builtin_inff();
    if (mk && p.mask_stride[3] != 1) {  // broadcast or strided key dim: gather into a contiguous row
      for (int64_t j = 0; j < nk; ++j) tmp[j] = mk[j * p.mask_stride[3]];
      mk = tmp;
    }
    const __m512 vninf = _mm512_set1_ps(ninf);
    const int64_t nfull = nk / 16, rem = nk % 16, nv = nkp / 16;
    const __mmask16 tail = static_cast<__mmask16>((1u << rem) - 1);
    if (!raw) {
      const __m512 vs = _mm512_set1_ps(p.scale);
      for (int64_t i = 0; i < nfull; ++i) {
        const __m512 xv = _mm512_loadu_ps(x + i * 16);
        _mm512_storeu_ps(x + i * 16, mk ? _mm512_fmadd_ps(xv, vs, _mm512_loadu_ps(mk + i * 16))
                                        : _mm512_mul_ps(xv, vs));
      }
      if (rem) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, x + nfull * 16);
        const __m512 mv = mk ? _mm512_maskz_loadu_ps(tail, mk + nfull * 16) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(x + nfull * 16, tail, _mm512_fmadd_ps(xv, vs, mv));
      }
    }
    // Keys past nk (zero padding of K) must get weight 0.
    if (rem) _mm512_mask_storeu_ps(x + nfull * 16, static_cast<__mmask16>(~tail), vninf);
    for (int64_t i = nfull + (rem ? 1 : 0); i < nv; ++i) _mm512_storeu_ps(x + i * 16, vninf);
    __m512 vmax0 = vninf, vmax1 = vninf;
    for (int64_t i = 0; i < nv; i += 2) {
      vmax0 = _mm512_max_ps(vmax0, _mm512_loadu_ps(x + i * 16));
      vmax1 = _mm512_max_ps(vmax1, _mm512_loadu_ps(x + i * 16 + 16));
    }
    const float mx = _mm512_reduce_max_ps(_mm512_max_ps(vmax0, vmax1));
    float m_new = m;
    if (mx > m && (mx - m) * cx > kLazyLog2) m_new = mx;  // m = -inf: always taken
    float alpha = 1.0f;
    // Nothing accumulated yet while m = -inf (O and l are 0): no rescale needed.
    if (m_new != m && m != ninf) alpha = _mm512_cvtss_f32(exp2(_mm512_set1_ps((m - m_new) * cx)));
    const float base = m_new == ninf ? 0.0f : m_new;  // all -inf so far: exp(-inf - 0) = 0
    const __m512 vc = _mm512_set1_ps(cx);
    // (x - base) * cx as one fused op unless base * cx overflows (base can be finfo.min).
    const float bc = base * cx;
    const bool fused = bc > -3.0e38f && bc < 3.0e38f;
    const __m512 vb = _mm512_set1_ps(base), vbc = _mm512_set1_ps(bc);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < nv; i += 2) {
      const __m512 x0 = _mm512_loadu_ps(x + i * 16), x1 = _mm512_loadu_ps(x + i * 16 + 16);
      __m512 e0, e1;
      if (fused) {
        e0 = exp2(_mm512_fmsub_ps(x0, vc, vbc));
        e1 = exp2(_mm512_fmsub_ps(x1, vc, vbc));
      } else {
        e0 = exp2(_mm512_mul_ps(_mm512_sub_ps(x0, vb), vc));
        e1 = exp2(_mm512_mul_ps(_mm512_sub_ps(x1, vb), vc));
      }
      const __m512bh h = _mm512_cvtne2ps_pbh(e1, e0);  // keys i*16.. from e0 in the low half
      _mm512_storeu_si512(prow + i * 16, (__m512i)h);
      if constexpr (!kSumInV) {  // l sums the rounded weights actually used
        const __m512i hi = (__m512i)h;
        sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(hi, 16)));
        sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_and_si512(hi, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)))));
      }
    }
    if constexpr (!kSumInV) l = l * alpha + _mm512_reduce_add_ps(sum);
    m = m_new;
    return alpha;
  }

  // Elements [off, off + min(n, 16)) of a q/k/v buffer as 16 bf16 (zeros past n): bf16 inputs are
  // copied, f32 inputs (bf16 compute on f32 activations) rounded to nearest even as they are packed.
  static __m256i row16(const char* row, int64_t d0, int64_t n, bool f32) {
    const __mmask16 mk = n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
    if (f32) return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, reinterpret_cast<const float*>(row) + d0));
    return _mm256_maskz_loadu_epi16(mk, reinterpret_cast<const uint16_t*>(row) + d0);
  }

  // Row s of head (b, h) of an operand given as up to two parts along the sequence.
  static const char* in_row(const void* b0, const int64_t* st0, const void* b1, const int64_t* st1, int64_t split,
                            int64_t b, int64_t h, int64_t s, int64_t esz) {
    if (s >= split) {
      s -= split;
      return static_cast<const char*>(b1) + (b * st1[0] + h * st1[1] + s * st1[2]) * esz;
    }
    return static_cast<const char*>(b0) + (b * st0[0] + h * st0[1] + s * st0[2]) * esz;
  }

  // The lines of one head row (d elements of esz bytes): q/k/v rows lie a whole projection row
  // apart, beyond what the hardware prefetchers follow, and usually come from DRAM (the GEMM
  // before streamed them out).
  static void prefetch_row(const char* row, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T0);
    _mm_prefetch(row + bytes - 1, _MM_HINT_T0);
  }

  // K as 16-key tiles of dim pairs [skv_pad/16][dq/2][16][2], V as key pairs [skv_pad/2][dp][2],
  // zero padded; with ones_col, V's column d (padding) is 1 for every real key.
  static void pack_kv(const AttentionProblem& p, int64_t b, int64_t h, const Ws& w, int64_t dq, int64_t dp,
                      int64_t skv_pad, bool ones_col) {
    const bool f32 = !p.bf16;
    const int64_t esz = f32 ? 4 : 2;
    auto k_row = [&](int64_t j) { return in_row(p.k, p.k_stride, p.k1, p.k1_stride, p.k_split, b, h, j, esz); };
    auto v_row = [&](int64_t j) { return in_row(p.v, p.v_stride, p.v1, p.v1_stride, p.v_split, b, h, j, esz); };
    const int64_t row_bytes = esz * p.d;
    // 16 keys at a time: their rows' 32-dim slices as 16 x 16 words (dim pairs), transposed into
    // the tile's rows of 16 keys (a full line each); the next 16 keys' rows fetched meanwhile.
    __m512i r[16];
    for (int64_t j0 = 0; j0 < skv_pad; j0 += 16) {
      uint16_t* tile = w.kp + (j0 / 16) * 16 * dq;
      for (int64_t j = j0 + 16; j < min64(j0 + 32, p.skv); ++j) prefetch_row(k_row(j), row_bytes);
      const int64_t keys = min64(16, p.skv - j0);
      for (int64_t d0 = 0; d0 < dq; d0 += 32) {  // dq is a multiple of 32
        for (int64_t i = 0; i < 16; ++i) {
          if (i >= keys) {
            r[i] = _mm512_setzero_si512();
            continue;
          }
          const char* row = k_row(j0 + i);
          const __m256i lo = row16(row, d0, p.d - d0, f32), hi = row16(row, d0 + 16, p.d - d0 - 16, f32);
          r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        transpose_16x16_words(r);
        for (int64_t wd = 0; wd < 16; ++wd) _mm512_storeu_si512(tile + (d0 / 2 + wd) * 32, r[wd]);
      }
    }
    // V: interleave rows 2jp and 2jp+1 element by element, 16 dims at a time.
    const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                           22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t jp = 0; jp < skv_pad / 2; ++jp) {
      const int64_t j0 = 2 * jp, j1 = 2 * jp + 1;
      const char* r0 = j0 < p.skv ? v_row(j0) : nullptr;
      const char* r1 = j1 < p.skv ? v_row(j1) : nullptr;
      for (int64_t j = j0 + 16; j < min64(j0 + 18, p.skv); ++j) prefetch_row(v_row(j), row_bytes);
      uint16_t* dst = w.vp + jp * dp * 2;
      for (int64_t d0 = 0; d0 < dp; d0 += 16) {
        const __m256i a = r0 ? row16(r0, d0, p.d - d0, f32) : _mm256_setzero_si256();
        const __m256i c = r1 ? row16(r1, d0, p.d - d0, f32) : _mm256_setzero_si256();
        const __m512i ac = _mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1);
        _mm512_storeu_si512(dst + d0 * 2, _mm512_permutexvar_epi16(inter, ac));
      }
      if (ones_col) {
        if (r0) dst[p.d * 2] = 0x3F80;
        if (r1) dst[p.d * 2 + 1] = 0x3F80;
      }
    }
  }

  static void pack_q(const AttentionProblem& p, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t rows_pad,
                     uint16_t* qp, int64_t dq) {
    const bool f32 = !p.bf16;
    const int64_t esz = f32 ? 4 : 2;
    for (int64_t i = 0; i < rows; ++i) {
      const char* row = in_row(p.q, p.q_stride, p.q1, p.q1_stride, p.q_split, b, h, row0 + i, esz);
      for (int64_t d0 = 0; d0 < dq; d0 += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qp + i * dq + d0), row16(row, d0, p.d - d0, f32));
    }
    std::memset(qp + rows * dq, 0, 2 * (rows_pad - rows) * dq);
  }

  static void run(const AttentionProblem& p, int64_t t0, int64_t t1, void* workspace) {
    Ws w;
    layout(p, reinterpret_cast<char*>(round_up(reinterpret_cast<intptr_t>(workspace), 64)), &w);
    const typename Fl::Geo g = Fl::geo(p);
    const bool raw = p.mask == nullptr && p.scale > 0.0f;
    const float cx = raw ? p.scale * kLog2e : kLog2e;
    const bool ones_col = g.dp > p.d;  // a spare padding column of V carries the row sums
    // Key blocks of kBlock keys; a key range of up to NK keys (cross-attention over a few hundred
    // text tokens) is one block, so each row pays its per-block softmax overhead once.
    const int64_t kbs = round_up(p.skv, 32) <= NK ? round_up(p.skv, 32) : kBlock;
    const int64_t nblocks = (p.skv + kbs - 1) / kbs;
    load_16x64_tiles();
    int64_t packed_bh = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / p.q_chunks, chunk = t % p.q_chunks;
      const int64_t b = bh / p.heads, h = bh % p.heads;
      const int64_t r0 = p.sq * chunk / p.q_chunks, r1 = p.sq * (chunk + 1) / p.q_chunks;
      if (r0 == r1) continue;
      if (bh != packed_bh) {  // consecutive tasks of one head share the packed K and V
        pack_kv(p, b, h, w, g.dq, g.dp, g.skv_pad, ones_col);
        packed_bh = bh;
      }
      run_rows(p, w, g, b, h, r0, r1, kbs, nblocks, raw, cx, ones_col);
    }
    _tile_release();
  }

  // One software pipeline over every (query block, key block) step of rows [r0, r1) of head
  // (b, h): step s softmaxes its scores while the tiles do P.V of step s-1 and Q.K^T of step
  // s+1, across query-block boundaries too (Q, O, m, l are double-buffered by query block, S and
  // P by step), so only the very first Q.K^T and last P.V run without vector work beside them.
  static void run_rows(const AttentionProblem& p, const Ws& w, const typename Fl::Geo& g, int64_t b, int64_t h,
                       int64_t r0, int64_t r1, int64_t kbs, int64_t nblocks, bool raw, float cx, bool ones_col) {
    const int64_t nq = (r1 - r0 + MQ - 1) / MQ, steps = nq * nblocks;
    const int64_t q_esz = p.bf16 ? 2 : 4;
    auto rows_of = [&](int64_t qi) { return min64(MQ, r1 - r0 - qi * MQ); };
    auto nkp_of = [&](int64_t kb) { return round_up(min64(kbs, p.skv - kb * kbs), 32); };
    auto qbuf = [&](int64_t qi) { return w.qp + (qi & 1) * MQ * g.dq; };
    auto obuf = [&](int64_t qi) { return w.o + (qi & 1) * MQ * g.dp; };
    auto sbuf = [&](int64_t st) { return w.s + (st & 1) * MQ * SS; };
    auto pbuf = [&](int64_t st) { return w.pb + (st & 1) * MQ * PS; };
    // Query block qi's Q (before its first Q.K^T piece) and its cleared m, l (before its first
    // softmax; the buffers are those of block qi-2, finished by then). O needs no clearing: the
    // P.V of key block 0 starts each tile from zero.
    auto pack_query_block = [&](int64_t qi) {
      const int64_t rows = rows_of(qi);
      pack_q(p, b, h, r0 + qi * MQ, rows, round_up(rows, 16), qbuf(qi), g.dq);
    };
    auto reset_query_block = [&](int64_t qi) {
      const int64_t rows_pad = round_up(rows_of(qi), 16);
      float* m = w.m + (qi & 1) * MQ;
      float* l = w.l + (qi & 1) * MQ;
      for (int64_t i = 0; i < rows_pad; ++i) {
        m[i] = -__builtin_inff();
        l[i] = 0.0f;
      }
    };
    auto tile_work = [&](int64_t pv_step, int64_t qk_step) {
      TileWork tw;
      tw.dq = g.dq;
      tw.dp = g.dp;
      tw.nr = 1;
      if (pv_step >= 0) {
        const int64_t qi = pv_step / nblocks, kb = pv_step % nblocks;
        tw.nr = round_up(rows_of(qi), 16) / 16;
        tw.o = obuf(qi);
        tw.pb = pbuf(pv_step);
        tw.vblk = w.vp + kb * kbs * g.dp;
        tw.pv_nkp = nkp_of(kb);
        tw.pv_first_block = kb == 0;
      }
      TileWork qk = tw;  // a different query block may have another row count
      qk.pv_nkp = 0;
      if (qk_step >= 0 && qk_step < steps) {
        const int64_t qi = qk_step / nblocks, kb = qk_step % nblocks;
        qk.nr = round_up(rows_of(qi), 16) / 16;
        qk.q = qbuf(qi);
        qk.kblk = w.kp + kb * kbs * g.dq;
        qk.s = sbuf(qk_step);
        qk.qk_nkp = nkp_of(kb);
      }
      tw.qk_nkp = 0;
      return std::make_pair(tw, qk);
    };

    pack_query_block(0);
    reset_query_block(0);
    memory_barrier();
    {
      const auto first = tile_work(-1, 0).second;
      for (int64_t i = 0; i < first.pieces(); ++i) first.run(i);
    }
    for (int64_t st = 0; st <= steps; ++st) {
      const int64_t qi = st / nblocks, kb = st % nblocks;
      // The next step's query block starts here: its Q must be packed before its Q.K^T pieces.
      const bool next_starts = st + 1 < steps && (st + 1) % nblocks == 0;
      if (next_starts) pack_query_block((st + 1) / nblocks);
      const auto work = tile_work(st - 1, st + 1);
      const int64_t npv = work.first.pieces(), pieces = npv + work.second.pieces();
      // Q.K^T of the next step first: its scores are then long stored when that step's softmax
      // reads them (a vector load right behind a tile store waits for the store to drain).
      const int64_t nqk = pieces - npv;
      auto run_piece = [&](int64_t i) {
        if (i < nqk) {
          work.second.run(i);
        } else {
          work.first.run(i - nqk);
        }
      };
      int64_t done = 0;
      memory_barrier();
      if (st < steps) {
        const int64_t rows = rows_of(qi), rows_pad = round_up(rows, 16);
        const int64_t kv0 = kb * kbs, nk = min64(kbs, p.skv - kv0), nkp = nkp_of(kb);
        float* sb = sbuf(st);
        uint16_t* pb = pbuf(st);
        float* m = w.m + (qi & 1) * MQ;
        float* l = w.l + (qi & 1) * MQ;
        if (rows < rows_pad) std::memset(pb + rows * PS, 0, 2 * (rows_pad - rows) * PS);
        for (int64_t i = 0; i < rows; ++i) {
          // The rows of the next query block to be packed (block q is packed at the start of step
          // q*nblocks - 1, so with one key block that is qi + 2), during this block's first step:
          // packed, they come from cache.
          const int64_t qn = (st + 1) / nblocks + 1;
          if (kb == 0 && qn < nq && i < rows_of(qn))
            prefetch_row(in_row(p.q, p.q_stride, p.q1, p.q1_stride, p.q_split, b, h, r0 + qn * MQ + i, q_esz),
                         q_esz * p.d);
          const float* mrow = nullptr;
          if (p.mask) {
            mrow = p.mask + b * p.mask_stride[0] + h * p.mask_stride[1] + (r0 + qi * MQ + i) * p.mask_stride[2] +
                   kv0 * p.mask_stride[3];
          }
          w.alpha[i] = ones_col
                           ? softmax_row<true>(p, mrow, sb + i * SS, nk, nkp, pb + i * PS, m[i], l[i], w.mrow, raw, cx)
                           : softmax_row<false>(p, mrow, sb + i * SS, nk, nkp, pb + i * PS, m[i], l[i], w.mrow, raw, cx);
          for (const int64_t due = (i + 1) * pieces / rows; done < due; ++done) run_piece(done);
        }
      }
      for (; done < pieces; ++done) run_piece(done);
      memory_barrier();
      // Step st-1 closed its query block: O is complete (its last P.V pieces came first).
      if (st > 0 && (st % nblocks == 0)) {
        const int64_t done_qi = st / nblocks - 1;
        finish_query_block(p, w, g, b, h, r0 + done_qi * MQ, rows_of(done_qi), done_qi, ones_col);
      }
      if (next_starts) reset_query_block((st + 1) / nblocks);
      if (st < steps) {
        // O of this query block holds its blocks < kb now: rescale where block kb raised the
        // running max, before the next step's P.V adds block kb.
        const int64_t rows = rows_of(qi);
        float* o = obuf(qi);
        for (int64_t i = 0; i < rows; ++i) {
          if (w.alpha[i] == 1.0f) continue;
          float* orow = o + i * g.dp;
          const __m512 va = _mm512_set1_ps(w.alpha[i]);
          for (int64_t d = 0; d < g.dp; d += 16)
            _mm512_storeu_ps(orow + d, _mm512_mul_ps(_mm512_loadu_ps(orow + d), va));
        }
      }
    }
  }

  // Normalises query block qi's rows and writes them heads-merged into the output.
  static void finish_query_block(const AttentionProblem& p, const Ws& w, const typename Fl::Geo& g, int64_t b,
                                 int64_t h, int64_t row0, int64_t rows, int64_t qi, bool ones_col) {
    const float* o = w.o + (qi & 1) * MQ * g.dp;
    const float* l = w.l + (qi & 1) * MQ;
    const int64_t dtail = p.d % 16;
    const __mmask16 tmask = static_cast<__mmask16>((1u << dtail) - 1);
    for (int64_t i = 0; i < rows; ++i) {
      const float* src = o + i * g.dp;
      const float sum = ones_col ? src[p.d] : l[i];
      const __m512 inv = _mm512_set1_ps(sum > 0.0f ? 1.0f / sum : 0.0f);
      const int64_t srow = row0 + i;  // heads-merged [B, S, H*D], or its second part
      int64_t d = 0;
      if (p.out_bf16) {  // one part only: the same values rounded to nearest even
        uint16_t* db = p.out_bf16 + ((b * p.sq + srow) * p.heads + h) * p.d;
        for (; d + 16 <= p.d; d += 16) {
          const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(src + d), inv);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(db + d), (__m256i)_mm512_cvtneps_pbh(x));
        }
        if (dtail) {
          const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(src + d), inv);
          _mm256_mask_storeu_epi16(db + d, tmask, (__m256i)_mm512_cvtneps_pbh(x));
        }
        continue;
      }
      float* dst = srow < p.out_split ? p.out + ((b * min64(p.sq, p.out_split) + srow) * p.heads + h) * p.d
                                      : p.out1 + ((b * (p.sq - p.out_split) + srow - p.out_split) * p.heads + h) * p.d;
      for (; d + 16 <= p.d; d += 16) _mm512_storeu_ps(dst + d, _mm512_mul_ps(_mm512_loadu_ps(src + d), inv));
      if (dtail) _mm512_mask_storeu_ps(dst + d, tmask, _mm512_mul_ps(_mm512_loadu_ps(src + d), inv));
    }
  }

};

using F32 = Flash<Avx512, false, false>;
using Bf16 = Flash<Avx512, true, true>;

size_t ws_bytes(const AttentionProblem& p) {
  return p.bf16 ? Bf16::workspace_bytes(p) : F32::workspace_bytes(p);
}
void run_tasks(const AttentionProblem& p, int64_t t0, int64_t t1, void* ws) {
  if (p.bf16) {
    Bf16::run(p, t0, t1, ws);
  } else {
    F32::run(p, t0, t1, ws);
  }
}

// Key ranges up to 384 (PixArt's 300 text tokens) in one block, longer ones in blocks of 256.
using Amx = AmxFlash<384, 256>;
size_t amx_ws_bytes(const AttentionProblem& p) {
  return p.bf16 || p.round_to_bf16 ? Amx::workspace_bytes(p) : F32::workspace_bytes(p);
}
void amx_run_tasks(const AttentionProblem& p, int64_t t0, int64_t t1, void* ws) {
  if (p.bf16 || p.round_to_bf16) {
    Amx::run(p, t0, t1, ws);
  } else {  // f32 attention keeps f32 dot products
    F32::run(p, t0, t1, ws);
  }
}

}  // namespace

namespace qdit::kernels::cpu {

AttentionVariant attention_variant_avx512() { return {"avx512_bf16", false, &ws_bytes, &run_tasks}; }
AttentionVariant attention_variant_amx() { return {"amx_bf16", true, &amx_ws_bytes, &amx_run_tasks}; }

}  // namespace qdit::kernels::cpu
