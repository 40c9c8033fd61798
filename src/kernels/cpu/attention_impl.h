// The flash-attention algorithm, written once over a SIMD traits class V and included by the
// per-ISA translation units (attention_avx2.cc, attention_avx512.cc). Everything here has internal
// linkage (anonymous namespace) and uses no std templates that emit code, so functions compiled
// with AVX-512 flags can never be merged by the linker into code that runs on AVX2-only CPUs.
//
// Traits V provide: W (lanes), R (query rows per micro tile), CQK (key vectors per QK tile),
// CPV (head-dim vectors per PV tile), MB (query rows per block), NB (keys per block); a float
// vector F with zero/load/store/set1/fmadd/add/sub/mul/max/hmax/hsum/first/round_int/pow2i/round_bf16;
// for the bf16 pair layout also a pair vector P (2W bf16) with load_pairs/bcast_pair/dot_pairs and
// store_bf16_rounded (store as bf16, return the rounded values as floats).
#pragma once
// Includers include <cstdint>, <cstring>, <type_traits> and attention_cpu.h first.

namespace {

using qdit::kernels::cpu::AttentionProblem;

constexpr float kLog2e = 1.44269504088896341f;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Tile geometry of the AVX-512 variant, shared with its AVX2 emulation so that tests cover the
// same tiling: 6 query rows x 4 vectors = 24 of the 32 zmm registers hold accumulators.
struct Geometry512 {
  static constexpr int W = 16, R = 6, CQK = 4, CPV = 4, MB = 96, NB = 128;
  // Packing alignment: head dims (pair layout) and keys are padded with zeros to these multiples.
  static constexpr int DQA = 2, KA = W;
};

// Layouts (E = bf16 bits with kPairs, else f32):
//  K: tiles of W keys. f32: [tile][D][W]. pairs: [tile][Dq/2][W][2] (one vector = W keys x 2 dims).
//  V: f32: [key][Dp]. pairs: [key/2][Dp][2] (one vector = W dims x 2 keys).
//  Q: [MB][Dq]; P: [R][NB] (row-major, so a bf16 pair of adjacent keys is one 32-bit broadcast).
// Dq = D (f32) or D rounded up to DQA (pairs); Dp = D rounded up to W; keys rounded up to KA;
// zero padding everywhere.
template <class V, bool kPairs, bool kRoundP>
struct Flash {
  using F = typename V::F;
  using E = std::conditional_t<kPairs, uint16_t, float>;
  static constexpr int W = V::W, R = V::R;
  static_assert(V::MB % V::R == 0 && V::NB % W == 0 && W % 2 == 0, "bad tile geometry");

  struct Geo {
    int64_t dq, dp, skv_pad;
  };
  static Geo geo(const AttentionProblem& p) {
    return {kPairs ? round_up(p.d, V::DQA) : p.d, round_up(p.d, W), round_up(p.skv, V::KA)};
  }

  struct Ws {
    E *kp, *vp, *qp, *pbuf;
    float *o, *m, *l, *alpha, *s, *mrow;
  };
  // Carves the workspace; with base == nullptr only computes its size.
  static size_t layout(const AttentionProblem& p, char* base, Ws* ws) {
    const Geo g = geo(p);
    size_t off = 0;
    auto take = [&](size_t bytes) {
      char* ptr = base ? base + off : nullptr;
      off += (bytes + 63) / 64 * 64;
      return ptr;
    };
    Ws w;
    w.kp = reinterpret_cast<E*>(take(sizeof(E) * g.skv_pad * g.dq));
    w.vp = reinterpret_cast<E*>(take(sizeof(E) * g.skv_pad * g.dp));
    w.qp = reinterpret_cast<E*>(take(sizeof(E) * V::MB * g.dq));
    w.pbuf = reinterpret_cast<E*>(take(sizeof(E) * R * V::NB));
    w.o = reinterpret_cast<float*>(take(sizeof(float) * V::MB * g.dp));
    w.m = reinterpret_cast<float*>(take(sizeof(float) * V::MB));
    w.l = reinterpret_cast<float*>(take(sizeof(float) * V::MB));
    w.alpha = reinterpret_cast<float*>(take(sizeof(float) * R));
    w.s = reinterpret_cast<float*>(take(sizeof(float) * R * V::NB));
    w.mrow = reinterpret_cast<float*>(take(sizeof(float) * V::NB));
    if (ws) *ws = w;
    return off + 64;
  }
  static size_t workspace_bytes(const AttentionProblem& p) { return layout(p, nullptr, nullptr); }

