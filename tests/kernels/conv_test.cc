#include <gtest/gtest.h>

#include "qdit/core/error.h"
#include "qdit/kernels/conv.h"
#include "support/random.h"

using namespace qdit;
using namespace qdit::kernels;
using qdit::testing::expect_close;
using qdit::testing::random_tensor;

TEST(Conv, ThreeByThreeAndOneByOneMatchReference) {
  for (auto [ci, co, h, w, k] : {std::make_tuple(3, 5, 7, 9, 3), std::make_tuple(8, 16, 4, 4, 1),
                                 std::make_tuple(4, 3, 5, 6, 3), std::make_tuple(16, 16, 8, 8, 3)}) {
    Tensor x = random_tensor({2, ci, h, w}, 1);
    Tensor wt = random_tensor({co, ci, k, k}, 2);
    Tensor b = random_tensor({co}, 3);
    PackedConv2d conv(wt, b, (k - 1) / 2);
    Tensor ref = conv2d_reference(x, wt, b, (k - 1) / 2);
    expect_close(conv.forward(x), ref, 1e-5f, "conv");
    // A second input size reuses the packed weights.
    Tensor x2 = random_tensor({1, ci, h + 2, w + 1}, 4);
    expect_close(conv.forward(x2), conv2d_reference(x2, wt, b, (k - 1) / 2), 1e-5f, "conv size 2");
  }
  PackedConv2d conv(random_tensor({2, 3, 3, 3}, 1), Tensor(), 1);
  EXPECT_THROW(conv.forward(random_tensor({1, 4, 5, 5}, 1)), Error);
}

TEST(Conv, UpsampleNearest) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  Tensor y = upsample_nearest2x(x);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 4, 6}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6}));
}
