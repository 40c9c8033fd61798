// Helpers shared by the pipeline implementations: seeded initial noise, classifier-free
// guidance, image postprocessing and per-phase timing/memory accounting.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/memory_meter.h"
#include "qdit/core/tensor.h"
#include "qdit/io/json_config.h"
#include "qdit/pipelines/pipeline.h"

namespace qdit::pipelines {

// Standard-normal noise of `shape` from `seed`: std::mt19937_64(seed) drawing pairs of uniform
// doubles in (0, 1] mapped through Box-Muller (both outputs used), rounded to f32. Deterministic
// across platforms; it does not reproduce torch.randn (pass --latents for bit-exact diffusers runs).
Tensor seeded_noise(const Shape& shape, uint64_t seed);

// u + g * (c - u) where x = cat([u, c]) along dim 0 (diffusers' order: uncond first).
Tensor classifier_free_guidance(const Tensor& both, float guidance);

// cat([x, x]) along dim 0.
Tensor duplicate_batch(const Tensor& x);
// Every row of dim 0 repeated n times in place ([a, b] -> [a, a, b, b] for n = 2): diffusers'
// num_images_per_prompt expansion of the (negative, positive) conditioning.
Tensor repeat_rows(const Tensor& x, int64_t n);

// (x / 2 + 0.5).clamp(0, 1)
Tensor postprocess_image(const Tensor& decoded);

// 2^(len(block_out_channels) - 1) from a VAE config.
int64_t vae_downscale(const io::JsonConfig& vae_config);
// Fills width/height with `default_px` when unset and checks they are multiples of `multiple`.
void fill_default_size(GenerateRequest& req, int64_t default_px, int64_t multiple, const char* who);
// The request's latents (checked against `shape`) or seeded noise of that shape; shape[0] (the
// batch) is replaced by the request's num_images.
Tensor initial_latents(const GenerateRequest& req, Shape shape, const char* who);

// Measures one phase: wall time, tracked peak bytes (the allocator's peak is reset at start)
// and the process's peak RSS during the phase.
class PhaseTimer {
 public:
  explicit PhaseTimer(std::string name);
  PhaseStats finish() const;

 private:
  std::string name_;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<RssPeakMeter> rss_;
};

}  // namespace qdit::pipelines
