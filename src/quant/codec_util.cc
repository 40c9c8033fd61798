#include "qdit/quant/codec_util.h"

#include <algorithm>
#include <cstring>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/convert.h"

namespace qdit::quant {

std::vector<float> weight_values(const Tensor& w) {
  QDIT_CHECK(w.dim() == 2, "[quant] weight must be 2-D [out, in], got ", w.desc());
  Tensor f = w.contiguous().to(DType::F32);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

Tensor weight_values_fast(const Tensor& w) {
  QDIT_CHECK(w.dim() == 2, "[quant] weight must be 2-D [out, in], got ", w.desc());
  const Tensor c = w.contiguous();
  // Tagged Other, not Workspace: a build-time temporary (also on a streaming prefetch thread during
  // denoising) must go back to the system, not into the denoising loop's RecyclingScope.
  if (c.dtype() != DType::BF16 && c.dtype() != DType::F16) return c.to(DType::F32).clone(MemTag::Other);
  Tensor out = Tensor::empty(c.shape(), DType::F32, MemTag::Other);
  if (c.dtype() == DType::BF16)
    kernels::cpu::bf16_to_f32_buffer(c.data<uint16_t>(), out.data<float>(), c.numel());
  else
    kernels::cpu::f16_to_f32_buffer(c.data<uint16_t>(), out.data<float>(), c.numel());
  return out;
}

Tensor float_part(const std::vector<float>& values, const Shape& shape, DType dtype) {
  Tensor t = Tensor::from_vector(values, shape);
  return (dtype == DType::F32 ? t : t.to(dtype)).clone(MemTag::Weights);
}

std::vector<float> part_values(const Tensor& t) {
  Tensor f = t.contiguous().to(DType::F32);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

Tensor scalar_one(DType dtype) { return float_part({1.0f}, {}, dtype); }

void FunctionRowDecoder::decode_rows(int64_t n0, int64_t n1, float* dst) const {
  parallel_for(n1 - n0, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) fn_(n0 + r, dst + r * in_);
  });
}

void FunctionRowDecoder::decode_rows_bf16(int64_t n0, int64_t n1, uint16_t* dst) const {
  if (!fn_bf16_) return WeightRowDecoder::decode_rows_bf16(n0, n1, dst);
  parallel_for(n1 - n0, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) fn_bf16_(n0 + r, dst + r * in_);
  });
}

void parallel_rows(int64_t rows, int64_t in, const std::function<void(int64_t, int64_t)>& fn) {
  // At least ~16K values per chunk so that small layers do not pay for waking threads.
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(in, 1)), fn);
}

}  // namespace qdit::quant
