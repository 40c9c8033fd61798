// Deterministic random tensors and closeness checks shared by the tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "qdit/core/tensor.h"

namespace qdit::testing {

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

inline float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_vector(), y = b.to_vector();
  float m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

// Asserts max|a-b| <= rel * max(1, max|ref|) and equal shapes.
inline void expect_close(const Tensor& got, const Tensor& ref, float rel, const std::string& what = "") {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const float tol = rel * std::max(1.0f, max_abs(ref));
  const float err = max_abs_diff(got, ref);
  EXPECT_LE(err, tol) << what << ": max abs err " << err << " > tol " << tol;
}

}  // namespace qdit::testing
