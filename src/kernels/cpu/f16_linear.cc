// fp16 compute for Linear layers. No CPU here multiplies fp16 natively in oneDNN, so "fp16
// compute" is emulated exactly: the activation and each decoded weight tile are rounded to fp16
// (RNE) and multiplied by the f32 GEMM, accumulating in f32 — the numerics of an fp16 GEMM with
// f32 accumulation. Float weights are stored as fp16 (half the memory of f32).
#include <immintrin.h>

#include <memory>

#include "qdit/core/error.h"
#include "qdit/core/float_cast.h"
#include "qdit/kernels/cpu/convert.h"
#include "qdit/kernels/gemm.h"

namespace qdit::kernels {

namespace {

// In place: every float becomes the nearest fp16 value (F16C, round to nearest even).
void round_to_f16(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) x[i] = f16_to_f32(f32_to_f16(x[i]));
}

class F16RowDecoder : public WeightRowDecoder {
 public:
  explicit F16RowDecoder(const Tensor& w) : w_(w.contiguous().to(DType::F16).clone(MemTag::Weights)) {
    QDIT_CHECK(w_.dim() == 2, "[linear] fp16 weight must be [N, K], got ", w_.desc());
  }
  int64_t rows() const override { return w_.size(0); }
  int64_t cols() const override { return w_.size(1); }
  size_t stored_bytes() const override { return w_.nbytes(); }
  void decode_rows(int64_t n0, int64_t n1, float* dst) const override {
    cpu::f16_to_f32_buffer(w_.data<uint16_t>() + n0 * cols(), dst, (n1 - n0) * cols());
  }

 private:
  Tensor w_;
};

class F16RoundingDecoder : public WeightRowDecoder {
 public:
  explicit F16RoundingDecoder(std::unique_ptr<WeightRowDecoder> inner) : inner_(std::move(inner)) {}
  int64_t rows() const override { return inner_->rows(); }
  int64_t cols() const override { return inner_->cols(); }
  size_t stored_bytes() const override { return inner_->stored_bytes(); }
  void decode_rows(int64_t n0, int64_t n1, float* dst) const override {
    inner_->decode_rows(n0, n1, dst);
    round_to_f16(dst, (n1 - n0) * cols());
  }

 private:
  std::unique_ptr<WeightRowDecoder> inner_;
};

class F16ComputeLinear : public LinearKernel {
 public:
  F16ComputeLinear(std::unique_ptr<WeightRowDecoder> decoder, const Tensor& bias)
      : inner_(std::make_unique<F16RoundingDecoder>(std::move(decoder)), bias, false) {}
  int64_t in_features() const override { return inner_.in_features(); }
  int64_t out_features() const override { return inner_.out_features(); }
  size_t weight_bytes() const override { return inner_.weight_bytes(); }
  void forward_into(const Tensor& x, Tensor& y, const GemmOptions& opt) const override {
    Tensor xr = x.contiguous().to(DType::F32).clone(MemTag::Workspace);
    round_to_f16(xr.data<float>(), xr.numel());
    inner_.forward_into(xr, y, opt);
  }

 private:
  TiledLinear inner_;
};

}  // namespace

std::unique_ptr<LinearKernel> make_f16_compute_linear(std::unique_ptr<WeightRowDecoder> decoder, const Tensor& bias) {
  return std::make_unique<F16ComputeLinear>(std::move(decoder), bias);
}

std::unique_ptr<WeightRowDecoder> make_f16_row_decoder(const Tensor& weight) {
  return std::make_unique<F16RowDecoder>(weight);
}

}  // namespace qdit::kernels
