#include <gtest/gtest.h>

#include <functional>

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

// Copies of views (row-wise fast path, parallel over rows) and casts through them agree with an
// element-by-element reading of the view, for the dtype pairs the models use.
TEST(Tensor, StridedCopiesAndCastsMatchElementwise) {
  const Shape shape{3, 70, 5, 24};  // 1050 rows of 24: several parallel chunks
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.37f * static_cast<float>(i % 977) - 100.0f + 1e-3f * (i % 7);
  const Tensor base = Tensor::from_vector(v, shape);
  const std::vector<std::function<Tensor(const Tensor&)>> views = {
      [](const Tensor& t) { return t.permute({0, 2, 1, 3}); },  // head split
      [](const Tensor& t) { return t.slice(3, 5, 21); },        // column slice (fused q/k/v)
      [](const Tensor& t) { return t.slice(1, 3, 60); },
      [](const Tensor& t) { return t.permute({3, 1, 0, 2}); },  // last dim strided: generic path
      [](const Tensor& t) { return t.slice(3, 7, 8); },         // last dim of size 1
  };
  for (size_t vi = 0; vi < views.size(); ++vi) {
    for (DType from : {DType::F32, DType::BF16, DType::F16}) {
      const Tensor view = views[vi](base.to(from));
      ASSERT_FALSE(view.is_contiguous());
      for (DType to : {DType::F32, DType::BF16, DType::F16}) {
        const Tensor got = to == from ? view.contiguous() : view.to(to);
        ASSERT_TRUE(got.is_contiguous());
        ASSERT_EQ(got.shape(), view.shape());
        for (int64_t i = 0; i < got.numel(); ++i) {
          const float want = Tensor::from_vector({view.item_f32(i)}, {1}).to(to).item_f32(0);
          ASSERT_EQ(got.item_f32(i), want) << "view " << vi << " " << dtype_name(from) << "->" << dtype_name(to)
                                           << " at " << i;
        }
      }
    }
  }
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
