// nn::joint_attention (SD3/AuraFlow streams without concatenation) against the unfused path it
// replaces: multi_head_attention on the concatenated streams, then the rows of each stream; and
// multi_head_attention on q/k/v given partly in bf16.
#include <gtest/gtest.h>

#include <random>

#include "qdit/kernels/layout.h"
#include "qdit/nn/attention.h"

namespace qdit::nn {
namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

TEST(JointAttention, EqualsConcatenatedThenSplit) {
  const int64_t B = 2, H = 4, D = 40, N = 50, L = 19;
  // Column slices of one fused q/k/v output per stream, as LinearGroup's outputs are.
  const Tensor img = random_tensor({B, N, 3 * H * D}, 1), txt = random_tensor({B, L, 3 * H * D}, 2);
  auto part = [&](const Tensor& t, int64_t i) { return t.slice(2, i * H * D, (i + 1) * H * D).contiguous(); };
  const std::vector<Tensor> q = {part(img, 0), part(txt, 0)}, k = {part(img, 1), part(txt, 1)},
                            v = {part(img, 2), part(txt, 2)};
  for (DType compute : {DType::F32, DType::BF16}) {
    const Tensor a = multi_head_attention(kernels::concat(q, 1), kernels::concat(k, 1), kernels::concat(v, 1), H,
                                          nullptr, 0.0f, compute);
    const std::vector<Tensor> out = joint_attention(q, k, v, H, compute);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].shape(), (Shape{B, N, H * D}));
    EXPECT_EQ(out[1].shape(), (Shape{B, L, H * D}));
    EXPECT_EQ(out[0].to_vector(), a.slice(1, 0, N).to_vector()) << dtype_name(compute);
    EXPECT_EQ(out[1].to_vector(), a.slice(1, N, N + L).to_vector()) << dtype_name(compute);
  }
}

// Joint attention with one stream's q/k/v in bf16 (a projection that writes bf16) and the other's
// f32: the all-f32 result.
TEST(JointAttention, MixedBf16PartsEqualTheF32Ones) {
  const int64_t B = 1, H = 2, D = 32, N = 21, L = 9;
  const Tensor img = random_tensor({B, N, 3 * H * D}, 6), txt = random_tensor({B, L, 3 * H * D}, 7);
  auto part = [&](const Tensor& t, int64_t i) { return t.slice(2, i * H * D, (i + 1) * H * D).contiguous(); };
  auto bf = [](const Tensor& t) { return t.to(DType::BF16); };
  const std::vector<Tensor> want = joint_attention({part(img, 0), part(txt, 0)}, {part(img, 1), part(txt, 1)},
                                                   {part(img, 2), part(txt, 2)}, H, DType::BF16);
  const std::vector<Tensor> got = joint_attention({bf(part(img, 0)), part(txt, 0)}, {bf(part(img, 1)), part(txt, 1)},
                                                  {bf(part(img, 2)), part(txt, 2)}, H, DType::BF16);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].to_vector(), want[0].to_vector());
  EXPECT_EQ(got[1].to_vector(), want[1].to_vector());
}

// bf16 compute with some of q/k/v handed already rounded to bf16 (projections that write bf16):
// the same result as all of them f32, which the kernel rounds the same way.
TEST(MultiHeadAttention, Bf16InputsEqualTheF32OnesTheyRound) {
  const int64_t B = 2, H = 3, D = 24, S = 37, L = 11;
  const Tensor q = random_tensor({B, S, H * D}, 3), k = random_tensor({B, L, H * D}, 4), v = random_tensor({B, L, H * D}, 5);
  const Tensor want = multi_head_attention(q, k, v, H, nullptr, 0.0f, DType::BF16);
  auto bf = [](const Tensor& t) { return t.to(DType::BF16); };
  EXPECT_EQ(multi_head_attention(bf(q), bf(k), bf(v), H, nullptr, 0.0f, DType::BF16).to_vector(), want.to_vector());
  EXPECT_EQ(multi_head_attention(bf(q), k, v, H, nullptr, 0.0f, DType::BF16).to_vector(), want.to_vector());
  EXPECT_EQ(multi_head_attention(q, bf(k), bf(v), H, nullptr, 0.0f, DType::BF16).to_vector(), want.to_vector());
}

}  // namespace
}  // namespace qdit::nn
