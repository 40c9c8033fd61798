#include "qdit/schedulers/flow_match_euler.h"

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/schedulers/schedule_math.h"

namespace qdit::schedulers {

namespace {

constexpr int64_t kGrain = 1 << 15;

// Keys of later diffusers versions: fine at their neutral value, an error otherwise, because
// silently ignoring them would change the schedule.
template <typename T>
void require_neutral(const io::JsonConfig& cfg, const std::string& key, const T& neutral) {
  if (!cfg.has(key)) return;
  const T v = cfg.get<T>(key);
  if (!(v == neutral))
    fail("[", cfg.path(), "] key '", key, "' = ", cfg.raw().at(key).dump(),
         " is not supported by qdit's FlowMatchEulerDiscreteScheduler (diffusers 0.30.3 semantics)");
}

}  // namespace

FlowMatchEulerConfig FlowMatchEulerConfig::from_json(const io::JsonConfig& cfg) {
  FlowMatchEulerConfig c;
  c.num_train_timesteps = cfg.get_or<int64_t>("num_train_timesteps", c.num_train_timesteps);
  c.shift = cfg.get_or<double>("shift", c.shift);
  c.use_dynamic_shifting = cfg.get_or<bool>("use_dynamic_shifting", c.use_dynamic_shifting);
  c.dynamic.base_shift = cfg.get_or<double>("base_shift", c.dynamic.base_shift);
  c.dynamic.max_shift = cfg.get_or<double>("max_shift", c.dynamic.max_shift);
  c.dynamic.base_image_seq_len = cfg.get_or<int64_t>("base_image_seq_len", c.dynamic.base_image_seq_len);
  c.dynamic.max_image_seq_len = cfg.get_or<int64_t>("max_image_seq_len", c.dynamic.max_image_seq_len);

  QDIT_CHECK(c.num_train_timesteps >= 1 && c.num_train_timesteps < (1 << 24), "[", cfg.path(),
             "] key 'num_train_timesteps': expected an integer in [1, 2^24), found ", c.num_train_timesteps);
  QDIT_CHECK(std::isfinite(c.shift) && c.shift > 0, "[", cfg.path(),
             "] key 'shift': expected a positive number, found ", c.shift);
  QDIT_CHECK(std::isfinite(c.dynamic.base_shift) && std::isfinite(c.dynamic.max_shift), "[", cfg.path(),
             "] keys 'base_shift' / 'max_shift' must be finite numbers");

  require_neutral<bool>(cfg, "invert_sigmas", false);
  require_neutral<bool>(cfg, "use_karras_sigmas", false);
  require_neutral<bool>(cfg, "use_exponential_sigmas", false);
  require_neutral<bool>(cfg, "use_beta_sigmas", false);
  require_neutral<bool>(cfg, "stochastic_sampling", false);
  require_neutral<std::string>(cfg, "time_shift_type", "exponential");
  if (cfg.has("shift_terminal"))
    fail("[", cfg.path(), "] key 'shift_terminal' = ", cfg.raw().at("shift_terminal").dump(),
         " is not supported by qdit's FlowMatchEulerDiscreteScheduler (diffusers 0.30.3 semantics)");
  return c;
}

FlowMatchEulerDiscreteScheduler::FlowMatchEulerDiscreteScheduler(const FlowMatchEulerConfig& config) : config_(config) {
  // __init__: timesteps 1..T (float32), sigmas = t / T in float32, shifted in float32 unless the
  // shift is dynamic. Only the endpoints are used later.
  const float T = static_cast<float>(config_.num_train_timesteps);
  auto init_sigma = [&](float t) {
    float s = t / T;
    if (!config_.use_dynamic_shifting) {
      const auto shift = static_cast<float>(config_.shift);
      const auto shift_m1 = static_cast<float>(config_.shift - 1.0);  // Python float, then cast
      s = (shift * s) / (1.0f + shift_m1 * s);
    }
    return s;
  };
  sigma_max_ = init_sigma(T);
  sigma_min_ = init_sigma(1.0f);
}

void FlowMatchEulerDiscreteScheduler::set_timesteps(int num_steps, std::optional<double> mu) {
  QDIT_CHECK(num_steps >= 1, "[FlowMatchEulerDiscreteScheduler::set_timesteps] expected num_steps >= 1, found ",
             num_steps);
  const auto T = static_cast<double>(config_.num_train_timesteps);
  std::vector<double> sigmas =
      np_linspace(static_cast<double>(sigma_max_) * T, static_cast<double>(sigma_min_) * T, num_steps);
  for (double& s : sigmas) s /= T;
  finish_schedule(std::move(sigmas), mu);
}

void FlowMatchEulerDiscreteScheduler::set_custom_sigmas(const std::vector<double>& sigmas, std::optional<double> mu) {
  QDIT_CHECK(!sigmas.empty(), "[FlowMatchEulerDiscreteScheduler::set_custom_sigmas] expected at least one sigma");
  for (size_t i = 0; i < sigmas.size(); ++i)
    QDIT_CHECK(std::isfinite(sigmas[i]) && sigmas[i] >= 0, "[FlowMatchEulerDiscreteScheduler::set_custom_sigmas] ",
               "sigma[", i, "] must be finite and >= 0, found ", sigmas[i]);
  finish_schedule(sigmas, mu);
}

void FlowMatchEulerDiscreteScheduler::finish_schedule(std::vector<double> sigmas, std::optional<double> mu) {
  if (config_.use_dynamic_shifting) {
    QDIT_CHECK(mu.has_value(), "[FlowMatchEulerDiscreteScheduler::set_timesteps] use_dynamic_shifting is set: ",
               "mu is required (see flux_mu)");
    QDIT_CHECK(std::isfinite(*mu), "[FlowMatchEulerDiscreteScheduler::set_timesteps] mu must be finite, found ", *mu);
    // time_shift(mu, 1.0, t) = e^mu / (e^mu + (1/t - 1)^1), in float64.
    const double e = std::exp(*mu);
    for (double& s : sigmas) s = e / (e + (1.0 / s - 1.0));
  } else {
    const double shift = config_.shift;
    for (double& s : sigmas) s = shift * s / (1.0 + (shift - 1.0) * s);
  }
  const float T = static_cast<float>(config_.num_train_timesteps);
  timesteps_.resize(sigmas.size());
  sigmas_.resize(sigmas.size() + 1);
  for (size_t i = 0; i < sigmas.size(); ++i) {
    sigmas_[i] = static_cast<float>(sigmas[i]);
    timesteps_[i] = sigmas_[i] * T;  // float32 tensor times the int T
  }
  sigmas_.back() = 0.0f;
  reset_step_counter();
}

Tensor FlowMatchEulerDiscreteScheduler::step(const Tensor& model_output, int step_index, const Tensor& sample) {
  auto [v, x] = check_step_args(model_output, step_index, sample);
  const float dt = sigmas_[step_index + 1] - sigmas_[step_index];
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  const float* pv = v.data<float>();
  const float* px = x.data<float>();
  float* po = out.data<float>();
  parallel_for(out.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = px[i] + dt * pv[i];
  });
  return out;
}

}  // namespace qdit::schedulers
