// The vectorised quantization kernels (quant_kernels.h), every ISA variant this CPU runs, against
// scalar loops written from the codecs' formulas: bit-identical outputs on random data, odd
// lengths (vector tails), special values (zeros, denormals, NaN, inf, fp8 rounding boundaries).
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "qdit/core/float_cast.h"
#include "qdit/kernels/quant_kernels.h"

using namespace qdit;
using namespace qdit::kernels::qk;

namespace {

std::vector<Isa> isas() {
  std::vector<Isa> v{Isa::Avx2};
  if (isa_available(Isa::Avx512)) v.push_back(Isa::Avx512);
  return v;
}

float r_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }
float apply(Round r, float v) { return r == Round::BF16 ? r_bf16(v) : v; }

// Same value, NaN equal to any NaN.
bool same_f32(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return f32_bits(a) == f32_bits(b);
}

const std::vector<int64_t> kLengths = {1, 7, 15, 16, 17, 31, 32, 33, 63, 100, 1153};

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = f32_to_bf16(v[i]);
  return b;
}

// Scales that hit every branch: normal, zero, negative, denormal, huge (products overflow), inf, NaN.
const std::vector<float> kScales = {0.0123f, 0.0f, -0.75f, 1e-39f, 3e37f, INFINITY, NAN, 5.877e-39f, 1.1754944e-38f};

}  // namespace

TEST(QuantKernels, S8TimesScaleF32AndBf16) {
  std::mt19937 rng(1);
  for (Isa isa : isas())
    for (int64_t n : kLengths)
      for (float s : kScales)
        for (Round r : {Round::None, Round::BF16}) {
          std::vector<int8_t> c(static_cast<size_t>(n));
          for (auto& x : c) x = static_cast<int8_t>(rng() & 0xFF);
          std::vector<float> f(c.size());
          std::vector<uint16_t> b(c.size());
          get(isa).s8_mul_f32(c.data(), n, s, r, f.data());
          get(isa).s8_mul_bf16(c.data(), n, s, r, b.data());
          for (int64_t i = 0; i < n; ++i) {
            const float want = apply(r, static_cast<float>(c[i]) * s);
            ASSERT_TRUE(same_f32(f[i], want)) << isa_name(isa) << " n=" << n << " s=" << s << " i=" << i;
            ASSERT_EQ(b[i], f32_to_bf16(want)) << isa_name(isa) << " n=" << n << " s=" << s << " i=" << i;
          }
        }
}

TEST(QuantKernels, Fp8TimesScaleEveryCode) {
  for (Isa isa : isas())
    for (bool e5m2 : {false, true})
      for (float s : {0.5f, 0.0173f, 1e-39f, 0.0f, -2.0f, 3e38f, 1e-33f, 7.5e-34f, 1e-30f, INFINITY, NAN})
        for (Round r : {Round::None, Round::BF16})
          for (int64_t n : {int64_t{256}, int64_t{37}}) {
            std::vector<uint8_t> c(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) c[i] = static_cast<uint8_t>((i * 97 + 13) & 0xFF);
            if (n == 256)
              for (int i = 0; i < 256; ++i) c[i] = static_cast<uint8_t>(i);
            std::vector<float> f(c.size());
            std::vector<uint16_t> b(c.size());
            get(isa).fp8_mul_f32(c.data(), n, e5m2, s, r, f.data());
            get(isa).fp8_mul_bf16(c.data(), n, e5m2, s, r, b.data());
            for (int64_t i = 0; i < n; ++i) {
              const float v = e5m2 ? fp8_e5m2_to_f32(c[i]) : fp8_e4m3fn_to_f32(c[i]);
              const float want = apply(r, v * s);
              ASSERT_TRUE(same_f32(f[i], want)) << isa_name(isa) << " code " << int(c[i]) << " s=" << s;
              ASSERT_EQ(b[i], f32_to_bf16(want)) << isa_name(isa) << " code " << int(c[i]) << " s=" << s;
            }
          }
}

