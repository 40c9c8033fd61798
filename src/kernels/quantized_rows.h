// Activations quantized per token for an int8 GEMM (int8dq), handed from the op that produced them
// (a norm) to the Linear that multiplies them, so the f32 rows are never written out in between.
#pragma once
#include <cstdint>

#include "qdit/core/tensor.h"

namespace qdit::kernels {

// The layout a per-token int8 kernel reads: scale = max(amax / divisor, f32 eps) per row, rows of
// lda bytes (zero past k), as many rows as m rounded up to row_align (zero rows). Row-major, or
// with amx_tiles as AMX A tiles: groups of 16 rows stored [lda / 64][16 rows][64 bytes], so that
// each tile the GEMM loads is one contiguous KiB (lda a multiple of 64, row_align of 16).
struct RowQuantSpec {
  float divisor = 127.5f;
  int64_t lda = 0;
  int64_t row_align = 1;
  bool amx_tiles = false;
  int64_t padded_rows(int64_t m) const { return (m + row_align - 1) / row_align * row_align; }
  // Byte offset of element (r, c) in q.
  int64_t offset(int64_t r, int64_t c) const {
    if (!amx_tiles) return r * lda + c;
    return ((r / 16 * (lda / 64) + c / 64) * 16 + r % 16) * 64 + c % 64;
  }
};

// m rows of k values quantized per `spec`: q s8 [spec.padded_rows(m), spec.lda], scales f32 [m].
struct QuantizedRows {
  Tensor q, scales;
  int64_t m = 0, k = 0;
  RowQuantSpec spec;
  int8_t code(int64_t r, int64_t c) const { return q.data<int8_t>()[spec.offset(r, c)]; }
};

// Buffers for m rows of k values in `spec`'s layout, the padding rows (past m) zeroed.
QuantizedRows make_quantized_rows(int64_t m, int64_t k, const RowQuantSpec& spec);
// Quantizes row r (k values) into `out` as quantize_rows_s8 does, zero past k.
void quantize_row(const float* x, int64_t r, QuantizedRows& out);
// Every row of x [m, k]: f32, or bf16 (the codes and scales of the same values widened to f32).
void quantize_rows(const Tensor& x, QuantizedRows& out);

}  // namespace qdit::kernels
