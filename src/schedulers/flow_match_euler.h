// FlowMatchEulerDiscreteScheduler (diffusers 0.30.3): rectified-flow Euler steps
// x <- x + (sigma_next - sigma) * v, with the static shift (SD3, AuraFlow, Flux-schnell) or the
// resolution-dependent exponential shift driven by mu (Flux-dev). Built by load_scheduler().
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "qdit/io/json_config.h"
#include "qdit/schedulers/scheduler.h"

namespace qdit::schedulers {

struct FlowMatchEulerConfig {
  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  DynamicShiftParams dynamic;  // base/max_image_seq_len, base/max_shift

  // Reads the keys diffusers 0.30.3 knows; keys added by later diffusers versions are accepted
  // at their neutral values and rejected (naming the key) otherwise. Unknown keys are ignored,
  // as diffusers does.
  static FlowMatchEulerConfig from_json(const io::JsonConfig& cfg);
};

class FlowMatchEulerDiscreteScheduler final : public Scheduler {
 public:
  explicit FlowMatchEulerDiscreteScheduler(const FlowMatchEulerConfig& config);
  explicit FlowMatchEulerDiscreteScheduler(const io::JsonConfig& cfg)
      : FlowMatchEulerDiscreteScheduler(FlowMatchEulerConfig::from_json(cfg)) {}

  const char* class_name() const override { return "FlowMatchEulerDiscreteScheduler"; }
  const FlowMatchEulerConfig& config() const { return config_; }

  // sigmas = linspace(sigma_max, sigma_min, N) of the training schedule's endpoints (already
  // shifted when !use_dynamic_shifting, so the static shift is applied twice: diffusers 0.30.3
  // behaviour), then shifted; a final 0 is appended.
  void set_timesteps(int num_steps, std::optional<double> mu = std::nullopt) override;
  bool accepts_custom_sigmas() const override { return true; }
  // The given sigmas (float64) are shifted once, statically or with mu.
  void set_custom_sigmas(const std::vector<double>& sigmas, std::optional<double> mu = std::nullopt) override;

  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample) override;

  float init_noise_sigma() const override { return 1.0f; }
  int order() const override { return 1; }
  bool uses_dynamic_shifting() const override { return config_.use_dynamic_shifting; }
  std::optional<DynamicShiftParams> dynamic_shift_params() const override { return config_.dynamic; }

  // Endpoints of the training schedule (float32 values, as diffusers' sigma_min / sigma_max).
  float sigma_min() const { return sigma_min_; }
  float sigma_max() const { return sigma_max_; }

 private:
  void finish_schedule(std::vector<double> sigmas, std::optional<double> mu);

  FlowMatchEulerConfig config_;
  float sigma_min_ = 0.0f, sigma_max_ = 1.0f;
};

}  // namespace qdit::schedulers
