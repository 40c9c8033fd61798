// Small parameterised layers bound by module path: LayerNorm, RMSNorm, GroupNorm, Conv2d.
#pragma once
#include <memory>
#include <string>

#include "qdit/kernels/conv.h"
#include "qdit/nn/context.h"
#include "qdit/nn/weight_binder.h"

namespace qdit::nn {

class LayerNorm {
 public:
  LayerNorm() = default;
  // affine=false binds nothing (elementwise_affine=False); bias=false binds only the weight.
  LayerNorm(const WeightBinder& parent, const std::string& name, int64_t dim, float eps, bool affine = true,
            bool bias = true);
  Tensor operator()(const Tensor& x) const;

 private:
  Tensor weight_, bias_;
  float eps_ = 1e-5f;
};

class RMSNorm {
 public:
  RMSNorm() = default;
  RMSNorm(const WeightBinder& parent, const std::string& name, int64_t dim, float eps, bool affine = true);
  Tensor operator()(const Tensor& x) const;
  // For kernels that fuse the normalisation with what follows (Flux's q/k norm + rotary).
  const Tensor& weight() const { return weight_; }
  float eps() const { return eps_; }

 private:
  Tensor weight_;
  float eps_ = 1e-6f;
};

class GroupNorm {
 public:
  GroupNorm() = default;
  GroupNorm(const WeightBinder& parent, const std::string& name, int64_t groups, int64_t channels, float eps);
  Tensor operator()(const Tensor& x) const;

 private:
  Tensor weight_, bias_;
  int64_t groups_ = 32;
  float eps_ = 1e-6f;
};

class Conv2d {
 public:
  Conv2d() = default;
  Conv2d(const WeightBinder& parent, const std::string& name, int64_t in, int64_t out, int64_t kernel,
         const ModuleContext& ctx);
  Tensor operator()(const Tensor& x) const;

 private:
  std::shared_ptr<kernels::PackedConv2d> conv_;
  std::string path_;
};

// Parameters are copied out of the mapping as f32 (they are small next to the Linear weights).
Tensor to_f32_param(const Tensor& t);

}  // namespace qdit::nn
