// The AMX 4-bit GEMM (kernels/cpu/amx_q4_gemm.h) and TiledLinear's use of it: the kernel's panel
// decode equals the scheme decoder's bf16 rows bit for bit; the Linear equals x (bf16) times the
// dequantized bf16 weight in f32 (within accumulation-order tolerance) for int4wo groups 32 to
// 256, nf4, nf4 with double quantization and fp4, odd shapes, bias / activation / accumulate, one
// and two threads. Without AMX the Linear checks run the whole-weight decode path (the fallback)
// and only the direct kernel calls are skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/amx_q4_gemm.h"
#include "qdit/kernels/cpu/isa.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"
#include "qdit/quant/quantized_linear.h"
#include "qdit/quant/scheme.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::expect_close;
using qdit::testing::random_tensor;
using qdit::kernels::qk::get;
using qdit::kernels::qk::Isa;
using qdit::kernels::qk::Lut4Matrix;
using qdit::kernels::qk::Lut4Run;
using qdit::kernels::qk::Nibbles;
using qdit::kernels::qk::Round;

namespace {

// Same sums in another order (f32 accumulation of bf16 products over K <= 512).
constexpr float kTol = 2e-5f;

struct Case {
  std::string scheme;
  int64_t k;
};

// K a multiple of each scheme's group (nf4: of its 64-block).
const std::vector<Case> kCases = {{"int4wo-32", 96},  {"int4wo-64", 192}, {"int4wo", 384},   {"int4wo-256", 512},
                                  {"int4wo", 128},    {"nf4", 192},       {"nf4_dq", 320},   {"fp4", 128}};

quant::QuantizedWeight quantize(const std::string& scheme, int64_t n, int64_t k, DType dt, uint32_t seed) {
  Tensor w = random_tensor({n, k}, seed);
  return quant::quantize_weight(quant::find_scheme(scheme), dt == DType::F32 ? w : w.to(dt));
}

// The decoded weight as the GEMMs see it: the decoder's bf16 rows, as f32.
Tensor decoded_bf16(const WeightRowDecoder& d) {
  Tensor b = Tensor::empty({d.rows(), d.cols()}, DType::BF16);
  d.decode_rows_bf16(0, d.rows(), b.data<uint16_t>());
  return b.to(DType::F32);
}

Tensor reference(const Tensor& x, const Tensor& w, const Tensor& bias, Activation act) {
  return linear_reference(x.to(DType::BF16).to(DType::F32), w, bias, act);
}

Tensor plus(const Tensor& a, const Tensor& b) {
  Tensor r = a.contiguous().to(DType::F32).clone();
  const Tensor bb = b.contiguous().to(DType::F32);
  for (int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] += bb.data<float>()[i];
  return r;
}

class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : prev_(num_threads()) { set_num_threads(n); }
  ~ScopedThreads() { set_num_threads(prev_); }

 private:
  int prev_;
};

}  // namespace

TEST(AmxQ4, SchemesOfferTheCodeForm) {
  for (const Case& c : kCases) {
    const quant::QuantizedWeight q = quantize(c.scheme, 8, c.k, DType::BF16, 1);
    auto d = quant::find_scheme(c.scheme).decoder(q);
    ASSERT_NE(d->lut4_matrix(), nullptr) << c.scheme;
    EXPECT_EQ(d->lut4_matrix()->n, 8);
    EXPECT_EQ(d->lut4_matrix()->k, c.k);
  }
  // nf4 blocks that do not tile the rows: no code form (the whole-weight decode stays).
  const quant::QuantizedWeight q = quantize("nf4", 8, 96, DType::BF16, 1);
  EXPECT_EQ(quant::find_scheme("nf4").decoder(q)->lut4_matrix(), nullptr);
}

