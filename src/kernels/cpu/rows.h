// Iteration helper for row-wise kernels: a tensor is seen as rows of its last dimension, and an
// operand broadcast against it (NumPy rules) gets per-row offsets and an inner stride.
#pragma once
#include <vector>

#include "qdit/core/error.h"
#include "qdit/core/tensor.h"

namespace qdit::kernels::cpu {

// Strides of `b` aligned to `shape` (right-aligned, 0 where b broadcasts). Throws if b does not
// broadcast to shape.
inline Shape broadcast_strides(const Tensor& b, const Shape& shape, const char* op) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  QDIT_CHECK(b.dim() <= nd, "[", op, "] operand ", b.desc(), " has more dims than ", shape_str(shape));
  Shape st(nd, 0);
  for (int64_t i = 0; i < b.dim(); ++i) {
    const int64_t d = nd - b.dim() + i;
    const int64_t bs = b.shape()[i];
    QDIT_CHECK(bs == shape[d] || bs == 1, "[", op, "] cannot broadcast ", b.desc(), " to ", shape_str(shape));
    st[d] = bs == 1 ? 0 : b.strides()[i];
  }
  return st;
}

// Offset (in elements) of the first element of row `r` for a tensor of `shape` with `strides`,
// where rows enumerate all dims but the last in row-major order.
inline int64_t row_offset(int64_t r, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) {
    off += (r % shape[d]) * strides[d];
    r /= shape[d];
  }
  return off;
}

}  // namespace qdit::kernels::cpu
