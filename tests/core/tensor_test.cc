#include <gtest/gtest.h>

#include "qdit/core/error.h"
#include "qdit/core/tensor.h"

using namespace qdit;

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.contiguous().to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor s = t.slice(1, 1, 3);
  EXPECT_EQ(s.to_vector(), (std::vector<float>{1, 2, 4, 5}));
  t.data<float>()[1] = 10;
  EXPECT_EQ(s.item_f32(0), 10);
  EXPECT_EQ(t.select(0, 1).to_vector(), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(t.reshape({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 2, 3}));
}

TEST(Tensor, CastsRoundTrip) {
  Tensor t = Tensor::from_vector({1.0f, -2.5f, 1.00390625f, 3.0f}, {4});
  Tensor b = t.to(DType::BF16);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{1.0f, -2.5f, 1.0f, 3.0f}));
  Tensor h = t.to(DType::F16).to(DType::F32);
  EXPECT_EQ(h.to_vector(), (std::vector<float>{1.0f, -2.5f, 1.00390625f, 3.0f}));
}

TEST(Tensor, ErrorsNameTheOp) {
  Tensor t = Tensor::zeros({2, 3}, DType::F32);
  try {
    t.reshape({4, 2});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[reshape]"), std::string::npos);
  }
  EXPECT_THROW(t.slice(1, 2, 5), Error);
  EXPECT_THROW(t.transpose(0, 1).reshape({6}), Error);
}
