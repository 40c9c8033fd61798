// Flux rotary position embedding (diffusers 0.30.3 EmbedND/rope): for id axis i with d_i channels,
// omega_j = 1 / 10000^(2j / d_i) and angle = pos * omega_j, in float64; cos and sin are cast to
// float32 and the axes are concatenated along the pair dimension in axis order. The rotation acts
// on interleaved pairs (x[2j], x[2j+1]) of every head (kernels::rope_interleaved).
#pragma once
#include <cstdint>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::models::flux {

constexpr double kRopeTheta = 10000.0;  // EmbedND(theta=10000), fixed in FluxTransformer2DModel

struct RopeTable {
  Tensor cos, sin;  // [S, sum(axes_dims) / 2] f32 each
};

// ids: [S, n_axes] (f32/f64/int), axes_dims.size() == n_axes, every d_i even and positive.
RopeTable rope_table(const Tensor& ids, const std::vector<int64_t>& axes_dims, double theta = kRopeTheta);

// The rotary embedding of one forward. 0.30.3 takes batched ids [B, S, n] and rotates each row
// with its own ids; rows equal to the first share its table (the usual case), so one table is
// built when the ids do not differ.
class Rope {
 public:
  // ids: [S, n] (shared by every row) or [B', S, n] with B' rows.
  Rope(const Tensor& ids, const std::vector<int64_t>& axes_dims);
  int64_t seq_len() const { return seq_; }
  size_t tables() const { return tables_.size(); }
  // x: [B, S, H, Dh] (last dim contiguous) -> rotated, contiguous [B, S, H, Dh]. With one table
  // per row, B must equal that row count.
  Tensor apply(const Tensor& x) const;
  // apply(rms_norm(x, norm_weight, eps)) for the positions first_position .. + x.size(1), in one
  // pass (kernels::rms_norm_rope_into), written into out (a view shaped like x, e.g. a row range
  // of the joint sequence's q or k).
  void norm_apply_into(const Tensor& x, const Tensor& norm_weight, float eps, int64_t first_position,
                       Tensor& out) const;

 private:
  std::vector<RopeTable> tables_;
  int64_t seq_ = 0;
};

}  // namespace qdit::models::flux
