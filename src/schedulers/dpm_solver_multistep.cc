#include "qdit/schedulers/dpm_solver_multistep.h"

#include <algorithm>
#include <cmath>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/schedulers/schedule_math.h"

// Numerics mirror diffusers 0.30.3 on PyTorch CPU: the beta/alpha tables are float32 tensors
// (cumprod accumulates in double, as ATen does on CPU), the sigma schedule passes through numpy
// float64 only to be cast back to float32, and every step coefficient is a 0-dim float32
// tensor, so all scalar math below is float with the same operation order. This file is built
// with -ffp-contract=off so that no multiply-add is fused.
namespace qdit::schedulers {

namespace {

constexpr int64_t kGrain = 1 << 15;
// torch.linspace's vector loop builds chunks of Vectorized<float>::size() elements (8 on AVX2).
constexpr int kTorchLinspaceVectorWidth = 8;

[[noreturn]] void unsupported(const io::JsonConfig& cfg, const std::string& key) {
  fail("[", cfg.path(), "] key '", key, "' = ", cfg.raw().at(key).dump(),
       " is not supported by qdit's DPMSolverMultistepScheduler");
}

template <typename T>
void require_value(const io::JsonConfig& cfg, const std::string& key, const T& neutral) {
  if (cfg.has(key) && !(cfg.get<T>(key) == neutral)) unsupported(cfg, key);
}

template <typename F>
void for_each_index(int64_t n, F&& f) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

// alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t, lambda = log(alpha_t) - log(sigma_t).
struct AlphaSigma {
  float alpha, sigma, lambda;
};
AlphaSigma alpha_sigma(float s) {
  AlphaSigma r;
  r.alpha = 1.0f / std::sqrt(s * s + 1.0f);
  r.sigma = s * r.alpha;
  r.lambda = std::log(r.alpha) - std::log(r.sigma);
  return r;
}

}  // namespace

DPMSolverMultistepConfig DPMSolverMultistepConfig::from_json(const io::JsonConfig& cfg) {
  DPMSolverMultistepConfig c;
  c.num_train_timesteps = cfg.get_or<int64_t>("num_train_timesteps", c.num_train_timesteps);
  c.beta_start = cfg.get_or<double>("beta_start", c.beta_start);
  c.beta_end = cfg.get_or<double>("beta_end", c.beta_end);
  c.beta_schedule = cfg.get_or<std::string>("beta_schedule", c.beta_schedule);
  c.trained_betas = cfg.get_or<std::vector<double>>("trained_betas", {});
  c.solver_order = cfg.get_or<int>("solver_order", c.solver_order);
  c.prediction_type = cfg.get_or<std::string>("prediction_type", c.prediction_type);
  c.algorithm_type = cfg.get_or<std::string>("algorithm_type", c.algorithm_type);
  c.solver_type = cfg.get_or<std::string>("solver_type", c.solver_type);
  c.lower_order_final = cfg.get_or<bool>("lower_order_final", c.lower_order_final);
  c.euler_at_final = cfg.get_or<bool>("euler_at_final", c.euler_at_final);
  c.final_sigmas_type = cfg.get_or<std::string>("final_sigmas_type", c.final_sigmas_type);
  c.lambda_min_clipped = cfg.get_or<double>("lambda_min_clipped", c.lambda_min_clipped);
  c.timestep_spacing = cfg.get_or<std::string>("timestep_spacing", c.timestep_spacing);
  c.steps_offset = cfg.get_or<int64_t>("steps_offset", c.steps_offset);
  // Only used with thresholding (rejected below), but their types are still checked.
  (void)cfg.get_or<double>("dynamic_thresholding_ratio", 0.995);
  (void)cfg.get_or<double>("sample_max_value", 1.0);

  // Renames diffusers performs in __init__.
  if (c.algorithm_type == "deis") c.algorithm_type = "dpmsolver++";
  if (c.solver_type == "logrho" || c.solver_type == "bh1" || c.solver_type == "bh2") c.solver_type = "midpoint";

  if (c.algorithm_type != "dpmsolver++") unsupported(cfg, "algorithm_type");
  require_value<bool>(cfg, "thresholding", false);
  require_value<bool>(cfg, "use_karras_sigmas", false);
  require_value<bool>(cfg, "use_lu_lambdas", false);
  require_value<bool>(cfg, "use_exponential_sigmas", false);
  require_value<bool>(cfg, "use_beta_sigmas", false);
  require_value<bool>(cfg, "use_flow_sigmas", false);
  require_value<bool>(cfg, "rescale_betas_zero_snr", false);
  if (cfg.has("variance_type")) {
    const auto v = cfg.get<std::string>("variance_type");
    if (v == "learned" || v == "learned_range") unsupported(cfg, "variance_type");
  }
  c.validate(cfg.path());
  return c;
}

void DPMSolverMultistepConfig::validate(const std::string& where) const {
  auto bad = [&](const char* key, const auto& value, const char* expected) {
    fail("[", where, "] key '", key, "': expected ", expected, ", found ", value);
  };
  if (num_train_timesteps < 2 || num_train_timesteps >= (1 << 24))
    bad("num_train_timesteps", num_train_timesteps, "an integer in [2, 2^24)");
  if (trained_betas.empty()) {
    if (beta_schedule != "linear" && beta_schedule != "scaled_linear" && beta_schedule != "squaredcos_cap_v2")
      bad("beta_schedule", beta_schedule, "linear, scaled_linear or squaredcos_cap_v2");
  } else if (static_cast<int64_t>(trained_betas.size()) != num_train_timesteps) {
    bad("trained_betas", detail::concat(trained_betas.size(), " values"), "num_train_timesteps values");
  }
  if (solver_order < 1 || solver_order > 3) bad("solver_order", solver_order, "1, 2 or 3");
  if (prediction_type != "epsilon" && prediction_type != "sample" && prediction_type != "v_prediction")
    bad("prediction_type", prediction_type, "epsilon, sample or v_prediction");
  if (algorithm_type != "dpmsolver++") bad("algorithm_type", algorithm_type, "dpmsolver++ (the one qdit implements)");
  if (solver_type != "midpoint" && solver_type != "heun") bad("solver_type", solver_type, "midpoint or heun");
  if (final_sigmas_type != "zero" && final_sigmas_type != "sigma_min")
    bad("final_sigmas_type", final_sigmas_type, "zero or sigma_min");
  if (timestep_spacing != "linspace" && timestep_spacing != "leading" && timestep_spacing != "trailing")
    bad("timestep_spacing", timestep_spacing, "linspace, leading or trailing");
  if (std::isnan(lambda_min_clipped)) bad("lambda_min_clipped", lambda_min_clipped, "a number");
}

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(const DPMSolverMultistepConfig& config) : config_(config) {
  config_.validate("DPMSolverMultistepConfig");
  const int64_t T = config_.num_train_timesteps;
  if (!config_.trained_betas.empty()) {
    betas_.assign(config_.trained_betas.begin(), config_.trained_betas.end());
  } else if (config_.beta_schedule == "linear") {
    betas_ = torch_linspace_f32(config_.beta_start, config_.beta_end, T, kTorchLinspaceVectorWidth);
  } else if (config_.beta_schedule == "scaled_linear") {
    betas_ =
        torch_linspace_f32(std::sqrt(config_.beta_start), std::sqrt(config_.beta_end), T, kTorchLinspaceVectorWidth);
    for (float& b : betas_) b = b * b;
  } else {  // squaredcos_cap_v2: betas_for_alpha_bar in Python floats, max_beta 0.999
    const double pi = 3.141592653589793;
    auto alpha_bar = [&](double t) {
      const double c = std::cos((t + 0.008) / 1.008 * pi / 2);
      return c * c;
    };
    betas_.resize(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i) {
      const double t1 = static_cast<double>(i) / static_cast<double>(T);
      const double t2 = static_cast<double>(i + 1) / static_cast<double>(T);
      betas_[i] = static_cast<float>(std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), 0.999));
    }
  }
  alphas_cumprod_.resize(betas_.size());
  train_sigmas_.resize(betas_.size());
  train_lambdas_.resize(betas_.size());
  double acc = 1.0;
  for (size_t i = 0; i < betas_.size(); ++i) {
    acc *= static_cast<double>(1.0f - betas_[i]);
    const float acp = static_cast<float>(acc);
    alphas_cumprod_[i] = acp;
    train_sigmas_[i] = std::sqrt((1.0f - acp) / acp);
    train_lambdas_[i] = std::log(std::sqrt(acp)) - std::log(std::sqrt(1.0f - acp));
  }
}