TEST(AmxQ4, DecodeEqualsDecoderBitForBit) {
  if (!cpu::has_avx512_bf16()) GTEST_SKIP() << "needs AVX-512 BF16";
  for (const Case& c : kCases)
    for (DType dt : {DType::BF16, DType::F32})
      for (int64_t n : {1, 17, 40}) {
        const quant::QuantizedWeight q = quantize(c.scheme, n, c.k, dt, 2 + n);
        auto d = quant::find_scheme(c.scheme).decoder(q);
        ASSERT_NE(d->lut4_matrix(), nullptr);
        std::vector<uint16_t> want(static_cast<size_t>(n * c.k)), got(want.size(), 0xFFFF);
        d->decode_rows_bf16(0, n, want.data());
        cpu::amx_q4_decode_rows(*d->lut4_matrix(), 0, n, got.data());
        EXPECT_EQ(got, want) << c.scheme << " " << dtype_name(dt) << " n=" << n;
        // With the scales checked: the hardware-rounded tables.
        Lut4Matrix tame = *d->lut4_matrix();
        cpu::amx_q4_prepare(tame);
        EXPECT_TRUE(tame.tame) << c.scheme;
        std::fill(got.begin(), got.end(), 0xFFFF);
        cpu::amx_q4_decode_rows(tame, 0, n, got.data());
        EXPECT_EQ(got, want) << c.scheme << " " << dtype_name(dt) << " n=" << n << " (tame)";
        if (n > 3) {  // a row range that starts inside a row block
          std::vector<uint16_t> part(static_cast<size_t>((n - 3) * c.k));
          cpu::amx_q4_decode_rows(*d->lut4_matrix(), 3, n, part.data());
          EXPECT_TRUE(std::equal(part.begin(), part.end(), want.begin() + 3 * c.k)) << c.scheme;
        }
      }
}

// Hand-made code forms with scales and zeros the fast table path leaves to the exact one (zero,
// denormal, tiny, huge, inf, NaN), both nibble orders and roundings, against the codec kernel.
TEST(AmxQ4, DecodeSpecialScalesEqualsLut4Kernel) {
  if (!cpu::has_avx512_bf16()) GTEST_SKIP() << "needs AVX-512 BF16";
  const int64_t n = 20, k = 128, group = 32, ng = k / group;
  const std::vector<float> specials = {0.0f, -0.0f, 1e-39f, 3e-36f, 7.9e-31f, 1.2e30f, 3e37f, INFINITY, NAN, -0.0123f};
  std::vector<uint8_t> codes(static_cast<size_t>(n * k / 2));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(i * 37 + 11);
  std::vector<float> scale(static_cast<size_t>(n * ng)), zero(scale.size());
  for (size_t i = 0; i < scale.size(); ++i) {
    scale[i] = i % 3 == 0 ? specials[i % specials.size()] : 0.01f * static_cast<float>(i + 1);
    zero[i] = i % 4 == 1 ? specials[(i / 4) % specials.size()] : -0.5f + 0.001f * static_cast<float>(i);
  }
  static const float kBase[16] = {0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1};
  for (Nibbles layout : {Nibbles::LowFirst, Nibbles::HighFirst})
    for (Round round : {Round::None, Round::BF16})
      for (bool with_zero : {false, true}) {
        Lut4Matrix mat;
        mat.codes = codes.data();
        mat.row_bytes = k / 2;
        mat.layout = layout;
        mat.n = n;
        mat.k = k;
        mat.group = group;
        mat.base = kBase;
        mat.scale = scale.data();
        mat.scale_row = ng;
        mat.scale_group = 1;
        mat.zero = with_zero ? zero.data() : nullptr;
        mat.zero_row = 1;
        mat.zero_group = n;
        mat.round = round;
        std::vector<uint16_t> want(static_cast<size_t>(n * k)), got(want.size());
        for (int64_t r = 0; r < n; ++r) {
          Lut4Run run;
          run.bytes = codes.data() + r * k / 2;
          run.layout = layout;
          run.n = k;
          run.group = run.first_group = group;
          run.base = kBase;
          run.scale = scale.data() + r * ng;
          run.scale_stride = 1;
          run.zero = with_zero ? zero.data() + r : nullptr;
          run.zero_stride = n;
          run.round = round;
          get(Isa::Avx512).lut4_bf16(run, want.data() + r * k);
        }
        cpu::amx_q4_prepare(mat);
        EXPECT_FALSE(mat.tame);
        cpu::amx_q4_decode_rows(mat, 0, n, got.data());
        EXPECT_EQ(got, want) << "layout=" << static_cast<int>(layout) << " round=" << static_cast<int>(round)
                             << " zero=" << with_zero;
      }
}

