#include "qdit/nn/embeddings.h"

#include <cmath>

#include "qdit/core/error.h"

namespace qdit::nn {

Tensor timestep_embedding(const std::vector<float>& t, int64_t dim, bool flip_sin_to_cos, float shift, float scale,
                          float max_period) {
  const int64_t half = dim / 2;
  QDIT_CHECK(half > 0, "[timestep_embedding] dim ", dim, " too small");
  std::vector<float> freq(half);
  const float neg_log = -static_cast<float>(std::log(static_cast<double>(max_period)));
  for (int64_t k = 0; k < half; ++k) {
    float e = neg_log * static_cast<float>(k);
    e = e / (static_cast<float>(half) - shift);
    freq[k] = std::exp(e);
  }
  const int64_t b = static_cast<int64_t>(t.size());
  Tensor out = Tensor::zeros({b, dim}, DType::F32);
  float* o = out.data<float>();
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t k = 0; k < half; ++k) {
      float arg = t[i] * freq[k];
      arg = scale * arg;
      const float s = std::sin(arg), c = std::cos(arg);
      o[i * dim + k] = flip_sin_to_cos ? c : s;
      o[i * dim + half + k] = flip_sin_to_cos ? s : c;
    }
  }
  return out;
}

Tensor sincos_2d_pos_embed(int64_t dim, int64_t grid_h, int64_t grid_w, float base_size, float interp) {
  QDIT_CHECK(dim % 4 == 0, "[pos_embed] embedding dim ", dim, " must be divisible by 4");
  const int64_t quarter = dim / 4;
  std::vector<double> omega(quarter);
  for (int64_t k = 0; k < quarter; ++k) omega[k] = 1.0 / std::pow(10000.0, static_cast<double>(k) / (dim / 4.0));
  auto coord = [&](int64_t i, int64_t n) {
    // np.arange(n, float32) / (n / base_size) / interpolation_scale, in float32
    const float step = static_cast<float>(static_cast<double>(n) / base_size);
    return static_cast<double>(static_cast<float>(static_cast<float>(i) / step) / interp);
  };
  Tensor out = Tensor::empty({grid_h * grid_w, dim}, DType::F32);
  float* o = out.data<float>();
  for (int64_t r = 0; r < grid_h; ++r)
    for (int64_t c = 0; c < grid_w; ++c) {
      float* row = o + (r * grid_w + c) * dim;
      const double pw = coord(c, grid_w), ph = coord(r, grid_h);
      for (int64_t k = 0; k < quarter; ++k) {
        row[k] = static_cast<float>(std::sin(pw * omega[k]));
        row[quarter + k] = static_cast<float>(std::cos(pw * omega[k]));
        row[2 * quarter + k] = static_cast<float>(std::sin(ph * omega[k]));
        row[3 * quarter + k] = static_cast<float>(std::cos(ph * omega[k]));
      }
    }
  return out;
}

MLP2::MLP2(const WeightBinder& parent, const std::string& name, int64_t in, int64_t hidden, int64_t out,
           kernels::Activation act, const ModuleContext& ctx, const std::string& first, const std::string& second)
    : act_(act) {
  WeightBinder b = parent.sub(name);
  fc1_ = Linear(b, first, in, hidden, true, ctx);
  fc2_ = Linear(b, second, hidden, out, true, ctx);
}

Tensor MLP2::operator()(const Tensor& x) const {
  kernels::GemmOptions opt;
  opt.activation = act_;
  return fc2_(fc1_(x, opt));
}

}  // namespace qdit::nn
