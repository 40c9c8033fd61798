// Data movement: concatenation and materialising strided views.
#pragma once
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::kernels {

// Concatenate along `dim`; all other dims must match; result contiguous, dtype of the inputs.
Tensor concat(const std::vector<Tensor>& parts, int64_t dim);
// Contiguous copy of any view (e.g. a permutation); same as Tensor::contiguous but always copies.
Tensor materialize(const Tensor& view);

}  // namespace qdit::kernels
