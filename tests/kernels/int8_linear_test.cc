// Int8Linear (int8dq's W8A8 GEMM) against a plain loop over the same int8 codes: every M from a
// single token up (and several row blocks), odd K/N, bias, activations and residual accumulate.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/kernels/gemm.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::expect_close;
using qdit::testing::random_tensor;

namespace {

// act((acc * w_scale[n]) * x_scale[m] + b[n]) over the codes quantize_rows_s8 produces.
Tensor int8_reference(const Tensor& x, const Tensor& qw, const std::vector<float>& ws, const Tensor& b, Activation act) {
  const int64_t m = x.size(0), k = x.size(1), n = qw.size(0);
  std::vector<int8_t> q(static_cast<size_t>(m * k));
  std::vector<float> xs(static_cast<size_t>(m));
  quantize_rows_s8(x.data<float>(), m, k, 127.5f, q.data(), xs.data());
  Tensor y = Tensor::empty({m, n}, DType::F32);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int32_t acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += int32_t{q[i * k + p]} * qw.data<int8_t>()[j * k + p];
      const float v = (static_cast<float>(acc) * ws[j]) * xs[i] + (b.defined() ? b.data<float>()[j] : 0.0f);
      y.data<float>()[i * n + j] = apply_activation(act, v);
    }
  return y;
}

Tensor random_codes(int64_t n, int64_t k, uint32_t seed) {
  Tensor r = random_tensor({n, k}, seed, -128.0f, 127.99f);
  Tensor c = Tensor::empty({n, k}, DType::I8);
  for (int64_t i = 0; i < r.numel(); ++i) c.data<int8_t>()[i] = static_cast<int8_t>(std::floor(r.data<float>()[i]));
  return c;
}

}  // namespace

