#include "qdit/quant/quantized_linear.h"

#include <algorithm>
#include <cmath>

#include "qdit/core/error.h"
#include "qdit/core/float_cast.h"
#include "qdit/core/parallel.h"

namespace qdit::quant {

namespace {

constexpr float kF32Eps = 1.1920928955078125e-07f;
constexpr float kLlmInt8Threshold = 6.0f;  // BitsAndBytesConfig.llm_int8_threshold default

// torchao's per-token asymmetric int8 (int4dq activations): range forced to contain 0.
void fake_int8_asym_row(float* x, int64_t k) {
  const auto [mn_it, mx_it] = std::minmax_element(x, x + k);
  const float mn = std::min(*mn_it, 0.0f), mx = std::max(*mx_it, 0.0f);
  const float s = std::max((mx - mn) / 255.0f, kF32Eps);
  const float zp = std::clamp(-128.0f - std::nearbyint(mn / s), -128.0f, 127.0f);
  const float inv = 1.0f / s;
  for (int64_t j = 0; j < k; ++j) x[j] = (std::clamp(std::nearbyint(x[j] * inv) + zp, -128.0f, 127.0f) - zp) * s;
}

void fake_fp8(float* x, int64_t n, float amax) {
  const float s = amax / 448.0f;
  if (s == 0.0f) return;  // an all-zero activation stays zero
  for (int64_t j = 0; j < n; ++j) x[j] = fp8_e4m3fn_to_f32(f32_to_fp8_e4m3fn(std::clamp(x[j] / s, -448.0f, 448.0f))) * s;
}

float abs_max(const float* x, int64_t n) {
  float a = 0.0f;
  for (int64_t j = 0; j < n; ++j) a = std::max(a, std::fabs(x[j]));
  return a;
}

// LLM.int8: columns holding any |x| >= threshold stay in float; the rest of each row is
// quantized with the row's absmax over those columns (127 / absmax, round half even).
void fake_llm_int8(float* x, int64_t m, int64_t k) {
  std::vector<char> outlier(static_cast<size_t>(k), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (std::fabs(x[i * k + j]) >= kLlmInt8Threshold) outlier[j] = 1;
  parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      float* row = x + i * k;
      float a = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        if (!outlier[j]) a = std::max(a, std::fabs(row[j]));
      if (a == 0.0f) continue;
      const float f = 127.0f / a;
      for (int64_t j = 0; j < k; ++j)
        if (!outlier[j]) row[j] = std::nearbyint(row[j] * f) * (a / 127.0f);
    }
  });
}

// Quantize-dequantize the activation, then the wrapped weight-only kernel.
class ActivationQuantLinear : public kernels::LinearKernel {
 public:
  ActivationQuantLinear(ActivationQuant mode, std::unique_ptr<kernels::LinearKernel> inner)
      : mode_(mode), inner_(std::move(inner)) {}
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  void forward_into(const Tensor& x, Tensor& y, const kernels::GemmOptions& opt) const override {
    const int64_t k = in_features();
    QDIT_CHECK(x.dim() >= 1 && x.size(-1) == k, "[quant linear] input ", x.desc(), " does not end in in_features=", k);
    Tensor xq = x.contiguous().to(DType::F32).clone(MemTag::Workspace);
    fake_quantize_activation(mode_, xq.data<float>(), xq.numel() / k, k);
    inner_->forward_into(xq, y, opt);
  }

 private:
  ActivationQuant mode_;
  std::unique_ptr<kernels::LinearKernel> inner_;
};

}  // namespace

void fake_quantize_activation(ActivationQuant mode, float* x, int64_t m, int64_t k) {
  switch (mode) {
    case ActivationQuant::None: return;
    case ActivationQuant::Int8PerToken: {
      std::vector<int8_t> q(static_cast<size_t>(m * k));
      std::vector<float> s(static_cast<size_t>(m));
      kernels::quantize_rows_s8(x, m, k, 127.5f, q.data(), s.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j) x[i * k + j] = static_cast<float>(q[i * k + j]) * s[i];
      return;
    }
    case ActivationQuant::Int8PerTokenAsym:
      parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) fake_int8_asym_row(x + i * k, k);
      });
      return;
    case ActivationQuant::Fp8PerTensor: fake_fp8(x, m * k, abs_max(x, m * k)); return;
    case ActivationQuant::Fp8PerRow:
      parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) fake_fp8(x + i * k, k, abs_max(x + i * k, k));
      });
      return;
    case ActivationQuant::LlmInt8: fake_llm_int8(x, m, k); return;
  }
}

std::unique_ptr<kernels::LinearKernel> make_quantized_linear(const QuantizedWeight& q, const Tensor& bias,
                                                             DType compute) {
  QDIT_CHECK(compute == DType::F32 || compute == DType::BF16 || compute == DType::F16,
             "[quant linear] compute dtype must be f32, bf16 or f16, got ", dtype_name(compute));
  const Scheme& s = find_scheme(q.scheme);
  s.validate(q);
  if (s.activation() == ActivationQuant::Int8PerToken)
    return std::make_unique<kernels::Int8Linear>(q.part("_weight_qdata"), q.part("_weight_scale"), bias, 127.5f,
                                                 compute == DType::BF16);
  std::unique_ptr<kernels::LinearKernel> tiled =
      compute == DType::F16 ? kernels::make_f16_compute_linear(s.decoder(q), bias)
                            : std::make_unique<kernels::TiledLinear>(s.decoder(q), bias, compute == DType::BF16);
  if (s.activation() == ActivationQuant::None) return tiled;
  return std::make_unique<ActivationQuantLinear>(s.activation(), std::move(tiled));
}

}  // namespace qdit::quant
