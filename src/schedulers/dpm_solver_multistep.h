// DPMSolverMultistepScheduler (diffusers 0.30.3), the DPM-Solver++ multistep sampler PixArt
// uses: DDPM beta schedule -> sigmas at integer timesteps, data-prediction (x0) updates of
// order 1-3 with midpoint or Heun second-order terms. Built by load_scheduler().
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "qdit/io/json_config.h"
#include "qdit/schedulers/scheduler.h"

namespace qdit::schedulers {

struct DPMSolverMultistepConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";     // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;        // non-empty: used instead of beta_schedule
  int solver_order = 2;                     // 1, 2 or 3
  std::string prediction_type = "epsilon";  // epsilon | sample | v_prediction
  std::string algorithm_type = "dpmsolver++";
  std::string solver_type = "midpoint";  // midpoint | heun
  bool lower_order_final = true;
  bool euler_at_final = false;
  std::string final_sigmas_type = "zero";  // zero | sigma_min
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
  std::string timestep_spacing = "linspace";  // linspace | leading | trailing
  int64_t steps_offset = 0;

  // Reads scheduler_config.json values; options qdit does not implement (thresholding, Karras /
  // Lu / exponential / beta sigmas, SDE and noise-prediction algorithms, learned variance,
  // zero-SNR rescaling) are rejected with an error naming the key. "deis" and the UniPC solver
  // types map to dpmsolver++ / midpoint exactly as diffusers does.
  static DPMSolverMultistepConfig from_json(const io::JsonConfig& cfg);
  // Range and value checks; `where` names the config file in messages.
  void validate(const std::string& where) const;
};

class DPMSolverMultistepScheduler final : public Scheduler {
 public:
  explicit DPMSolverMultistepScheduler(const DPMSolverMultistepConfig& config);
  explicit DPMSolverMultistepScheduler(const io::JsonConfig& cfg)
      : DPMSolverMultistepScheduler(DPMSolverMultistepConfig::from_json(cfg)) {}

  const char* class_name() const override { return "DPMSolverMultistepScheduler"; }
  const DPMSolverMultistepConfig& config() const { return config_; }

  // Integer timesteps per timestep_spacing, sigma = sqrt((1 - acp) / acp) at each of them, then
  // the final sigma (0 or sigma_min). `mu` is ignored.
  void set_timesteps(int num_steps, std::optional<double> mu = std::nullopt) override;

  // Converts the model output to x0, then takes a first-, second- or third-order step.
  Tensor step(const Tensor& model_output, int step_index, const Tensor& sample) override;

  float init_noise_sigma() const override { return 1.0f; }
  int order() const override { return 1; }

  // Training-schedule tables (float32 as diffusers keeps them), for tests and tools.
  const std::vector<float>& betas() const { return betas_; }
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }

 private:
  Tensor convert_model_output(const Tensor& model_output, const Tensor& sample, int step_index) const;
  Tensor first_order_update(const Tensor& x0, const Tensor& sample, int step_index) const;
  Tensor second_order_update(const Tensor& sample, int step_index) const;
  Tensor third_order_update(const Tensor& sample, int step_index) const;

  DPMSolverMultistepConfig config_;
  std::vector<float> betas_, alphas_cumprod_, train_sigmas_, train_lambdas_;
  std::vector<Tensor> model_outputs_;  // x0 predictions, oldest first (size solver_order)
  int lower_order_nums_ = 0;
};

}  // namespace qdit::schedulers
