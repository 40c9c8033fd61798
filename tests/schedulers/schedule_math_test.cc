// numpy / torch array-builder replicas, checked on hand-computed values.
#include "qdit/schedulers/schedule_math.h"

#include <gtest/gtest.h>

#include "qdit/core/error.h"

namespace qdit::schedulers {
namespace {

TEST(ScheduleMath, NpLinspace) {
  EXPECT_EQ(np_linspace(0, 999, 5), (std::vector<double>{0, 249.75, 499.5, 749.25, 999}));
  EXPECT_EQ(np_linspace(1000, 1, 1), std::vector<double>{1000});
  EXPECT_TRUE(np_linspace(0, 1, 0).empty());
  // The last element is `stop` exactly even when i*step + start would round elsewhere.
  const auto v = np_linspace(1.0, 0.1, 10);
  EXPECT_EQ(v.back(), 0.1);
  EXPECT_EQ(v[3], 3 * ((0.1 - 1.0) / 9) + 1.0);
  EXPECT_THROW(np_linspace(0, 1, -1), Error);
}

TEST(ScheduleMath, NpArange) {
  EXPECT_EQ(np_arange(1000, 0, -250), (std::vector<double>{1000, 750, 500, 250}));
  EXPECT_EQ(np_arange(0, 1, 0.5), (std::vector<double>{0, 0.5}));
  EXPECT_TRUE(np_arange(0, 1, -1).empty());
  EXPECT_THROW(np_arange(0, 1, 0), Error);
}

TEST(ScheduleMath, NpRoundHalfToEven) {
  EXPECT_EQ(np_round(499.5), 500);
  EXPECT_EQ(np_round(498.5), 498);
  EXPECT_EQ(np_round(-0.5), 0);
  EXPECT_EQ(np_round(1.5), 2);
  EXPECT_EQ(np_round(2.4999), 2);
}

TEST(ScheduleMath, TorchLinspaceFloat32) {
  // Scalar kernel: start + step*i up to half way, end - step*(n-1-i) after.
  const auto a = torch_linspace_f32(0.0001, 0.02, 1000, 0);
  ASSERT_EQ(a.size(), 1000u);
  const float step = (0.02f - 0.0001f) / 999.0f;
  EXPECT_EQ(a[0], 0.0001f);
  EXPECT_EQ(a[499], 0.0001f + step * 499.0f);
  EXPECT_EQ(a[500], 0.02f - step * 499.0f);
  EXPECT_EQ(a[999], 0.02f);
  // Vector kernel (width 8): chunks of 8 built as base + j*step, the tail of 1000 % 16 = 8
  // elements by the scalar formula.
  const auto b = torch_linspace_f32(0.0001, 0.02, 1000, 8);
  EXPECT_EQ(b[8], 0.0001f + step * 8.0f);
  EXPECT_EQ(b[13], (0.0001f + step * 8.0f) + 5.0f * step);
  EXPECT_EQ(b[509], (0.02f - step * 495.0f) + 5.0f * step);
  for (int i = 992; i < 1000; ++i) EXPECT_EQ(b[i], a[i]) << i;
  EXPECT_EQ(torch_linspace_f32(3, 5, 1), std::vector<float>{3.0f});
}

}  // namespace
}  // namespace qdit::schedulers
