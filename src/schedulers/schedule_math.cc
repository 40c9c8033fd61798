#include "qdit/schedulers/schedule_math.h"

#include <cmath>
#include <limits>

#include "qdit/core/error.h"

namespace qdit::schedulers {

std::vector<double> np_linspace(double start, double stop, int64_t num) {
  QDIT_CHECK(num >= 0, "[np_linspace] expected num >= 0, found ", num);
  std::vector<double> y(static_cast<size_t>(num));
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / static_cast<double>(div);
    if (step == 0.0) {  // numpy's special case for denormal steps
      for (int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) / static_cast<double>(div) * delta + start;
    } else {
      for (int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
    }
    y[num - 1] = stop;
  } else {
    for (int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) * delta + start;
  }
  return y;
}

std::vector<double> np_arange(double start, double stop, double step) {
  QDIT_CHECK(step != 0.0 && std::isfinite(step), "[np_arange] expected a finite non-zero step, found ", step);
  const double len_f = std::ceil((stop - start) / step);
  if (!(len_f > 0)) return {};
  QDIT_CHECK(len_f < 1e9, "[np_arange] too many elements: ", len_f);
  const auto n = static_cast<int64_t>(len_f);
  std::vector<double> y(static_cast<size_t>(n));
  y[0] = start;
  if (n > 1) {
    y[1] = start + step;
    const double delta = y[1] - start;
    for (int64_t i = 2; i < n; ++i) y[i] = start + static_cast<double>(i) * delta;
  }
  return y;
}

double np_round(double x) { return std::nearbyint(x); }  // default FE_TONEAREST: half to even

std::vector<float> torch_linspace_f32(double start_d, double end_d, int64_t steps, int vector_width) {
  QDIT_CHECK(steps >= 0, "[torch_linspace] expected steps >= 0, found ", steps);
  std::vector<float> out(static_cast<size_t>(steps));
  if (steps == 0) return out;
  const float start = static_cast<float>(start_d);
  const float end = static_cast<float>(end_d);
  if (steps == 1) {  // torch fills a single element with start
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  auto scalar_at = [&](int64_t idx) -> float {
    if (idx < halfway) return start + step * static_cast<float>(idx);
    return end - step * static_cast<float>(steps - idx - 1);
  };
  int64_t i = 0;
  if (vector_width > 1) {
    // The kernel's vector loop handles pairs of vectors; each vector is arange(base, step), i.e.
    // base + j*step, with base from the scalar formula at the vector's first index.
    const int64_t w = vector_width;
    for (; i <= steps - 2 * w; i += 2 * w) {
      for (int64_t v = i; v < i + 2 * w; v += w) {
        const float base = scalar_at(v);
        out[v] = base;
        for (int64_t j = 1; j < w; ++j) out[v + j] = base + static_cast<float>(j) * step;
      }
    }
  }
  for (; i < steps; ++i) out[i] = scalar_at(i);
  return out;
}

}  // namespace qdit::schedulers
