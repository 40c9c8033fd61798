// 2-D convolution (stride 1, "same" padding (k-1)/2 as the VAE uses) on oneDNN with weights
// reordered once; nearest-neighbour 2x upsampling.
#pragma once
#include <memory>

#include "qdit/core/tensor.h"

namespace qdit::kernels {

class PackedConv2d {
 public:
  // weight [O, I, kh, kw] (f32/f16/bf16), bias [O] or undefined; compute f32 or bf16.
  PackedConv2d(const Tensor& weight, const Tensor& bias, int64_t padding, DType compute = DType::F32);
  ~PackedConv2d();
  PackedConv2d(const PackedConv2d&) = delete;
  PackedConv2d& operator=(const PackedConv2d&) = delete;
  // x [N, I, H, W] f32 -> [N, O, H', W'] f32.
  Tensor forward(const Tensor& x) const;
  int64_t out_channels() const { return o_; }
  int64_t in_channels() const { return i_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t o_, i_, kh_, kw_, pad_;
  DType compute_;
};

Tensor conv2d_reference(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t padding);

// [N, C, H, W] -> [N, C, 2H, 2W], nearest.
Tensor upsample_nearest2x(const Tensor& x);

}  // namespace qdit::kernels
