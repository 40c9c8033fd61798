#include <algorithm>
#include <cstring>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/core/profile.h"
#include "qdit/kernels/layout.h"

namespace qdit::kernels {

Tensor concat(const std::vector<Tensor>& parts, int64_t dim) {
  profile::Scope prof("concat");
  QDIT_CHECK(!parts.empty(), "[concat] no inputs");
  const Tensor& first = parts[0];
  if (dim < 0) dim += first.dim();
  QDIT_CHECK(dim >= 0 && dim < first.dim(), "[concat] dim out of range for ", first.desc());
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (const Tensor& p : parts) {
    QDIT_CHECK(p.dim() == first.dim() && p.dtype() == first.dtype(), "[concat] ", p.desc(), " does not match ",
               first.desc());
    for (int64_t d = 0; d < p.dim(); ++d)
      QDIT_CHECK(d == dim || p.shape()[d] == first.shape()[d], "[concat] ", p.desc(), " does not match ",
                 first.desc(), " outside dim ", dim);
    out_shape[dim] += p.shape()[dim];
  }
  Tensor out = Tensor::empty(out_shape, first.dtype());
  const size_t esz = dtype_size(first.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out_shape[d];
  for (int64_t d = dim + 1; d < first.dim(); ++d) inner *= out_shape[d];
  char* dst = static_cast<char*>(out.raw_data());
  const int64_t out_row = out_shape[dim] * inner;
  int64_t col = 0;
  for (const Tensor& p0 : parts) {
    const int64_t row = p0.shape()[dim] * inner;
    if (!p0.is_contiguous() && p0.numel() > 0 && p0.strides().back() == 1) {
      // A strided view with a contiguous last dim (e.g. v as a slice of a fused q/k/v GEMM output):
      // its rows go straight to their place, without a contiguous copy first. A last-dim row never
      // straddles two `row` blocks (row is a multiple of it).
      const int64_t last = p0.shape().back(), nrows = p0.numel() / last;
      const size_t lead = p0.shape().size() - 1;
      const char* src = static_cast<const char*>(p0.raw_data());
      parallel_for(nrows, std::max<int64_t>(1, 32768 / last), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t off = strided_offset(p0.shape(), p0.strides(), r, lead);
          const int64_t i = r * last, o = i / row;
          std::memcpy(dst + (o * out_row + col + i % row) * esz, src + off * static_cast<int64_t>(esz), last * esz);
        }
      });
      col += row;
      continue;
    }
    Tensor p = p0.contiguous();
    const char* src = static_cast<const char*>(p.raw_data());
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + (o * out_row + col) * esz, src + o * row * esz, row * esz);
    col += row;
  }
  return out;
}

Tensor materialize(const Tensor& view) {
  profile::Scope prof("copy");
  return view.clone();
}
}  // namespace qdit::kernels