namespace {

struct LutCase {
  Nibbles layout;
  bool odd_start;
  int shift, field_bits;
  int64_t n, group, first_group;
  bool with_zero;
  Round round;
};

int ref_code(const LutCase& c, const std::vector<uint8_t>& bytes, int64_t i) {
  if (c.layout == Nibbles::Field) return (bytes[i] >> c.shift) & ((1 << c.field_bits) - 1);
  const int64_t pos = i + (c.odd_start ? 1 : 0);
  const uint8_t b = bytes[pos / 2];
  const bool second = pos % 2 == 1;
  return (c.layout == Nibbles::LowFirst) != second ? (b & 0xF) : (b >> 4);
}

}  // namespace

TEST(QuantKernels, FourBitTableLookups) {
  std::vector<LutCase> cases;
  for (Round r : {Round::None, Round::BF16})
    for (bool z : {false, true}) {
      for (int64_t n : {1, 2, 31, 32, 33, 64, 100, 1152, 1153}) {
        cases.push_back({Nibbles::LowFirst, false, 0, 4, n, 128, 128, z, r});
        cases.push_back({Nibbles::HighFirst, false, 0, 4, n, 64, 64, z, r});
        cases.push_back({Nibbles::HighFirst, true, 0, 4, n, 64, 37, z, r});  // block straddles rows
        cases.push_back({Nibbles::LowFirst, false, 0, 4, n, 32, 5, z, r});
        cases.push_back({Nibbles::Field, false, 0, 4, n, 96, 96, z, r});
        cases.push_back({Nibbles::Field, false, 4, 4, n, 96, 96, z, r});
        cases.push_back({Nibbles::Field, false, 6, 2, n, 40, 40, z, r});
      }
    }
  std::mt19937 rng(3);
  for (Isa isa : isas())
    for (const LutCase& c : cases) {
      const int64_t nbytes = c.n + 2;
      std::vector<uint8_t> bytes(static_cast<size_t>(nbytes));
      for (auto& b : bytes) b = static_cast<uint8_t>(rng() & 0xFF);
      std::vector<float> base = random_floats(16, 4, -1.0f, 1.0f);
      base[7] = 0.0f;
      const int64_t groups = c.n / c.group + 3;
      std::vector<float> scale = random_floats(groups * 3, 5, 0.001f, 0.1f);
      std::vector<float> zero = random_floats(groups * 2, 6, -0.05f, 0.05f);
      scale[0] = -0.0f;  // a zero scale gives signed zeros the table must keep
      Lut4Run run;
      run.bytes = bytes.data();
      run.layout = c.layout;
      run.odd_start = c.odd_start;
      run.shift = c.shift;
      run.field_bits = c.field_bits;
      run.n = c.n;
      run.group = c.group;
      run.first_group = c.first_group;
      run.base = base.data();
      run.scale = scale.data();
      run.scale_stride = 3;
      run.zero = c.with_zero ? zero.data() : nullptr;
      run.zero_stride = 2;
      run.round = c.round;
      std::vector<float> f(static_cast<size_t>(c.n) + 1, 7.0f);
      std::vector<uint16_t> b(static_cast<size_t>(c.n) + 1, 7);
      get(isa).lut4_f32(run, f.data());
      get(isa).lut4_bf16(run, b.data());
      for (int64_t i = 0; i < c.n; ++i) {
        const int64_t g = i < c.first_group ? 0 : 1 + (i - c.first_group) / c.group;
        float want = apply(c.round, base[ref_code(c, bytes, i)] * scale[g * 3]);
        if (c.with_zero) want = apply(c.round, want + zero[g * 2]);
        const std::string what = std::string(isa_name(isa)) + " layout " + std::to_string(int(c.layout)) + " n=" +
                                 std::to_string(c.n) + " i=" + std::to_string(i);
        ASSERT_TRUE(same_f32(f[i], want)) << what;
        ASSERT_EQ(b[i], f32_to_bf16(want)) << what;
      }
      EXPECT_EQ(f[c.n], 7.0f) << "wrote past the run";
      EXPECT_EQ(b[c.n], 7) << "wrote past the run";
    }
}

