// The quantization kernels that are the same algorithm on every ISA, written once over a SIMD
// traits class V and included by qkernels_avx2.cc and qkernels_avx512.cc. Everything has internal
// linkage (anonymous namespace) and calls no std function, so code compiled with AVX-512 flags can
// never be merged by the linker into code that runs on AVX2-only CPUs.
//
// V provides: W (lanes); F (f32 vector), I (i32 vector), M (lane mask); loadf/load_bf16/load_s8
// (to F), load_u8 (to I); storef, store_u16 / store_u8 (low bits of each I lane), store_s8
// (saturating); loadi (W int32); set1/set1i; mul/div/add/sub/min/max/abs; permute (table[idx], W
// int32 entries); cvt_rne (F -> I, round half even), cvt_i2f;
// castfi/castif; iand/ior/iadd/isub/isrl/isll/imin/imax; flt/funord/icmpgt/icmpeq (-> M);
// fsel/isel(m, if_true, if_false); hmax; f16_round.
#pragma once
// Includers include <cstdint>, <cstring> and qdit/kernels/quant_kernels.h first.

namespace {

using qdit::kernels::qk::Lut4Run;
using qdit::kernels::qk::Nibbles;
using qdit::kernels::qk::QuantFp8Params;
using qdit::kernels::qk::QuantS8Params;
using qdit::kernels::qk::Round;

constexpr float kF32Eps = 1.1920928955078125e-07f;

// ---- scalar helpers, restated (not shared with other TUs; see above) ----
inline uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline uint16_t bf16_bits_scalar(float f) {
  if (f != f) return 0x7FC0;
  const uint32_t u = bits_of(f);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- vector pieces ----

// bf16 bits (RNE, NaN -> 0x7FC0) in the low half of each lane.
template <class V>
inline typename V::I bf16_bits(typename V::F v) {
  const typename V::I u = V::castfi(v);
  const typename V::I lsb = V::iand(V::isrl(u, 16), V::set1i(1));
  const typename V::I r = V::isrl(V::iadd(V::iadd(u, V::set1i(0x7FFF)), lsb), 16);
  return V::isel(V::funord(v), V::set1i(0x7FC0), r);
}
template <class V>
inline typename V::F round_bf16(typename V::F v) {
  return V::castif(V::isll(bf16_bits<V>(v), 16));
}
template <class V, bool kBf16>
inline typename V::F maybe_round(typename V::F v) {
  if constexpr (kBf16) return round_bf16<V>(v);
  return v;
}

template <class V>
inline void put(float* p, typename V::F v) {
  V::storef(p, v);
}
template <class V>
inline void put(uint16_t* p, typename V::F v) {
  V::store_u16(p, bf16_bits<V>(v));
}

template <class V>
inline typename V::F load_src(const void* x, bool bf16, int64_t i) {
  return bf16 ? V::load_bf16(static_cast<const uint16_t*>(x) + i) : V::loadf(static_cast<const float*>(x) + i);
}

// fp8 code (int lanes 0..255) -> f32, as fp8_e4m3fn_to_f32 / fp8_e5m2_to_f32.
template <class V>
inline typename V::F fp8_decode(typename V::I c, bool e5m2) {
  using I = typename V::I;
  using F = typename V::F;
  const I m = V::iand(c, V::set1i(0x7F));
  const I sign = V::isll(V::iand(c, V::set1i(0x80)), 24);
  const int mbits = e5m2 ? 2 : 3;
  const I e = V::isrl(m, mbits);
  const I man = V::iand(m, V::set1i((1 << mbits) - 1));
  // Normal: exponent bias 7 (e4m3) or 15 (e5m2) re-biased to 127 by adding to the f32 exponent.
  const F normal = V::castif(V::iadd(V::isll(m, 23 - mbits), V::set1i((e5m2 ? 112 : 120) << 23)));
  const F sub = V::mul(V::cvt_i2f(man), V::set1(e5m2 ? 1.52587890625e-05f : 0.001953125f));  // man * 2^-16 / 2^-9
  F v = V::fsel(V::icmpeq(e, V::set1i(0)), sub, normal);
  v = V::castif(V::ior(V::castfi(v), sign));
  const F nan = V::castif(V::set1i(0x7FC00000));
  if (e5m2) {
    v = V::fsel(V::icmpeq(m, V::set1i(0x7C)), V::castif(V::ior(V::set1i(0x7F800000), sign)), v);
    return V::fsel(V::icmpgt(m, V::set1i(0x7C)), nan, v);
  }
  return V::fsel(V::icmpeq(m, V::set1i(0x7F)), nan, v);
}

// f32 -> fp8 code (int lanes), as f32_to_fp8_e4m3fn / f32_to_fp8_e5m2 (RNE, saturation as there).
template <class V>
inline typename V::I fp8_encode(typename V::F v, bool e5m2) {
  using I = typename V::I;
  using F = typename V::F;
  const I u = V::castfi(v);
  const I sign = V::iand(V::isrl(u, 24), V::set1i(0x80));
  const I a = V::iand(u, V::set1i(0x7FFFFFFF));
  const F af = V::castif(a);
  const int shift = e5m2 ? 21 : 20;
  // round_mantissa: (a + half - 1 + lsb) >> shift, then remove the exponent bias difference.
  I norm = V::isrl(V::iadd(V::iadd(a, V::set1i((1 << (shift - 1)) - 1)), V::iand(V::isrl(a, shift), V::set1i(1))), shift);
  norm = V::isub(norm, V::set1i(e5m2 ? (112 << 2) : (120 << 3)));
  norm = V::imin(norm, V::set1i(e5m2 ? 0x7C : 0x7F));  // overflow: e5m2 inf, e4m3fn NaN
  const I sub = V::cvt_rne(V::mul(af, V::set1(e5m2 ? 65536.0f : 512.0f)));
  I code = V::isel(V::flt(af, V::set1(e5m2 ? 6.103515625e-05f : 0.015625f)), sub, norm);
  if (e5m2) code = V::isel(V::icmpgt(a, V::set1i(0x7F800000)), V::set1i(0x7F), code);  // NaN
  return V::ior(sign, code);
}

// ---- decode ----

template <class V, class Out, bool kR>
void s8_mul_t(const int8_t* c, int64_t n, float s, Out* dst) {
  constexpr int W = V::W;
  const typename V::F vs = V::set1(s);
  int64_t i = 0;
  for (; i + W <= n; i += W) put<V>(dst + i, maybe_round<V, kR>(V::mul(V::load_s8(c + i), vs)));
  if (i < n) {
    int8_t tc[W] = {};
    Out to[W];
    memcpy(tc, c + i, static_cast<size_t>(n - i));
    put<V>(to, maybe_round<V, kR>(V::mul(V::load_s8(tc), vs)));
    memcpy(dst + i, to, sizeof(Out) * static_cast<size_t>(n - i));
  }
}

template <class V, class Out>
void s8_mul_any(const int8_t* c, int64_t n, float s, Round r, Out* dst) {
  if (r == Round::BF16)
    s8_mul_t<V, Out, true>(c, n, s, dst);
  else
    s8_mul_t<V, Out, false>(c, n, s, dst);
}

template <class V, class Out, bool kR>
void fp8_mul_t(const uint8_t* c, int64_t n, bool e5m2, float s, Out* dst) {
  constexpr int W = V::W;
  const typename V::F vs = V::set1(s);
  int64_t i = 0;
  for (; i + W <= n; i += W) put<V>(dst + i, maybe_round<V, kR>(V::mul(fp8_decode<V>(V::load_u8(c + i), e5m2), vs)));
  if (i < n) {
    uint8_t tc[W] = {};
    Out to[W];
    memcpy(tc, c + i, static_cast<size_t>(n - i));
    put<V>(to, maybe_round<V, kR>(V::mul(fp8_decode<V>(V::load_u8(tc), e5m2), vs)));
    memcpy(dst + i, to, sizeof(Out) * static_cast<size_t>(n - i));
  }
}

template <class V, class Out>
void fp8_mul_any(const uint8_t* c, int64_t n, bool e5m2, float s, Round r, Out* dst) {
  if (r == Round::BF16)
    fp8_mul_t<V, Out, true>(c, n, e5m2, s, dst);
  else
    fp8_mul_t<V, Out, false>(c, n, e5m2, s, dst);
}

// The 16-entry table of one group, as f32 values and as bf16 bits.
template <class V>
void lut_table(const Lut4Run& p, int64_t g, float* tf, uint16_t* tb) {
  const typename V::F s = V::set1(p.scale[g * p.scale_stride]);
  const bool bf = p.round == Round::BF16;
  for (int i = 0; i < 16; i += V::W) {
    typename V::F t = V::mul(V::loadf(p.base + i), s);
    if (bf) t = round_bf16<V>(t);
    if (p.zero) {
      t = V::add(t, V::set1(p.zero[g * p.zero_stride]));
      if (bf) t = round_bf16<V>(t);
    }
    V::storef(tf + i, t);
    V::store_u16(tb + i, bf16_bits<V>(t));
  }
}

// Walks a Lut4Run group by group: fn(table_f32, table_bf16, first code index, count, nibble
// position of the first code (pair layouts: from bytes[0]'s first nibble; Field: byte index)).
template <class V, class Fn>
void lut_groups(const Lut4Run& p, Fn&& fn) {
  alignas(64) float tf[16];
  alignas(64) uint16_t tb[32];
  int64_t done = 0;
  for (int64_t g = 0; done < p.n; ++g) {
    const int64_t len = min_i64(g == 0 ? p.first_group : p.group, p.n - done);
    lut_table<V>(p, g, tf, tb);
    for (int i = 0; i < 16; ++i) tb[16 + i] = tb[i];  // duplicated: index bit 4 is don't-care
    const int64_t pos = (p.layout == Nibbles::Field ? 0 : (p.odd_start ? 1 : 0)) + done;
    fn(tf, tb, done, len, pos);
    done += len;
  }
}

// Code at nibble position pos (pair layouts) or byte pos (Field).
inline int code_at(const Lut4Run& p, int64_t pos) {
  if (p.layout == Nibbles::Field) return (p.bytes[pos] >> p.shift) & ((1 << p.field_bits) - 1);
  const uint8_t b = p.bytes[pos >> 1];
  const bool second = (pos & 1) != 0;
  return (p.layout == Nibbles::LowFirst) != second ? (b & 0xF) : (b >> 4);
}

// ---- quantize ----

template <class V, bool kF16>
float abs_max_t(const void* x, bool bf16, int64_t n) {
  constexpr int W = V::W;
  using F = typename V::F;
  F a0 = V::set1(0.0f), a1 = a0, a2 = a0, a3 = a0;
  auto val = [&](int64_t i) {
    F v = load_src<V>(x, bf16, i);
    if constexpr (kF16) v = V::f16_round(v);
    return V::abs(v);
  };
  int64_t i = 0;
  // max(|x|, acc): a NaN |x| leaves acc, as std::max(acc, NaN) does.
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = V::max(val(i), a0);
    a1 = V::max(val(i + W), a1);
    a2 = V::max(val(i + 2 * W), a2);
    a3 = V::max(val(i + 3 * W), a3);
  }
  for (; i + W <= n; i += W) a0 = V::max(val(i), a0);
  float m = V::hmax(V::max(V::max(a0, a1), V::max(a2, a3)));
  for (; i < n; ++i) {
    float v = bf16 ? float_of(static_cast<uint32_t>(static_cast<const uint16_t*>(x)[i]) << 16)
                   : static_cast<const float*>(x)[i];
    if constexpr (kF16) {
      F t = V::f16_round(V::set1(v));
      float lanes[W];
      V::storef(lanes, t);
      v = lanes[0];
    }
    v = v < 0 ? -v : v;
    if (m < v) m = v;
  }
  return m;
}

template <class V, bool kDiv, bool kR, bool kF16>
void quant_s8_t(const void* x, bool bf16, int64_t n, const QuantS8Params& p, int8_t* q) {
  constexpr int W = V::W;
  using F = typename V::F;
  using I = typename V::I;
  const F s = V::set1(p.s);
  const I lo = V::set1i(static_cast<int32_t>(p.lo)), hi = V::set1i(static_cast<int32_t>(p.hi));
  auto code = [&](F v) {
    if constexpr (kF16) v = V::f16_round(v);
    v = kDiv ? V::div(v, s) : V::mul(v, s);
    v = maybe_round<V, kR>(v);
    return V::imin(V::imax(V::cvt_rne(v), lo), hi);
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store_s8(q + i, code(load_src<V>(x, bf16, i)));
  if (i < n) {
    float tx[W] = {};
    int8_t tq[W];
    for (int64_t j = i; j < n; ++j)
      tx[j - i] = bf16 ? float_of(static_cast<uint32_t>(static_cast<const uint16_t*>(x)[j]) << 16)
                       : static_cast<const float*>(x)[j];
    V::store_s8(tq, code(V::loadf(tx)));
    memcpy(q + i, tq, static_cast<size_t>(n - i));
  }
}

template <class V>
void quant_s8_any(const void* x, bool bf16, int64_t n, const QuantS8Params& p, int8_t* q) {
  const bool r = p.round == Round::BF16;
  if (p.f16_first) {
    if (p.divide)
      r ? quant_s8_t<V, true, true, true>(x, bf16, n, p, q) : quant_s8_t<V, true, false, true>(x, bf16, n, p, q);
    else
      r ? quant_s8_t<V, false, true, true>(x, bf16, n, p, q) : quant_s8_t<V, false, false, true>(x, bf16, n, p, q);
  } else {
    if (p.divide)
      r ? quant_s8_t<V, true, true, false>(x, bf16, n, p, q) : quant_s8_t<V, true, false, false>(x, bf16, n, p, q);
    else
      r ? quant_s8_t<V, false, true, false>(x, bf16, n, p, q) : quant_s8_t<V, false, false, false>(x, bf16, n, p, q);
  }
}

template <class V, bool kR>
void quant_fp8_t(const void* x, bool bf16, int64_t n, const QuantFp8Params& p, uint8_t* q) {
  constexpr int W = V::W;
  using F = typename V::F;
  const F s = V::set1(p.s), lo = V::set1(-p.fmax), hi = V::set1(p.fmax);
  // clamp as std::clamp: the value is the second operand of max/min so that NaN passes through.
  auto code = [&](F v) {
    v = maybe_round<V, kR>(V::div(v, s));
    return fp8_encode<V>(V::min(hi, V::max(lo, v)), p.e5m2);
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store_u8(q + i, code(load_src<V>(x, bf16, i)));
  if (i < n) {
    float tx[W] = {};
    uint8_t tq[W];
    for (int64_t j = i; j < n; ++j)
      tx[j - i] = bf16 ? float_of(static_cast<uint32_t>(static_cast<const uint16_t*>(x)[j]) << 16)
                       : static_cast<const float*>(x)[j];
    V::store_u8(tq, code(V::loadf(tx)));
    memcpy(q + i, tq, static_cast<size_t>(n - i));
  }
}

template <class V>
void quant_fp8_any(const void* x, bool bf16, int64_t n, const QuantFp8Params& p, uint8_t* q) {
  if (p.round == Round::BF16)
    quant_fp8_t<V, true>(x, bf16, n, p, q);
  else
    quant_fp8_t<V, false>(x, bf16, n, p, q);
}

template <class V>
float abs_max_plain(const void* x, bool bf16, int64_t n) {
  return abs_max_t<V, false>(x, bf16, n);
}
template <class V>
float abs_max_f16(const void* x, bool bf16, int64_t n) {
  return abs_max_t<V, true>(x, bf16, n);
}

// ---- 4-bit quantize ----

template <class V>
void min_max_t(const float* x, int64_t n, float* mn, float* mx) {
  constexpr int W = V::W;
  float lo = x[0], hi = x[0];
  int64_t i = 0;
  if (n >= W) {
    typename V::F vlo = V::loadf(x), vhi = vlo;
    for (i = W; i + W <= n; i += W) {
      const typename V::F v = V::loadf(x + i);
      vlo = V::min(vlo, v);
      vhi = V::max(vhi, v);
    }
    float l[W], h[W];
    V::storef(l, vlo);
    V::storef(h, vhi);
    for (int j = 0; j < W; ++j) {
      if (l[j] < lo) lo = l[j];
      if (hi < h[j]) hi = h[j];
    }
  }
  for (; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (hi < x[i]) hi = x[i];
  }
  *mn = lo;
  *mx = hi;
}

// out[i] = code(x[i..i+W)) lane by lane for f32 x; the tail runs on a zero-padded copy.
template <class V, class Code>
void store_codes(const float* x, int64_t n, const Code& code, uint8_t* out) {
  constexpr int W = V::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store_u8(out + i, code(V::loadf(x + i)));
  if (i < n) {
    float tx[W] = {};
    uint8_t to[W];
    memcpy(tx, x + i, sizeof(float) * static_cast<size_t>(n - i));
    V::store_u8(to, code(V::loadf(tx)));
    memcpy(out + i, to, static_cast<size_t>(n - i));
  }
}

template <class V>
void affine_codes_t(const float* x, int64_t n, float mn, float s, uint8_t* out) {
  const typename V::F vmn = V::set1(mn), vs = V::set1(s);
  const typename V::I z = V::set1i(0), f = V::set1i(15);
  auto code = [&](typename V::F v) { return V::imin(V::imax(V::cvt_rne(V::div(V::sub(v, vmn), vs)), z), f); };
  store_codes<V>(x, n, code, out);
}

template <class V>
void nearest_codes_t(const float* x, int64_t n, float inv, const qdit::kernels::qk::NearestCodes& t, uint8_t* out) {
  constexpr int W = V::W;
  using F = typename V::F;
  using I = typename V::I;
  const F vinv = V::set1(inv), lo = V::set1(-1.0f), hi = V::set1(1.0f), zero = V::set1(0.0f);
  F mids[15];
  for (int j = 0; j < t.count; ++j) mids[j] = V::set1(t.mids[j]);
  int32_t table[W] = {};
  if (t.sign_bit)
    for (int j = 0; j <= t.count && j < W; ++j) table[j] = t.code_of[j];
  const I vtab = V::loadi(table), one = V::set1i(1), eight = V::set1i(8);
  auto code = [&](F v) {
    v = V::min(hi, V::max(lo, V::mul(v, vinv)));  // std::clamp order: NaN passes through
    const F a = t.sign_bit ? V::abs(v) : v;
    I c = V::set1i(0);
    for (int j = 0; j < t.count; ++j) c = V::isel(V::flt(mids[j], a), V::iadd(c, one), c);
    if (t.sign_bit) c = V::ior(V::permute(vtab, c), V::isel(V::flt(v, zero), eight, V::set1i(0)));
    return c;
  };
  store_codes<V>(x, n, code, out);
}

// ---- Int8Linear epilogue ----

template <class V, bool kScale, bool kBias, bool kAcc>
void epilogue_t(const float* t, int64_t rows, int64_t n, const float* row_scale, const float* bias, float* out) {
  constexpr int W = V::W;
  for (int64_t i = 0; i < rows; ++i) {
    const float* ti = t + i * n;
    float* oi = out + i * n;
    const float rs = kScale ? row_scale[i] : 1.0f;
    const typename V::F vs = V::set1(rs);
    int64_t j = 0;
    for (; j + W <= n; j += W) {
      typename V::F v = V::loadf(ti + j);
      if constexpr (kScale) v = V::mul(v, vs);
      if constexpr (kBias) v = V::add(v, V::loadf(bias + j));
      if constexpr (kAcc) v = V::add(V::loadf(oi + j), v);
      V::storef(oi + j, v);
    }
    for (; j < n; ++j) {
      float v = ti[j];
      if constexpr (kScale) v = v * rs;
      if constexpr (kBias) v = v + bias[j];
      if constexpr (kAcc) v = oi[j] + v;
      oi[j] = v;
    }
  }
}

template <class V>
void epilogue_rows_t(const float* t, int64_t rows, int64_t n, const float* row_scale, const float* bias, bool acc,
                     float* out) {
  const int sel = (row_scale ? 4 : 0) | (bias ? 2 : 0) | (acc ? 1 : 0);
  switch (sel) {
    case 0: return epilogue_t<V, false, false, false>(t, rows, n, row_scale, bias, out);
    case 1: return epilogue_t<V, false, false, true>(t, rows, n, row_scale, bias, out);
    case 2: return epilogue_t<V, false, true, false>(t, rows, n, row_scale, bias, out);
    case 3: return epilogue_t<V, false, true, true>(t, rows, n, row_scale, bias, out);
    case 4: return epilogue_t<V, true, false, false>(t, rows, n, row_scale, bias, out);
    case 5: return epilogue_t<V, true, false, true>(t, rows, n, row_scale, bias, out);
    case 6: return epilogue_t<V, true, true, false>(t, rows, n, row_scale, bias, out);
    default: return epilogue_t<V, true, true, true>(t, rows, n, row_scale, bias, out);
  }
}

// Per-token activation quantization (int8dq): scale = max(amax / divisor, eps), q = sat(rne(x / s)).
template <class V>
void act_quant_t(const void* x, bool bf16, int64_t k, float divisor, int8_t* q, float* scale) {
  const float amax = abs_max_t<V, false>(x, bf16, k);
  float s = amax / divisor;
  if (s < kF32Eps) s = kF32Eps;
  *scale = s;
  // Aggregate initialisation: no (inline, shared) constructor of the public struct runs here.
  const QuantS8Params p{1.0f / s, false, false, Round::None, -128.0f, 127.0f};
  quant_s8_t<V, false, false, false>(x, bf16, k, p, q);
}

}  // namespace