  // ---- packing (scalar: O(S*D) per head against O(S^2*D) of math) ----
  static float load_elem(const void* base, int64_t idx, bool bf16) {
    if (bf16) {
      const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(base)[idx]) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    return static_cast<const float*>(base)[idx];
  }
  // Element j of a row as E (exact: bf16 bits are copied, f32 widened).
  static E row_elem(const void* base, int64_t row_off, int64_t j, bool bf16) {
    if constexpr (kPairs) {
      return static_cast<const uint16_t*>(base)[row_off + j];  // pairs imply bf16 inputs
    } else {
      return load_elem(base, row_off + j, bf16);
    }
  }

  static void pack_kv(const AttentionProblem& p, int64_t b, int64_t h, const Ws& w) {
    const Geo g = geo(p);
    const int64_t kbase = b * p.k_stride[0] + h * p.k_stride[1];
    const int64_t vbase = b * p.v_stride[0] + h * p.v_stride[1];
    std::memset(static_cast<void*>(w.kp), 0, sizeof(E) * g.skv_pad * g.dq);
    std::memset(static_cast<void*>(w.vp), 0, sizeof(E) * g.skv_pad * g.dp);
    for (int64_t j = 0; j < p.skv; ++j) {
      const int64_t tile = j / W, lane = j % W;
      const int64_t krow = kbase + j * p.k_stride[2], vrow = vbase + j * p.v_stride[2];
      E* kt = w.kp + tile * W * g.dq;
      for (int64_t d = 0; d < p.d; ++d) {
        if constexpr (kPairs) {
          kt[((d >> 1) * W + lane) * 2 + (d & 1)] = row_elem(p.k, krow, d, p.bf16);
          w.vp[((j >> 1) * g.dp + d) * 2 + (j & 1)] = row_elem(p.v, vrow, d, p.bf16);
        } else {
          kt[d * W + lane] = row_elem(p.k, krow, d, p.bf16);
          w.vp[j * g.dp + d] = row_elem(p.v, vrow, d, p.bf16);
        }
      }
    }
  }

  static void pack_q(const AttentionProblem& p, int64_t b, int64_t h, int64_t row0, int64_t rows,
                     int64_t rows_pad, const Ws& w) {
    const Geo g = geo(p);
    std::memset(static_cast<void*>(w.qp), 0, sizeof(E) * rows_pad * g.dq);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t off = b * p.q_stride[0] + h * p.q_stride[1] + (row0 + i) * p.q_stride[2];
      for (int64_t d = 0; d < p.d; ++d) w.qp[i * g.dq + d] = row_elem(p.q, off, d, p.bf16);
    }
  }

