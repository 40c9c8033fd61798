#include "qdit/schedulers/scheduler.h"

#include "qdit/core/error.h"
#include "qdit/schedulers/schedule_math.h"

namespace qdit::schedulers {

void Scheduler::set_custom_sigmas(const std::vector<double>&, std::optional<double>) {
  fail("[", class_name(), "] set_custom_sigmas: this scheduler does not accept a custom sigma schedule");
}

std::pair<Tensor, Tensor> Scheduler::check_step_args(const Tensor& model_output, int step_index, const Tensor& sample) {
  const char* name = class_name();
  QDIT_CHECK(!timesteps_.empty(), "[", name, "::step] set_timesteps must be called before step");
  QDIT_CHECK(step_index >= 0 && step_index < num_inference_steps(), "[", name, "::step] step_index ", step_index,
             " out of range [0, ", num_inference_steps(), ")");
  QDIT_CHECK(next_step_ < 0 || step_index == next_step_, "[", name, "::step] steps must be taken in order: expected ",
             "step_index ", next_step_, ", found ", step_index, " (call set_timesteps to restart)");
  QDIT_CHECK(model_output.defined() && sample.defined(), "[", name, "::step] model_output and sample must be defined");
  QDIT_CHECK(model_output.dtype() == DType::F32 && sample.dtype() == DType::F32, "[", name,
             "::step] expected f32 tensors, found model_output ", model_output.desc(), " and sample ", sample.desc());
  QDIT_CHECK(model_output.shape() == sample.shape(), "[", name, "::step] model_output ", model_output.desc(),
             " and sample ", sample.desc(), " must have the same shape");
  next_step_ = step_index + 1;
  return {model_output.contiguous(), sample.contiguous()};
}

double flux_mu(int64_t image_seq_len, const DynamicShiftParams& p) {
  QDIT_CHECK(p.max_image_seq_len != p.base_image_seq_len,
             "[flux_mu] max_image_seq_len and base_image_seq_len are both ", p.base_image_seq_len,
             "; the interpolation is undefined");
  // Same operation order as diffusers' calculate_shift (Python floats are float64).
  const double m = (p.max_shift - p.base_shift) / static_cast<double>(p.max_image_seq_len - p.base_image_seq_len);
  const double b = p.base_shift - m * static_cast<double>(p.base_image_seq_len);
  return static_cast<double>(image_seq_len) * m + b;
}

double flux_mu(int64_t image_seq_len, const Scheduler& scheduler) {
  auto p = scheduler.dynamic_shift_params();
  QDIT_CHECK(p.has_value(), "[flux_mu] ", scheduler.class_name(),
             " has no base/max_image_seq_len, base/max_shift parameters to compute mu from");
  return flux_mu(image_seq_len, *p);
}

std::vector<double> flux_default_sigmas(int num_steps) {
  QDIT_CHECK(num_steps >= 1, "[flux_default_sigmas] expected num_steps >= 1, found ", num_steps);
  return np_linspace(1.0, 1.0 / num_steps, num_steps);
}

}  // namespace qdit::schedulers
