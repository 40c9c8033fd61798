// Elementwise and broadcast ops on f32 tensors (the activation dtype between ops). Broadcasting
// follows NumPy: shapes are right-aligned and a size-1 (or missing) dim of `b` repeats.
#pragma once
#include "qdit/core/tensor.h"
#include "qdit/kernels/gemm.h"

namespace qdit::kernels {

enum class BinaryOp { Add, Sub, Mul, Div };

Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op);  // out has a's shape
void binary_inplace(Tensor& a, const Tensor& b, BinaryOp op);  // a must be contiguous
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Add); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Mul); }
void add_inplace(Tensor& a, const Tensor& b);
void scale_inplace(Tensor& a, float s);

Tensor activation(const Tensor& x, Activation a);
void activation_inplace(Tensor& x, Activation a);
Tensor quick_gelu(const Tensor& x);  // x * sigmoid(1.702 x), CLIP-L

// AdaLN modulation: x[B, S, D] * (1 + scale[B, D]) + shift[B, D]. scale/shift may be views
// (e.g. chunks of one [B, 6D] tensor); a leading dim of 1 broadcasts over B.
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale);
// Gated residual: y[B, S, D] += gate[B, D] * x[B, S, D].
void gated_residual_inplace(Tensor& y, const Tensor& x, const Tensor& gate);

}  // namespace qdit::kernels
