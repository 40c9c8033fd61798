#include "qdit/models/flux/flux_rope.h"

#include <algorithm>
#include <cmath>

#include "qdit/core/error.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/rope.h"

namespace qdit::models::flux {

RopeTable rope_table(const Tensor& ids_in, const std::vector<int64_t>& axes_dims, double theta) {
  QDIT_CHECK(ids_in.defined() && ids_in.dim() == 2 && ids_in.size(1) == static_cast<int64_t>(axes_dims.size()),
             "[flux rope] ids: expected [S, ", axes_dims.size(), "], got ",
             ids_in.defined() ? ids_in.desc() : std::string("undefined"));
  int64_t pairs = 0;
  for (int64_t d : axes_dims) {
    QDIT_CHECK(d > 0 && d % 2 == 0, "[flux rope] every axis dim must be positive and even, got ", d);
    pairs += d / 2;
  }
  // An f32 id widens exactly to f64, as torch promotes it against the float64 omega.
  const std::vector<float> pos = ids_in.to_vector();
  const int64_t s = ids_in.size(0), n_axes = ids_in.size(1);
  RopeTable t{Tensor::empty({s, pairs}, DType::F32), Tensor::empty({s, pairs}, DType::F32)};
  float* c = t.cos.data<float>();
  float* sn = t.sin.data<float>();
  int64_t col = 0;
  for (int64_t a = 0; a < n_axes; ++a) {
    const int64_t d = axes_dims[static_cast<size_t>(a)];
    for (int64_t j = 0; j < d / 2; ++j, ++col) {
      // torch.arange(0, d, 2, float64) / d; omega = 1.0 / theta**scale
      const double omega = 1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(d));
      for (int64_t i = 0; i < s; ++i) {
        const double angle = static_cast<double>(pos[static_cast<size_t>(i * n_axes + a)]) * omega;
        c[i * pairs + col] = static_cast<float>(std::cos(angle));
        sn[i * pairs + col] = static_cast<float>(std::sin(angle));
      }
    }
  }
  return t;
}

Rope::Rope(const Tensor& ids_in, const std::vector<int64_t>& axes_dims) {
  QDIT_CHECK(ids_in.defined() && (ids_in.dim() == 2 || ids_in.dim() == 3), "[flux rope] ids: expected [S, n] or ",
             "[B, S, n], got ", ids_in.defined() ? ids_in.desc() : std::string("undefined"));
  const Tensor ids = ids_in.dim() == 2 ? ids_in.unsqueeze(0).contiguous() : ids_in.contiguous();
  const std::vector<float> v = ids.to_vector();
  const int64_t rows = ids.size(0), per_row = ids.size(1) * ids.size(2);
  seq_ = ids.size(1);
  bool shared = true;
  for (int64_t b = 1; b < rows && shared; ++b)
    shared = std::equal(v.begin(), v.begin() + per_row, v.begin() + b * per_row);
  const int64_t n = shared ? 1 : rows;
  for (int64_t b = 0; b < n; ++b) tables_.push_back(rope_table(ids.select(0, b), axes_dims));
}

Tensor Rope::apply(const Tensor& x) const {
  QDIT_CHECK(x.dim() == 4 && x.size(1) == seq_, "[flux rope] expected [B, ", seq_, ", H, Dh], got ", x.desc());
  if (tables_.size() == 1) return kernels::rope_interleaved(x, tables_[0].cos, tables_[0].sin);
  QDIT_CHECK(x.size(0) == static_cast<int64_t>(tables_.size()), "[flux rope] ", tables_.size(),
             " rows of ids for a batch of ", x.size(0));
  std::vector<Tensor> rows;
  for (size_t b = 0; b < tables_.size(); ++b) {
    const int64_t i = static_cast<int64_t>(b);
    rows.push_back(kernels::rope_interleaved(x.slice(0, i, i + 1), tables_[b].cos, tables_[b].sin));
  }
  return kernels::concat(rows, 0);
}

void Rope::norm_apply_into(const Tensor& x, const Tensor& norm_weight, float eps, int64_t first_position,
                           Tensor& out) const {
  QDIT_CHECK(x.dim() == 4 && first_position >= 0 && first_position + x.size(1) <= seq_, "[flux rope] positions ",
             first_position, "..", first_position + (x.dim() == 4 ? x.size(1) : 0), " of ", x.desc(),
             " outside the ", seq_, " of the table");
  if (tables_.size() == 1) {
    kernels::rms_norm_rope_into(x, norm_weight, eps, tables_[0].cos, tables_[0].sin, first_position, out);
    return;
  }
  QDIT_CHECK(x.size(0) == static_cast<int64_t>(tables_.size()), "[flux rope] ", tables_.size(),
             " rows of ids for a batch of ", x.size(0));
  for (size_t b = 0; b < tables_.size(); ++b) {
    const int64_t i = static_cast<int64_t>(b);
    Tensor row = out.slice(0, i, i + 1);
    kernels::rms_norm_rope_into(x.slice(0, i, i + 1), norm_weight, eps, tables_[b].cos, tables_[b].sin,
                                first_position, row);
  }
}

}  // namespace qdit::models::flux