TEST(QuantKernels, AbsMax) {
  for (Isa isa : isas())
    for (int64_t n : kLengths)
      for (bool bf16 : {false, true}) {
        std::vector<float> x = random_floats(n, 7, -3.0f, 3.0f);
        x[static_cast<size_t>(n / 2)] = -70000.0f * (n % 2 ? 1 : -1);  // beyond f16: inf after rounding
        if (n > 3) x[1] = NAN;  // ignored, as std::max(acc, NaN) keeps acc
        std::vector<uint16_t> xb = to_bf16(x);
        const void* src = bf16 ? static_cast<const void*>(xb.data()) : x.data();
        float want = 0, want16 = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float v = bf16 ? bf16_to_f32(xb[i]) : x[i];
          want = std::max(want, std::fabs(v));
          want16 = std::max(want16, std::fabs(f16_to_f32(f32_to_f16(v))));
        }
        EXPECT_TRUE(same_f32(get(isa).abs_max(src, bf16, n), want)) << isa_name(isa) << " n=" << n;
        EXPECT_TRUE(same_f32(get(isa).abs_max_f16(src, bf16, n), want16)) << isa_name(isa) << " n=" << n;
      }
}

TEST(QuantKernels, Int8Codes) {
  for (Isa isa : isas())
    for (int64_t n : kLengths)
      for (bool bf16 : {false, true})
        for (int variant = 0; variant < 8; ++variant) {
          QuantS8Params p;
          p.divide = variant & 1;
          p.f16_first = variant & 2;
          p.round = variant & 4 ? Round::BF16 : Round::None;
          p.lo = p.f16_first ? -127.0f : -128.0f;
          std::vector<float> x = random_floats(n, 8 + variant, -2.0f, 2.0f);
          x[0] = 1.0f;  // exact halves: 0.5 / 127 codes land on .5 boundaries
          if (n > 2) x[2] = -2.0f;
          std::vector<uint16_t> xb = to_bf16(x);
          p.s = p.divide ? 2.0f / 127.0f : 127.5f / 2.0f;
          if (variant == 3) p.s = 1.0f / 63.5f;  // x * s hits k + 0.5 for x = 1
          std::vector<int8_t> q(static_cast<size_t>(n));
          get(isa).quant_s8(bf16 ? static_cast<const void*>(xb.data()) : x.data(), bf16, n, p, q.data());
          for (int64_t i = 0; i < n; ++i) {
            float v = bf16 ? bf16_to_f32(xb[i]) : x[i];
            if (p.f16_first) v = f16_to_f32(f32_to_f16(v));
            v = apply(p.round, p.divide ? v / p.s : v * p.s);
            const int want = static_cast<int>(std::clamp(std::nearbyint(v), p.lo, p.hi));
            ASSERT_EQ(q[i], want) << isa_name(isa) << " variant " << variant << " n=" << n << " i=" << i;
          }
        }
}

