// Helpers the scheme codecs share: weight values as f32, float parts in a given dtype, and a row
// decoder that turns a per-row decode function into a kernels::WeightRowDecoder.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"
#include "qdit/quant/scheme.h"

namespace qdit::quant {

// [out, in] weight values as f32 (exact for f32/bf16/f16 sources).
std::vector<float> weight_values(const Tensor& w);
// The same values as a contiguous f32 tensor, converted with the vectorised, threaded converters;
// allocated through CpuAllocator (tag Other) so that this transient copy (168 MB for a T5-XXL
// 10240 x 4096 layer) is tracked and the planner sees it.
Tensor weight_values_fast(const Tensor& w);
// A float part of `shape` in `dtype` (values are already representable in it).
Tensor float_part(const std::vector<float>& values, const Shape& shape, DType dtype);
// Any float part's values as f32.
std::vector<float> part_values(const Tensor& t);
Tensor scalar_one(DType dtype);

// Decoder over precomputed state: decode(row, dst) writes one row of `in` floats; the optional
// decode_bf16(row, dst) writes the same row as bf16 bits (identical to rounding decode's values).
class FunctionRowDecoder : public kernels::WeightRowDecoder {
 public:
  using RowFn = std::function<void(int64_t row, float* dst)>;
  using RowFnBf16 = std::function<void(int64_t row, uint16_t* dst)>;
  FunctionRowDecoder(int64_t out, int64_t in, size_t bytes, RowFn fn, RowFnBf16 fn_bf16 = nullptr)
      : out_(out), in_(in), bytes_(bytes), fn_(std::move(fn)), fn_bf16_(std::move(fn_bf16)) {}
  int64_t rows() const override { return out_; }
  int64_t cols() const override { return in_; }
  size_t stored_bytes() const override { return bytes_; }
  void decode_rows(int64_t n0, int64_t n1, float* dst) const override;
  void decode_rows_bf16(int64_t n0, int64_t n1, uint16_t* dst) const override;
  // The 4-bit form of the same weight (pointers into state the row functions keep alive).
  void set_lut4_matrix(const kernels::qk::Lut4Matrix& m) { lut4_ = m; }
  const kernels::qk::Lut4Matrix* lut4_matrix() const override { return lut4_ ? &*lut4_ : nullptr; }

 private:
  int64_t out_, in_;
  size_t bytes_;
  RowFn fn_;
  RowFnBf16 fn_bf16_;
  std::optional<kernels::qk::Lut4Matrix> lut4_;
};

// The vectorised kernels' rounding for weights of dtype d; false for dtypes they do not cover
// (f16), where a scheme keeps its reference codec.
inline bool fast_round(DType d, kernels::qk::Round* r) {
  if (d == DType::F32 || d == DType::BF16) {
    *r = d == DType::BF16 ? kernels::qk::Round::BF16 : kernels::qk::Round::None;
    return true;
  }
  return false;
}

// Row `row` of a contiguous 2-D tensor.
inline const void* row_ptr(const Tensor& w, int64_t row) {
  return static_cast<const char*>(w.raw_data()) + row * w.size(1) * static_cast<int64_t>(dtype_size(w.dtype()));
}

// Runs fn(begin, end) over rows of `in` values on all threads (quantize-on-load).
void parallel_rows(int64_t rows, int64_t in, const std::function<void(int64_t, int64_t)>& fn);

// Group size used along in_features: `requested`, or the whole row when the row is shorter.
inline int64_t effective_group(int64_t in, int64_t requested) { return in < requested ? in : requested; }

}  // namespace qdit::quant
