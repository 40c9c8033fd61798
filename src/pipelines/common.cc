#include "qdit/pipelines/common.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/kernels/layout.h"

namespace qdit::pipelines {

Tensor seeded_noise(const Shape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  auto uniform = [&] {  // (0, 1]
    return (static_cast<double>(rng() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  };
  for (int64_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double a = 2.0 * M_PI * uniform();
    p[i] = static_cast<float>(r * std::cos(a));
    if (i + 1 < n) p[i + 1] = static_cast<float>(r * std::sin(a));
  }
  return t;
}

Tensor classifier_free_guidance(const Tensor& both_in, float g) {
  QDIT_CHECK(both_in.dim() >= 1 && both_in.size(0) % 2 == 0, "[cfg] batch of ", both_in.desc(), " is not even");
  Tensor both = both_in.contiguous();
  const int64_t half = both.size(0) / 2;
  Shape s = both.shape();
  s[0] = half;
  Tensor out = Tensor::empty(s, DType::F32);
  const int64_t n = out.numel();
  const float* u = both.data<float>();
  const float* c = u + n;
  float* o = out.data<float>();
  for (int64_t i = 0; i < n; ++i) o[i] = u[i] + g * (c[i] - u[i]);
  return out;
}

Tensor duplicate_batch(const Tensor& x) { return kernels::concat({x, x}, 0); }

Tensor repeat_rows(const Tensor& x, int64_t n) {
  if (n == 1) return x;
  std::vector<Tensor> rows;
  for (int64_t r = 0; r < x.size(0); ++r)
    for (int64_t i = 0; i < n; ++i) rows.push_back(x.slice(0, r, r + 1));
  return kernels::concat(rows, 0);
}

Tensor postprocess_image(const Tensor& decoded) {
  Tensor x = decoded.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  const float* s = x.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) o[i] = std::clamp(s[i] / 2.0f + 0.5f, 0.0f, 1.0f);
  return out;
}

int64_t vae_downscale(const io::JsonConfig& vae_config) {
  const auto blocks = vae_config.get<std::vector<int64_t>>("block_out_channels");
  QDIT_CHECK(!blocks.empty(), "[", vae_config.path(), "] block_out_channels is empty");
  return int64_t{1} << (blocks.size() - 1);
}

void fill_default_size(GenerateRequest& req, int64_t default_px, int64_t multiple, const char* who) {
  if (req.height <= 0) req.height = default_px;
  if (req.width <= 0) req.width = default_px;
  QDIT_CHECK(req.height % multiple == 0 && req.width % multiple == 0, "[", who, "] width and height must be multiples of ",
             multiple, ", got ", req.width, "x", req.height);
}

Tensor initial_latents(const GenerateRequest& req, Shape shape, const char* who) {
  QDIT_CHECK(req.num_images >= 1, "[", who, "] num_images must be at least 1, got ", req.num_images);
  shape[0] = req.num_images;
  if (!req.latents.defined()) return seeded_noise(shape, req.seed);
  Tensor l = req.latents.contiguous().to(DType::F32).clone();
  QDIT_CHECK(l.shape() == shape, "[", who, "] initial latents are ", l.desc(), ", expected ", shape_str(shape),
             " for ", req.width, "x", req.height);
  return l;
}

PhaseTimer::PhaseTimer(std::string name) : name_(std::move(name)), start_(std::chrono::steady_clock::now()) {
#ifdef __GLIBC__
  // Hand freed heap pages back first, so a phase's RSS peak is its own, not the previous phase's.
  malloc_trim(0);
#endif
  rss_ = std::make_unique<RssPeakMeter>();
  CpuAllocator::instance().reset_peaks();
}

PhaseStats PhaseTimer::finish() const {
  PhaseStats s;
  s.name = name_;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  s.tracked_peak_bytes = CpuAllocator::instance().stats().total_peak;
  s.rss_peak_bytes = rss_->peak();
  return s;
}

}  // namespace qdit::pipelines