TEST(QuantKernels, Fp8CodesMatchScalarCasts) {
  // Random values over the whole range plus the rounding boundaries of both formats.
  std::vector<float> x = random_floats(3000, 9, -500.0f, 500.0f);
  std::mt19937 rng(10);
  for (int i = 0; i < 20000; ++i) {
    uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);  // any bit pattern: subnormals, NaN, inf, huge
  }
  for (float v : {0.0f, -0.0f, 0.015625f, 0.0156249f, 0.0009765625f, 0.00146484375f, 448.0f, 464.0f, 480.0f, 57344.0f,
                  61440.0f, 6.103515625e-05f, 3.0517578125e-05f, 2.288818359375e-05f, 1e-45f, INFINITY, -INFINITY, NAN})
    x.push_back(v);
  for (int i = 0; i < 256; ++i) {  // every code's value and the midpoints next to it
    x.push_back(fp8_e4m3fn_to_f32(static_cast<uint8_t>(i)));
    x.push_back(fp8_e5m2_to_f32(static_cast<uint8_t>(i)));
    x.push_back((fp8_e4m3fn_to_f32(static_cast<uint8_t>(i)) + fp8_e4m3fn_to_f32(static_cast<uint8_t>(i + 1))) / 2);
    x.push_back((fp8_e5m2_to_f32(static_cast<uint8_t>(i)) + fp8_e5m2_to_f32(static_cast<uint8_t>(i + 1))) / 2);
  }
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> xb = to_bf16(x);
  for (Isa isa : isas())
    for (bool e5m2 : {false, true})
      for (bool bf16 : {false, true})
        for (Round r : {Round::None, Round::BF16})
          for (float s : {1.0f, 0.37f}) {
            QuantFp8Params p;
            p.s = s;
            p.e5m2 = e5m2;
            p.fmax = e5m2 ? 57344.0f : 448.0f;
            p.round = r;
            std::vector<uint8_t> q(x.size());
            get(isa).quant_fp8(bf16 ? static_cast<const void*>(xb.data()) : x.data(), bf16, n, p, q.data());
            for (int64_t i = 0; i < n; ++i) {
              const float src = bf16 ? bf16_to_f32(xb[i]) : x[i];
              const float v = std::clamp(apply(r, src / s), -p.fmax, p.fmax);
              const uint8_t want = e5m2 ? f32_to_fp8_e5m2(v) : f32_to_fp8_e4m3fn(v);
              ASSERT_EQ(int(q[i]), int(want)) << isa_name(isa) << " x=" << src << " e5m2=" << e5m2;
            }
            // Without the clamp too: the casts' own saturation, NaN and inf handling.
            if (s == 1.0f && r == Round::None && !bf16) {
              p.fmax = INFINITY;
              get(isa).quant_fp8(x.data(), false, n, p, q.data());
              for (int64_t i = 0; i < n; ++i) {
                const uint8_t want = e5m2 ? f32_to_fp8_e5m2(x[i]) : f32_to_fp8_e4m3fn(x[i]);
                ASSERT_EQ(int(q[i]), int(want)) << isa_name(isa) << " unclamped x=" << x[i] << " e5m2=" << e5m2;
              }
            }
          }
}

TEST(QuantKernels, MinMaxAndAffineCodes) {
  for (Isa isa : isas())
    for (int64_t n : kLengths) {
      std::vector<float> x = random_floats(n, 12, -0.3f, 0.7f);
      float mn = 0, mx = 0;
      get(isa).min_max(x.data(), n, &mn, &mx);
      EXPECT_EQ(mn, *std::min_element(x.begin(), x.end())) << isa_name(isa) << " n=" << n;
      EXPECT_EQ(mx, *std::max_element(x.begin(), x.end())) << isa_name(isa) << " n=" << n;
      const float s = std::max(mx - mn, 1e-6f) / 15.0f;
      x[0] = mn + 7.5f * s;  // a half step
      std::vector<uint8_t> u(static_cast<size_t>(n));
      get(isa).affine_codes(x.data(), n, mn, s, u.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(u[i], static_cast<int>(std::clamp(std::nearbyint((x[i] - mn) / s), 0.0f, 15.0f)))
            << isa_name(isa) << " n=" << n << " i=" << i;
    }
}

TEST(QuantKernels, NearestCodes) {
  std::vector<float> mids = random_floats(15, 13, -1.0f, 1.0f);
  std::sort(mids.begin(), mids.end());
  std::vector<float> mags = random_floats(7, 14, 0.0f, 1.0f);
  std::sort(mags.begin(), mags.end());
  const uint8_t code_of[8] = {0, 1, 6, 7, 4, 5, 2, 3};
  std::vector<float> x = random_floats(500, 15, -1.5f, 1.5f);
  for (float m : mids) x.push_back(m);  // exactly on a midpoint: the lower entry
  for (float m : mags) {
    x.push_back(m);
    x.push_back(-m);
  }
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -7.0f, NAN, INFINITY, -INFINITY}) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  for (Isa isa : isas())
    for (bool fp4 : {false, true})
      for (float inv : {1.0f, 0.75f, 0.0f}) {
        NearestCodes t;
        t.mids = fp4 ? mags.data() : mids.data();
        t.count = fp4 ? 7 : 15;
        t.sign_bit = fp4;
        t.code_of = code_of;
        std::vector<uint8_t> c(x.size());
        get(isa).nearest_codes(x.data(), n, inv, t, c.data());
        for (int64_t i = 0; i < n; ++i) {
          const float v = std::clamp(x[i] * inv, -1.0f, 1.0f);
          const float a = fp4 ? std::fabs(v) : v;
          int idx = 0;  // nearest_sorted: the first midpoint not below the value
          while (idx < t.count && a > t.mids[idx]) ++idx;
          const int want = fp4 ? (code_of[idx] | (v < 0.0f ? 8 : 0)) : idx;
          ASSERT_EQ(int(c[i]), want) << isa_name(isa) << " fp4=" << fp4 << " x=" << x[i] << " inv=" << inv;
        }
      }
}