void DPMSolverMultistepScheduler::set_timesteps(int num_steps, std::optional<double>) {
  QDIT_CHECK(num_steps >= 1, "[DPMSolverMultistepScheduler::set_timesteps] expected num_steps >= 1, found ", num_steps);
  const int64_t T = config_.num_train_timesteps;
  // torch.searchsorted(flip(lambda_t), lambda_min_clipped): first index whose lambda >= the clip.
  const auto clip = static_cast<float>(config_.lambda_min_clipped);
  int64_t clipped_idx = 0;
  while (clipped_idx < T && train_lambdas_[T - 1 - clipped_idx] < clip) ++clipped_idx;
  const int64_t last_timestep = T - clipped_idx;

  std::vector<int64_t> ts;
  if (config_.timestep_spacing == "linspace") {
    std::vector<double> v = np_linspace(0.0, static_cast<double>(last_timestep - 1), num_steps + 1);
    for (int64_t i = num_steps; i >= 1; --i) ts.push_back(static_cast<int64_t>(np_round(v[i])));
  } else if (config_.timestep_spacing == "leading") {
    const int64_t step_ratio = last_timestep / (num_steps + 1);
    for (int64_t i = num_steps; i >= 1; --i) ts.push_back(i * step_ratio + config_.steps_offset);
  } else {  // trailing
    const double step_ratio = static_cast<double>(T) / num_steps;
    for (double v : np_arange(static_cast<double>(last_timestep), 0.0, -step_ratio))
      ts.push_back(static_cast<int64_t>(np_round(v)) - 1);
  }
  QDIT_CHECK(!ts.empty(), "[DPMSolverMultistepScheduler::set_timesteps] empty schedule for ", num_steps, " steps");

  // np.interp at integer points returns the table values (clamped at both ends).
  timesteps_.resize(ts.size());
  sigmas_.resize(ts.size() + 1);
  for (size_t i = 0; i < ts.size(); ++i) {
    timesteps_[i] = static_cast<float>(ts[i]);
    const int64_t k = std::clamp<int64_t>(ts[i], 0, T - 1);
    sigmas_[i] = train_sigmas_[k];
  }
  sigmas_.back() = config_.final_sigmas_type == "zero" ? 0.0f : train_sigmas_[0];

  model_outputs_.assign(static_cast<size_t>(config_.solver_order), Tensor());
  lower_order_nums_ = 0;
  reset_step_counter();
}

