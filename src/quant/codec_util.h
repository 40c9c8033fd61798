// Helpers the scheme codecs share: weight values as f32, float parts in a given dtype, and a row
// decoder that turns a per-row decode function into a kernels::WeightRowDecoder.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "qdit/kernels/gemm.h"
#include "qdit/quant/scheme.h"

namespace qdit::quant {

// [out, in] weight values as f32 (exact for f32/bf16/f16 sources).
std::vector<float> weight_values(const Tensor& w);
// A float part of `shape` in `dtype` (values are already representable in it).
Tensor float_part(const std::vector<float>& values, const Shape& shape, DType dtype);
// Any float part's values as f32.
std::vector<float> part_values(const Tensor& t);
Tensor scalar_one(DType dtype);

// Decoder over precomputed state: decode(row, dst) writes one row of `in` floats.
class FunctionRowDecoder : public kernels::WeightRowDecoder {
 public:
  using RowFn = std::function<void(int64_t row, float* dst)>;
  FunctionRowDecoder(int64_t out, int64_t in, size_t bytes, RowFn fn)
      : out_(out), in_(in), bytes_(bytes), fn_(std::move(fn)) {}
  int64_t rows() const override { return out_; }
  int64_t cols() const override { return in_; }
  size_t stored_bytes() const override { return bytes_; }
  void decode_rows(int64_t n0, int64_t n1, float* dst) const override;

 private:
  int64_t out_, in_;
  size_t bytes_;
  RowFn fn_;
};

// Group size used along in_features: `requested`, or the whole row when the row is shorter.
inline int64_t effective_group(int64_t in, int64_t requested) { return in < requested ? in : requested; }

}  // namespace qdit::quant