// The kernel itself, any M (1 to a few blocks), N not a multiple of 16 or 32, with and without
// bias and accumulation.
TEST(AmxQ4, KernelMatchesReference) {
  if (!cpu::has_amx_bf16()) GTEST_SKIP() << "needs AMX-BF16";
  for (const Case& c : kCases)
    for (int threads : {1, 2}) {
      ScopedThreads st(threads);
      const int64_t n = c.k == 96 ? 40 : 72;
      const quant::QuantizedWeight q = quantize(c.scheme, n, c.k, DType::BF16, 7);
      auto d = quant::find_scheme(c.scheme).decoder(q);
      const Tensor w = decoded_bf16(*d);
      Lut4Matrix mat = *d->lut4_matrix();
      cpu::amx_q4_prepare(mat);
      for (int64_t m : {1, 5, 33, 70}) {
        const Tensor x = random_tensor({m, c.k}, 11 + m);
        const Tensor bias = random_tensor({n}, 13);
        for (bool with_bias : {false, true})
          for (bool acc : {false, true}) {
            const Tensor b = with_bias ? bias : Tensor();
            Tensor y = acc ? random_tensor({m, n}, 17) : Tensor::zeros({m, n}, DType::F32);
            Tensor want = reference(x, w, b, Activation::None);
            if (acc) want = plus(want, y);
            cpu::amx_q4_linear(mat, x.data<float>(), m, with_bias ? bias.data<float>() : nullptr, acc,
                               y.data<float>());
            expect_close(y, want, kTol,
                         c.scheme + " m=" + std::to_string(m) + " bias=" + std::to_string(with_bias) +
                             " acc=" + std::to_string(acc) + " threads=" + std::to_string(threads));
          }
      }
    }
}

// Long rows: panels decoded in several groups (about 0.6 MiB each) while the previous group's
// tiles run.
TEST(AmxQ4, KernelManyPanelGroups) {
  if (!cpu::has_amx_bf16()) GTEST_SKIP() << "needs AMX-BF16";
  for (const char* scheme : {"int4wo", "nf4"})
    for (int threads : {1, 2}) {
      ScopedThreads st(threads);
      const int64_t n = 300, k = 4608, m = 37;
      const quant::QuantizedWeight q = quantize(scheme, n, k, DType::BF16, 31);
      auto d = quant::find_scheme(scheme).decoder(q);
      const Tensor x = random_tensor({m, k}, 32);
      const Tensor bias = random_tensor({n}, 33);
      Tensor y = Tensor::empty({m, n}, DType::F32);
      cpu::amx_q4_linear(*d->lut4_matrix(), x.data<float>(), m, bias.data<float>(), false,
                         y.data<float>());
      expect_close(y, reference(x, decoded_bf16(*d), bias, Activation::None), kTol,
                   std::string(scheme) + " threads=" + std::to_string(threads));
    }
}

// The Linear layer (bf16 compute) as models run it: the AMX kernel where the CPU has AMX, the
// whole-weight decode elsewhere; every epilogue.
TEST(AmxQ4, QuantizedLinearMatchesReference) {
  const std::vector<Activation> acts = {Activation::None, Activation::GeluTanh, Activation::GeluErf, Activation::Silu,
                                        Activation::Relu};
  for (const Case& c : {kCases[2], kCases[0], kCases[5], kCases[6]})
    for (int threads : {1, 2}) {
      ScopedThreads st(threads);
      const int64_t n = 50;
      const quant::QuantizedWeight q = quantize(c.scheme, n, c.k, DType::BF16, 21);
      const Tensor bias = random_tensor({n}, 22);
      auto lin = quant::make_quantized_linear(q, bias, DType::BF16);
      const Tensor w = decoded_bf16(*quant::find_scheme(c.scheme).decoder(q));
      for (int64_t m : {1, 16, 97})
        for (Activation act : acts)
          for (bool acc : {false, true}) {
            const Tensor x = random_tensor({m, c.k}, 23 + m);
            Tensor y = acc ? random_tensor({m, n}, 24) : Tensor::empty({m, n}, DType::F32);
            Tensor want = reference(x, w, bias, act);
            if (acc) want = plus(want, y);
            GemmOptions opt;
            opt.activation = act;
            opt.accumulate = acc;
            lin->forward_into(x, y, opt);
            // oneDNN's activations are close approximations (about 1e-6 relative).
            expect_close(y, want, act == Activation::None ? kTol : 1e-4f,
                         c.scheme + " m=" + std::to_string(m) + " act=" + activation_name(act) +
                             " acc=" + std::to_string(acc) + " threads=" + std::to_string(threads));
          }
    }
}
