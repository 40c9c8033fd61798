// Activations quantized per token for an int8 GEMM (int8dq), handed from the op that produced them
// (a norm) to the Linear that multiplies them, so the f32 rows are never written out in between.
#pragma once
#include <cstdint>

#include "qdit/core/tensor.h"

namespace qdit::kernels {

// The layout a per-token int8 kernel reads: scale = max(amax / divisor, f32 eps) per row, rows of
// q lda bytes apart (zero past k), and as many rows as m rounded up to row_align (zero rows).
struct RowQuantSpec {
  float divisor = 127.5f;
  int64_t lda = 0;
  int64_t row_align = 1;
  int64_t padded_rows(int64_t m) const { return (m + row_align - 1) / row_align * row_align; }
};

// m rows of k values quantized per RowQuantSpec: q s8 [spec.padded_rows(m), spec.lda], scales f32 [m].
struct QuantizedRows {
  Tensor q, scales;
  int64_t m = 0, k = 0;
};

// Empty buffers for m rows of k values in `spec`'s layout, padding (columns past k, rows past m) zeroed.
QuantizedRows make_quantized_rows(int64_t m, int64_t k, const RowQuantSpec& spec);

}  // namespace qdit::kernels