TEST(QuantKernels, Int8LinearEpilogue) {
  for (Isa isa : isas())
    for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{64}, int64_t{100}})
      for (int variant = 0; variant < 8; ++variant) {
        const bool scale = variant & 4, bias = variant & 2, acc = variant & 1;
        const int64_t rows = 3;
        std::vector<float> t = random_floats(rows * n, 16, -5.0f, 5.0f), rs = random_floats(rows, 17, 0.01f, 0.1f),
                           b = random_floats(n, 18, -1.0f, 1.0f), out = random_floats(rows * n, 19, -1.0f, 1.0f);
        std::vector<float> want = out;
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < n; ++j) {
            float v = t[i * n + j];
            if (scale) v = v * rs[i];
            if (bias) v = v + b[j];
            want[i * n + j] = acc ? want[i * n + j] + v : v;
          }
        get(isa).epilogue_rows(t.data(), rows, n, scale ? rs.data() : nullptr, bias ? b.data() : nullptr, acc,
                               out.data());
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(f32_bits(out[i]), f32_bits(want[i])) << isa_name(isa) << " variant " << variant << " n=" << n;
        // In place.
        get(isa).epilogue_rows(t.data(), rows, n, scale ? rs.data() : nullptr, bias ? b.data() : nullptr, false,
                               t.data());
        if (!acc) {
          for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(f32_bits(t[i]), f32_bits(want[i]));
        }
      }
}

TEST(QuantKernels, PerTokenActivationQuantization) {
  for (Isa isa : isas())
    for (int64_t n : kLengths) {
      std::vector<float> x = random_floats(n, 11, -3.0f, 3.0f);
      std::vector<int8_t> q(static_cast<size_t>(n));
      float s = 0;
      for (bool bf16 : {false, true}) {
        // bf16 rows: the codes and scale of the same values widened to f32.
        std::vector<uint16_t> xb(x.size());
        for (size_t i = 0; i < x.size(); ++i) {
          xb[i] = f32_to_bf16(x[i]);
          if (bf16) x[i] = bf16_to_f32(xb[i]);
        }
        get(isa).act_quant_s8(bf16 ? static_cast<const void*>(xb.data()) : x.data(), bf16, n, 127.5f, q.data(), &s);
        float amax = 0;
        for (float v : x) amax = std::max(amax, std::fabs(v));
        const float want_s = std::max(amax / 127.5f, 1.1920928955078125e-07f);
        ASSERT_EQ(f32_bits(s), f32_bits(want_s)) << "bf16 " << bf16 << " n " << n;
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(q[i], static_cast<int8_t>(std::clamp(std::nearbyint(x[i] * (1.0f / want_s)), -128.0f, 127.0f)))
              << "bf16 " << bf16 << " n " << n << " i " << i;
      }
    }
  // An all-zero row takes the eps scale.
  std::vector<float> z(20, 0.0f);
  std::vector<int8_t> q(20, 1);
  float s = 0;
  get().act_quant_s8(z.data(), false, 20, 127.5f, q.data(), &s);
  EXPECT_EQ(s, 1.1920928955078125e-07f);
  for (int8_t v : q) EXPECT_EQ(v, 0);
}

TEST(QuantKernels, ScopedIsaSelectsTheVariant) {
  {
    ScopedIsa pin(Isa::Avx2);
    EXPECT_STREQ(get().name, "avx2");
    EXPECT_STREQ(isa_name(), "avx2");
  }
  if (isa_available(Isa::Avx512)) {
    ScopedIsa pin(Isa::Avx512);
    EXPECT_STREQ(get().name, "avx512");
  }
}
