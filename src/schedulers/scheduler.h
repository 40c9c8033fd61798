// Scheduler: the sampling-loop interface the pipelines drive (set_timesteps, then one step()
// per denoising step), with diffusers 0.30.3 semantics. Concrete schedulers: DPM-Solver++
// (PixArt) and FlowMatchEuler (SD3, Flux, AuraFlow); load_scheduler() builds one from a
// scheduler_config.json. Pipelines use only this interface and the capability properties.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::schedulers {

// Resolution-dependent shift parameters (Flux): mu is interpolated linearly in the image
// sequence length between (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift).
struct DynamicShiftParams {
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  double base_shift = 0.5;
  double max_shift = 1.15;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // diffusers class name, e.g. "FlowMatchEulerDiscreteScheduler".
  virtual const char* class_name() const = 0;

  // Builds the schedule for `num_steps` denoising steps and clears any step history. `mu` is
  // required when uses_dynamic_shifting() and ignored otherwise (as in diffusers).
  virtual void set_timesteps(int num_steps, std::optional<double> mu = std::nullopt) = 0;

  // Builds the schedule from explicit sigmas (diffusers' `set_timesteps(sigmas=...)`), which the
  // Flux pipeline uses with flux_default_sigmas(N). Throws for schedulers that have no such mode.
  virtual bool accepts_custom_sigmas() const { return false; }
  virtual void set_custom_sigmas(const std::vector<double>& sigmas, std::optional<double> mu = std::nullopt);

  // The values the pipeline hands to the transformer, as diffusers stores them (float32;
  // integer-valued for the DDPM-discretised schedulers), one per step.
  const std::vector<float>& timesteps() const { return timesteps_; }
  // Noise levels, one per step plus the final one (float32, as diffusers stores them).
  const std::vector<float>& sigmas() const { return sigmas_; }
  int num_inference_steps() const { return static_cast<int>(timesteps_.size()); }

  // One denoising step: `model_output` is the (guided) transformer output for `sample` at step
  // `step_index`; returns the new sample (f32, contiguous, same shape). Multistep schedulers
  // keep their history internally, so steps must be taken in order (the first one after
  // set_timesteps may start at any index, for img2img-style partial schedules).
  virtual Tensor step(const Tensor& model_output, int step_index, const Tensor& sample) = 0;

  // Factor for the initial noise (latents = noise * init_noise_sigma()).
  virtual float init_noise_sigma() const = 0;
  // diffusers' `order` attribute: model evaluations per step() (1 for these multistep and Euler
  // schedulers, whatever their solver order); pipelines use it to count warm-up steps.
  virtual int order() const = 0;

  // True when set_timesteps needs `mu` (Flux-dev style dynamic shifting).
  virtual bool uses_dynamic_shifting() const { return false; }
  // The mu interpolation parameters from the config, for schedulers that have them.
  virtual std::optional<DynamicShiftParams> dynamic_shift_params() const { return std::nullopt; }

 protected:
  // Common checks of step(): schedule set, index in range and in sequence, f32 tensors of equal
  // shape. Returns contiguous views of both tensors.
  std::pair<Tensor, Tensor> check_step_args(const Tensor& model_output, int step_index, const Tensor& sample);
  // Marks the schedule as rebuilt: the next step may start anywhere.
  void reset_step_counter() { next_step_ = -1; }

  std::vector<float> timesteps_;
  std::vector<float> sigmas_;

 private:
  int next_step_ = -1;
};

// diffusers' calculate_shift with the scheduler config's values (FluxPipeline passes its
// scheduler's base/max_image_seq_len and base/max_shift): mu = seq_len * m + b, in float64.
// Throws when the scheduler has no dynamic-shift parameters.
double flux_mu(int64_t image_seq_len, const Scheduler& scheduler);
double flux_mu(int64_t image_seq_len, const DynamicShiftParams& params);

// The sigmas FluxPipeline passes to set_timesteps: np.linspace(1, 1/N, N) in float64.
std::vector<double> flux_default_sigmas(int num_steps);

}  // namespace qdit::schedulers