  // ---- micro kernels ----
  // s[R][C*W] = q[R][:] . k^T for C consecutive key tiles.
  template <int C>
  static void qk_tile(const E* q, int64_t dq, int64_t d, const E* k, float* s) {
    F acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = V::zero();
    const int64_t tile = W * dq;
    if constexpr (kPairs) {
      for (int64_t pp = 0; pp < dq / 2; ++pp) {
        typename V::P kv[C];
        for (int c = 0; c < C; ++c) kv[c] = V::load_pairs(k + c * tile + pp * 2 * W);
        for (int r = 0; r < R; ++r) {
          const typename V::P qb = V::bcast_pair(q + r * dq + 2 * pp);
          for (int c = 0; c < C; ++c) acc[r][c] = V::dot_pairs(acc[r][c], kv[c], qb);
        }
      }
    } else {
      for (int64_t e = 0; e < d; ++e) {
        F kv[C];
        for (int c = 0; c < C; ++c) kv[c] = V::load(k + c * tile + e * W);
        for (int r = 0; r < R; ++r) {
          const F qb = V::set1(q[r * dq + e]);
          for (int c = 0; c < C; ++c) acc[r][c] = V::fmadd(qb, kv[c], acc[r][c]);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) V::store(s + r * V::NB + c * W, acc[r][c]);
  }

  // o[R][C*W] = o * alpha + P[R][0:nk] . v[0:nk][C*W]  (v points at the first of the C vectors).
  template <int C>
  static void pv_tile(const E* pb, int64_t nk, const E* v, int64_t dp, float* o, const float* alpha) {
    F acc[R][C];
    for (int r = 0; r < R; ++r) {
      const F a = V::set1(alpha[r]);
      for (int c = 0; c < C; ++c) acc[r][c] = V::mul(V::load(o + r * dp + c * W), a);
    }
    if constexpr (kPairs) {
      for (int64_t jp = 0; jp < (nk + 1) / 2; ++jp) {
        typename V::P vv[C];
        for (int c = 0; c < C; ++c) vv[c] = V::load_pairs(v + jp * dp * 2 + c * 2 * W);
        for (int r = 0; r < R; ++r) {
          const typename V::P pr = V::bcast_pair(pb + r * V::NB + 2 * jp);
          for (int c = 0; c < C; ++c) acc[r][c] = V::dot_pairs(acc[r][c], vv[c], pr);
        }
      }
    } else {
      for (int64_t j = 0; j < nk; ++j) {
        F vv[C];
        for (int c = 0; c < C; ++c) vv[c] = V::load(v + j * dp + c * W);
        for (int r = 0; r < R; ++r) {
          const F pr = V::set1(pb[r * V::NB + j]);
          for (int c = 0; c < C; ++c) acc[r][c] = V::fmadd(pr, vv[c], acc[r][c]);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) V::store(o + r * dp + c * W, acc[r][c]);
  }

  template <int C = 1>
  static void qk_dispatch(int c, const E* q, int64_t dq, int64_t d, const E* k, float* s) {
    if constexpr (C < V::CQK) {
      if (c != C) return qk_dispatch<C + 1>(c, q, dq, d, k, s);
    }
    qk_tile<C>(q, dq, d, k, s);
  }
  template <int C = 1>
  static void pv_dispatch(int c, const E* pb, int64_t nk, const E* v, int64_t dp, float* o,
                          const float* alpha) {
    if constexpr (C < V::CPV) {
      if (c != C) return pv_dispatch<C + 1>(c, pb, nk, v, dp, o, alpha);
    }
    pv_tile<C>(pb, nk, v, dp, o, alpha);
  }

  // 2^t for t <= 0; exactly 0 below -127 (so -inf scores give exactly 0).
  static F exp2v(F t) {
    t = V::max(V::set1(-127.0f), t);
    const F n = V::round_int(t);
    const F f = V::sub(t, n);
    F y;
    if constexpr (kRoundP) {  // degree 4, rel. error 2.8e-6: far below bf16 rounding of P
      y = V::set1(0.009582849596584161f);
      y = V::fmadd(y, f, V::set1(0.055906428239241114f));
      y = V::fmadd(y, f, V::set1(0.2402409870844655f));
      y = V::fmadd(y, f, V::set1(0.6931241927709898f));
    } else {  // degree 6 minimax, rel. error 2e-9 (f32 rounding dominates)
      y = V::set1(0.000153533593409966f);
      y = V::fmadd(y, f, V::set1(0.0013398874912470462f));
      y = V::fmadd(y, f, V::set1(0.009618437371945222f));
      y = V::fmadd(y, f, V::set1(0.05550332469567206f));
      y = V::fmadd(y, f, V::set1(0.24022647913441628f));
      y = V::fmadd(y, f, V::set1(0.6931472028560233f));
    }
    y = V::fmadd(y, f, V::set1(1.0f));
    return V::mul(y, V::pow2i(n));
  }

  // Online-softmax update of one query row for keys [kv0, kv0+nk): turns the raw scores x
  // (nvk*W floats) into P (stored at prow), updates running max m and sum l, and returns the
  // factor that rescales what was accumulated so far.
  static float softmax_row(const AttentionProblem& p, const float* mrow_src, float* x, int64_t nk,
                           int64_t nvk, E* prow, float& m, float& l, float* tmp) {
    const float scale = p.scale;
    const float ninf = -__builtin_inff();
    const int64_t msj = p.mask_stride[3];
    const float* mk = mrow_src;
    if (mk && msj != 1) {  // broadcast or strided key dim: gather into a contiguous row
      for (int64_t j = 0; j < nk; ++j) tmp[j] = mk[j * msj];
      mk = tmp;
    }
    const int64_t nfull = nk / W;
    F vmax = V::set1(ninf);
    const F vs = V::set1(scale);
    for (int64_t i = 0; i < nfull; ++i) {
      F t = V::mul(V::load(x + i * W), vs);
      if (mk) t = V::add(t, V::load(mk + i * W));
      V::store(x + i * W, t);
      vmax = V::max(vmax, t);
    }
    float mx = V::hmax(vmax);
    for (int64_t j = nfull * W; j < nk; ++j) {
      float t = x[j] * scale;
      if (mk) t += mk[j];
      x[j] = t;
      mx = t > mx ? t : mx;
    }
    for (int64_t j = nk; j < nvk * W; ++j) x[j] = ninf;
    const float m_new = mx > m ? mx : m;
    const float base = m_new == ninf ? 0.0f : m_new;  // all -inf so far: exp(-inf - 0) = 0
    // Vector exp2 rather than libm: a call would clobber every vector register (vzeroupper).
    const float alpha = V::first(exp2v(V::set1((m - base) * kLog2e)));
    const F vb = V::set1(base), vl = V::set1(kLog2e);
    F sum = V::zero();
    for (int64_t i = 0; i < nvk; ++i) {
      F e = exp2v(V::mul(V::sub(V::load(x + i * W), vb), vl));
      if constexpr (kPairs) {
        e = V::store_bf16_rounded(prow + i * W, e);
      } else {
        if constexpr (kRoundP) e = V::round_bf16(e);
        V::store(prow + i * W, e);
      }
      sum = V::add(sum, e);  // l sums the rounded P, so the weights used sum to exactly 1
    }
    l = l * alpha + V::hsum(sum);
    m = m_new;
    return alpha;
  }

  static void run(const AttentionProblem& p, int64_t t0, int64_t t1, void* workspace) {
    Ws w;
    layout(p, reinterpret_cast<char*>(round_up(reinterpret_cast<intptr_t>(workspace), 64)), &w);
    const Geo g = geo(p);
    const int64_t nvd = g.dp / W;
    const int64_t pv_chunks = (nvd + V::CPV - 1) / V::CPV;
    int64_t packed_bh = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / p.q_chunks, chunk = t % p.q_chunks;
      const int64_t b = bh / p.heads, h = bh % p.heads;
      const int64_t r0 = p.sq * chunk / p.q_chunks, r1 = p.sq * (chunk + 1) / p.q_chunks;
      if (r0 == r1) continue;
      if (bh != packed_bh) {  // consecutive tasks of one head share the packed K and V
        pack_kv(p, b, h, w);
        packed_bh = bh;
      }
      for (int64_t qb0 = r0; qb0 < r1; qb0 += V::MB) {
        const int64_t rows = min64(V::MB, r1 - qb0), rows_pad = round_up(rows, R);
        pack_q(p, b, h, qb0, rows, rows_pad, w);
        std::memset(w.o, 0, sizeof(float) * rows_pad * g.dp);
        for (int64_t i = 0; i < rows_pad; ++i) {
          w.m[i] = -__builtin_inff();
          w.l[i] = 0.0f;
        }
        for (int64_t kv0 = 0; kv0 < p.skv; kv0 += V::NB) {
          const int64_t nk = min64(V::NB, p.skv - kv0), nvk = (nk + W - 1) / W;
          const E* kblock = w.kp + kv0 * g.dq;  // kv0 is a multiple of W: tile kv0/W
          const E* vblock = w.vp + kv0 * g.dp;  // same offset in both V layouts (kv0 even)
          for (int64_t rg = 0; rg < rows_pad; rg += R) {
            const E* qr = w.qp + rg * g.dq;
            for (int64_t c0 = 0; c0 < nvk; c0 += V::CQK) {
              const int c = static_cast<int>(min64(V::CQK, nvk - c0));
              qk_dispatch(c, qr, g.dq, p.d, kblock + c0 * W * g.dq, w.s + c0 * W);
            }
            for (int r = 0; r < R; ++r) {
              const int64_t i = rg + r, row = qb0 + i;
              E* prow = w.pbuf + r * V::NB;
              if (i >= rows) {  // padding row: contributes nothing
                std::memset(static_cast<void*>(prow), 0, sizeof(E) * V::NB);
                w.alpha[r] = 1.0f;
                continue;
              }
              const float* mrow = nullptr;
              if (p.mask) {
                mrow = p.mask + b * p.mask_stride[0] + h * p.mask_stride[1] +
                       row * p.mask_stride[2] + kv0 * p.mask_stride[3];
              }
              w.alpha[r] = softmax_row(p, mrow, w.s + r * V::NB, nk, nvk, prow, w.m[i], w.l[i],
                                       w.mrow);
            }
            const int64_t nkp = kPairs ? round_up(nk, 2) : nk;
            for (int64_t ch = 0, v0 = 0; ch < pv_chunks; ++ch) {
              const int64_t cnt = nvd / pv_chunks + (ch < nvd % pv_chunks ? 1 : 0);
              pv_dispatch(static_cast<int>(cnt), w.pbuf, nkp, vblock + v0 * W * (kPairs ? 2 : 1),
                          g.dp, w.o + rg * g.dp + v0 * W, w.alpha);
              v0 += cnt;
            }
          }
        }
        for (int64_t i = 0; i < rows; ++i) {  // normalise, write heads-merged rows
          const float inv = w.l[i] > 0.0f ? 1.0f / w.l[i] : 0.0f;
          float* dst = p.out + ((b * p.sq + qb0 + i) * p.heads + h) * p.d;
          const float* src = w.o + i * g.dp;
          for (int64_t d = 0; d < p.d; ++d) dst[d] = src[d] * inv;
        }
      }
    }
  }
};

}  // namespace