Tensor DPMSolverMultistepScheduler::convert_model_output(const Tensor& m, const Tensor& x, int i) const {
  if (config_.prediction_type == "sample") return m.clone();
  const AlphaSigma a = alpha_sigma(sigmas_[i]);
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  const float* pm = m.data<float>();
  const float* px = x.data<float>();
  float* po = out.data<float>();
  if (config_.prediction_type == "epsilon") {
    for_each_index(out.numel(), [&](int64_t k) { po[k] = (px[k] - a.sigma * pm[k]) / a.alpha; });
  } else {  // v_prediction
    for_each_index(out.numel(), [&](int64_t k) { po[k] = a.alpha * px[k] - a.sigma * pm[k]; });
  }
  return out;
}

Tensor DPMSolverMultistepScheduler::first_order_update(const Tensor& x0, const Tensor& x, int i) const {
  const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s = alpha_sigma(sigmas_[i]);
  const float h = t.lambda - s.lambda;
  const float c1 = t.sigma / s.sigma;
  const float c2 = t.alpha * (std::exp(-h) - 1.0f);
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  const float* pm = x0.data<float>();
  const float* px = x.data<float>();
  float* po = out.data<float>();
  for_each_index(out.numel(), [&](int64_t k) { po[k] = c1 * px[k] - c2 * pm[k]; });
  return out;
}