class Int8LinearShapes : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(Int8LinearShapes, MatchesLoopOverCodes) {
  auto [m, k, n] = GetParam();
  Tensor qw = random_codes(n, k, 1);
  Tensor ws_t = random_tensor({n}, 2, 1e-3f, 2e-3f);
  std::vector<float> ws = ws_t.to_vector();
  Tensor b = random_tensor({n}, 3);
  Tensor x = random_tensor({m, k}, 4, -3.0f, 3.0f);
  {
    Int8Linear lin(qw, ws_t, b);
    const std::string what = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
    for (Activation a : {Activation::None, Activation::GeluTanh, Activation::GeluErf, Activation::Silu, Activation::Relu}) {
      Tensor ref = int8_reference(x, qw, ws, b, a);
      expect_close(lin.forward(x, {a}), ref, 1e-5f, what + " " + activation_name(a));
      // Residual accumulate: y += act(...).
      Tensor y = random_tensor({m, n}, 5);
      Tensor expected = ref.clone();
      for (int64_t i = 0; i < y.numel(); ++i) expected.data<float>()[i] += y.data<float>()[i];
      lin.forward_into(x, y, {a, true});
      expect_close(y, expected, 1e-5f, what + " accumulate " + activation_name(a));
    }
    Int8Linear nobias(qw, ws_t, Tensor());
    expect_close(nobias.forward(x), int8_reference(x, qw, ws, Tensor(), Activation::None), 1e-5f, what + " no bias");
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, Int8LinearShapes,
                         ::testing::Values(std::make_tuple(1, 64, 48), std::make_tuple(3, 37, 5),
                                           std::make_tuple(17, 130, 77), std::make_tuple(64, 256, 96),
                                           std::make_tuple(300, 72, 40), std::make_tuple(200, 32, 4100),
                                           // several blocks of rows in the AMX kernel (about 1 MiB of codes each)
                                           std::make_tuple(290, 4100, 36),
                                           // k = 1152 in one pass, 1216 in two (passes of at most 1152)
                                           std::make_tuple(70, 1152, 40), std::make_tuple(70, 1216, 40),
                                           // outputs of 4 MiB and more: streamed (non-temporal) stores, with
                                           // 64-byte aligned rows and with rows at odd offsets
                                           std::make_tuple(1024, 32, 1024), std::make_tuple(1040, 24, 1100)));

// Pre-activations of a few thousand (both signs): the fused epilogue's exp/reciprocal clamps must
// keep GELU/SiLU at their limits (x or 0), never inf or NaN.
TEST(Int8Linear, LargePreActivations) {
  const int64_t m = 40, k = 96, n = 48;
  Tensor qw = random_codes(n, k, 11);
  Tensor ws_t = random_tensor({n}, 12, 0.5f, 2.0f);
  std::vector<float> ws = ws_t.to_vector();
  Tensor x = random_tensor({m, k}, 13, -3.0f, 3.0f);
  Int8Linear lin(qw, ws_t, Tensor());
  for (Activation a : {Activation::GeluTanh, Activation::GeluErf, Activation::Silu, Activation::Relu}) {
    Tensor ref = int8_reference(x, qw, ws, Tensor(), a);
    Tensor got = lin.forward(x, {a});
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_TRUE(std::isfinite(got.data<float>()[i])) << activation_name(a);
    expect_close(got, ref, 1e-5f, activation_name(a));
  }
}

// A bf16 output is the f32 result rounded to nearest even, element for element: partial last
// panel (odd N), several row blocks, and an output large enough for the streamed stores. GELU is
// computed to bf16 precision there: the correctly rounded value or one ulp from it, the rounding
// itself decided exactly for nearly all elements.
TEST(Int8Linear, Bf16OutputIsTheRoundedF32Result) {
  for (auto [m, k, n] : {std::make_tuple(45, 130, 77), std::make_tuple(2048, 64, 1024), std::make_tuple(300, 72, 1100)}) {
    Tensor qw = random_codes(n, k, 31);
    // Weight scales up to 0.1 put GELU's input past +-100: both clamps of its exponent.
    Tensor ws_t = random_tensor({n}, 32, 1e-3f, n == 1100 ? 0.1f : 2e-3f);
    Tensor b = random_tensor({n}, 33);
    Tensor x = random_tensor({m, k}, 34, -3.0f, 3.0f);
    Int8Linear lin(qw, ws_t, b);
    ASSERT_TRUE(lin.writes_bf16());
    for (Activation a : {Activation::None, Activation::GeluTanh}) {
      const Tensor want = lin.forward(x, {a}).to(DType::BF16);
      Tensor got = Tensor::empty({m, n}, DType::BF16);
      lin.forward_into(x, got, {a});
      int64_t off_by_one = 0;
      for (int64_t i = 0; i < got.numel(); ++i) {
        const uint16_t g = got.data<uint16_t>()[i], w = want.data<uint16_t>()[i];
        if (a == Activation::None || g == w) {
          ASSERT_EQ(g, w) << m << "x" << k << "x" << n << " " << activation_name(a) << " element " << i;
          continue;
        }
        // Same sign, adjacent codes: one ulp apart.
        ASSERT_EQ(std::abs(static_cast<int>(g) - static_cast<int>(w)), 1) << m << "x" << k << "x" << n << " element " << i;
        ++off_by_one;
      }
      EXPECT_LT(off_by_one, got.numel() / 20) << m << "x" << k << "x" << n << " " << activation_name(a);
    }
    Tensor y = Tensor::empty({m, n}, DType::BF16);
    EXPECT_THROW(lin.forward_into(x, y, {Activation::None, true}), qdit::Error);
  }
}

// bf16 activations (bf16 compute): a bf16 input is quantized from its own values, exactly as the
// f32 tensor holding them; only the bf16_activations Linear asks producers for bf16.
TEST(Int8Linear, Bf16InputQuantizesItsValues) {
  const int64_t m = 70, k = 200, n = 90;
  Tensor qw = random_codes(n, k, 41);
  Tensor ws_t = random_tensor({n}, 42, 1e-3f, 2e-3f);
  Tensor b = random_tensor({n}, 43);
  const Tensor xb = random_tensor({m, k}, 44, -3.0f, 3.0f).to(DType::BF16);
  Int8Linear lin(qw, ws_t, b, 127.5f, true);
  EXPECT_TRUE(lin.rounds_input_to_bf16());
  EXPECT_FALSE(Int8Linear(qw, ws_t, b).rounds_input_to_bf16());
  const Tensor ref = int8_reference(xb.to(DType::F32), qw, ws_t.to_vector(), b, Activation::GeluTanh);
  expect_close(lin.forward(xb, {Activation::GeluTanh}), ref, 1e-5f, "bf16 input");
  EXPECT_EQ(lin.forward(xb).to_vector(), lin.forward(xb.to(DType::F32)).to_vector());
}

// Quantized-row buffers refuse layouts the AMX tiles cannot hold.
TEST(Int8Linear, QuantizedRowLayoutsAreChecked) {
  EXPECT_THROW(make_quantized_rows(4, 10, RowQuantSpec{127.5f, 10, 16, true}), qdit::Error);   // lda % 64
  EXPECT_THROW(make_quantized_rows(4, 10, RowQuantSpec{127.5f, 64, 8, true}), qdit::Error);    // 16-row groups
  EXPECT_THROW(make_quantized_rows(4, 100, RowQuantSpec{127.5f, 64, 16, false}), qdit::Error); // lda < k
  const QuantizedRows q = make_quantized_rows(17, 70, RowQuantSpec{127.5f, 128, 32, true});
  EXPECT_EQ(q.q.shape(), (Shape{32, 128}));
  for (int64_t r = 17; r < 32; ++r)
    for (int64_t c = 0; c < 128; ++c) ASSERT_EQ(q.code(r, c), 0) << "padding row " << r;
}

// DiT's gated residual in the epilogue: y += gate[b] * act(x W^T + b) with gate a strided [B, N]
// view (a chunk of the AdaLN modulation), each batch item owning S consecutive rows.
TEST(Int8Linear, GatedResidualInTheEpilogue) {
  const int64_t batch = 2, seq = 150, k = 96, n = 80;
  Tensor qw = random_codes(n, k, 21);
  Tensor ws_t = random_tensor({n}, 22, 1e-3f, 2e-3f);
  std::vector<float> ws = ws_t.to_vector();
  Tensor b = random_tensor({n}, 23);
  Tensor x = random_tensor({batch, seq, k}, 24, -3.0f, 3.0f);
  Tensor mod = random_tensor({batch, 3, n}, 25, -2.0f, 2.0f);
  const Tensor gate = mod.select(1, 1);  // [B, N], row stride 3N
  Int8Linear lin(qw, ws_t, b);
  for (Activation a : {Activation::None, Activation::GeluTanh}) {
    Tensor y = random_tensor({batch, seq, n}, 26);
    GemmOptions opt;
    opt.activation = a;
    opt.accumulate = true;
    opt.gate = &gate;
    if (!lin.fuses_gate()) {  // oneDNN path: nn::Linear runs the gate as its own pass instead
      EXPECT_THROW(lin.forward_into(x, y, opt), qdit::Error);
      continue;
    }
    const Tensor ref = int8_reference(x.reshape({batch * seq, k}), qw, ws, b, a);
    Tensor expected = y.clone();
    for (int64_t r = 0; r < batch * seq; ++r)
      for (int64_t j = 0; j < n; ++j)
        expected.data<float>()[r * n + j] += mod.data<float>()[((r / seq) * 3 + 1) * n + j] * ref.data<float>()[r * n + j];
    lin.forward_into(x, y, opt);
    expect_close(y, expected, 1e-5f, std::string("gated ") + activation_name(a));
  }
}
