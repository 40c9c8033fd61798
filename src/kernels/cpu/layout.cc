#include <cstring>

#include "qdit/core/error.h"
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
    Tensor p = p0.contiguous();
    const int64_t row = p.shape()[dim] * inner;
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