Tensor DPMSolverMultistepScheduler::second_order_update(const Tensor& x, int i) const {
  const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]);
  const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
  const float r0 = h0 / h;
  const float inv_r0 = 1.0f / r0;
  const float c1 = t.sigma / s0.sigma;
  const float em1 = std::exp(-h) - 1.0f;
  const float c2 = t.alpha * em1;
  const bool midpoint = config_.solver_type == "midpoint";
  // midpoint: x - 0.5*c2*D1; heun: x + alpha_t*((e^-h - 1)/h + 1)*D1.
  const float c3 = midpoint ? 0.5f * c2 : t.alpha * (em1 / h + 1.0f);
  const size_t n = model_outputs_.size();
  const float* m0 = model_outputs_[n - 1].data<float>();
  const float* m1 = model_outputs_[n - 2].data<float>();
  const float* px = x.data<float>();
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  float* po = out.data<float>();
  for_each_index(out.numel(), [&](int64_t k) {
    const float d1 = inv_r0 * (m0[k] - m1[k]);
    const float base = c1 * px[k] - c2 * m0[k];
    po[k] = midpoint ? base - c3 * d1 : base + c3 * d1;
  });
  return out;
}

Tensor DPMSolverMultistepScheduler::third_order_update(const Tensor& x, int i) const {
  const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]),
                   s2 = alpha_sigma(sigmas_[i - 2]);
  const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
  const float r0 = h0 / h, r1 = h1 / h;
  const float inv_r0 = 1.0f / r0, inv_r1 = 1.0f / r1;
  const float k1 = r0 / (r0 + r1);
  const float k2 = 1.0f / (r0 + r1);
  const float c1 = t.sigma / s0.sigma;
  const float em1 = std::exp(-h) - 1.0f;
  const float c2 = t.alpha * em1;
  const float c4 = t.alpha * (em1 / h + 1.0f);
  const float c5 = t.alpha * ((em1 + h) / (h * h) - 0.5f);
  const size_t n = model_outputs_.size();
  const float* m0 = model_outputs_[n - 1].data<float>();
  const float* m1 = model_outputs_[n - 2].data<float>();
  const float* m2 = model_outputs_[n - 3].data<float>();
  const float* px = x.data<float>();
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  float* po = out.data<float>();
  for_each_index(out.numel(), [&](int64_t k) {
    const float d1_0 = inv_r0 * (m0[k] - m1[k]);
    const float d1_1 = inv_r1 * (m1[k] - m2[k]);
    const float diff = d1_0 - d1_1;
    const float d1 = d1_0 + k1 * diff;
    const float d2 = k2 * diff;
    po[k] = ((c1 * px[k] - c2 * m0[k]) + c4 * d1) - c5 * d2;
  });
  return out;
}

Tensor DPMSolverMultistepScheduler::step(const Tensor& model_output, int step_index, const Tensor& sample) {
  auto [m, x] = check_step_args(model_output, step_index, sample);
  const int n = num_inference_steps();
  const bool lower_order_final =
      step_index == n - 1 &&
      (config_.euler_at_final || (config_.lower_order_final && n < 15) || config_.final_sigmas_type == "zero");
  const bool lower_order_second = step_index == n - 2 && config_.lower_order_final && n < 15;

  Tensor x0 = convert_model_output(m, x, step_index);
  for (size_t k = 0; k + 1 < model_outputs_.size(); ++k) model_outputs_[k] = model_outputs_[k + 1];
  model_outputs_.back() = x0;

  Tensor prev;
  if (config_.solver_order == 1 || lower_order_nums_ < 1 || lower_order_final) {
    prev = first_order_update(x0, x, step_index);
  } else if (config_.solver_order == 2 || lower_order_nums_ < 2 || lower_order_second) {
    prev = second_order_update(x, step_index);
  } else {
    prev = third_order_update(x, step_index);
  }
  if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
  return prev;
}

}  // namespace qdit::schedulers
