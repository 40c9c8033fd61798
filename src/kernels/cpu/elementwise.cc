#include <cmath>

#include "qdit/core/error.h"
#include "qdit/core/profile.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/rows.h"
#include "qdit/kernels/elementwise.h"

namespace qdit::kernels {

using cpu::broadcast_strides;
using cpu::row_offset;

namespace {

void require_f32(const Tensor& t, const char* op) {
  QDIT_CHECK(t.dtype() == DType::F32, "[", op, "] expects f32, got ", t.desc());
}

template <BinaryOp Op>
inline float apply(float a, float b) {
  if constexpr (Op == BinaryOp::Add) return a + b;
  if constexpr (Op == BinaryOp::Sub) return a - b;
  if constexpr (Op == BinaryOp::Mul) return a * b;
  return a / b;
}

template <BinaryOp Op>
void binary_rows(const float* a, const Shape& ast, const float* b, const Shape& bst, float* out,
                 const Shape& shape) {
  const int64_t inner = shape.empty() ? 1 : shape.back();
  const int64_t rows = inner == 0 ? 0 : shape_numel(shape) / inner;
  const int64_t ai = shape.empty() ? 1 : ast.back(), bi = shape.empty() ? 0 : bst.back();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* ap = a + row_offset(r, shape, ast);
      const float* bp = b + row_offset(r, shape, bst);
      float* op = out + r * inner;
      if (ai == 1 && bi == 1) {
        for (int64_t j = 0; j < inner; ++j) op[j] = apply<Op>(ap[j], bp[j]);
      } else if (ai == 1 && bi == 0) {
        const float bv = bp[0];
        for (int64_t j = 0; j < inner; ++j) op[j] = apply<Op>(ap[j], bv);
      } else {
        for (int64_t j = 0; j < inner; ++j) op[j] = apply<Op>(ap[j * ai], bp[j * bi]);
      }
    }
  });
}

void binary_dispatch(const Tensor& a, const Tensor& b, float* out, BinaryOp op) {
  require_f32(a, "binary");
  require_f32(b, "binary");
  const Shape bst = broadcast_strides(b, a.shape(), "binary");
  const float* ap = a.data<float>();
  const float* bp = b.data<float>();
  switch (op) {
    case BinaryOp::Add: binary_rows<BinaryOp::Add>(ap, a.strides(), bp, bst, out, a.shape()); break;
    case BinaryOp::Sub: binary_rows<BinaryOp::Sub>(ap, a.strides(), bp, bst, out, a.shape()); break;
    case BinaryOp::Mul: binary_rows<BinaryOp::Mul>(ap, a.strides(), bp, bst, out, a.shape()); break;
    case BinaryOp::Div: binary_rows<BinaryOp::Div>(ap, a.strides(), bp, bst, out, a.shape()); break;
  }
}

}  // namespace

Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op) {
  profile::Scope prof("binary");
  Tensor out = Tensor::empty(a.shape(), DType::F32);
  binary_dispatch(a, b, out.data<float>(), op);
  return out;
}

void binary_inplace(Tensor& a, const Tensor& b, BinaryOp op) {
  profile::Scope prof("binary");
  QDIT_CHECK(a.is_contiguous(), "[binary_inplace] destination ", a.desc(), " must be contiguous");
  binary_dispatch(a, b, a.data<float>(), op);
}

void add_inplace(Tensor& a, const Tensor& b) { binary_inplace(a, b, BinaryOp::Add); }

void scale_inplace(Tensor& a, float s) {
  profile::Scope prof("scale");
  require_f32(a, "scale");
  QDIT_CHECK(a.is_contiguous(), "[scale] tensor must be contiguous");
  float* p = a.data<float>();
  parallel_for(a.numel(), 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] *= s;
  });
}

void activation_inplace(Tensor& x, Activation a) {
  profile::Scope prof("activation");
  require_f32(x, "activation");
  QDIT_CHECK(x.is_contiguous(), "[activation] tensor must be contiguous");
  float* p = x.data<float>();
  parallel_for(x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = apply_activation(a, p[i]);
  });
}

Tensor activation(const Tensor& x, Activation a) {
  profile::Scope prof("activation");
  Tensor y = x.contiguous().clone();
  activation_inplace(y, a);
  return y;
}

Tensor quick_gelu(const Tensor& x) {
  profile::Scope prof("activation");
  require_f32(x, "quick_gelu");
  Tensor y = x.contiguous().clone();
  float* p = y.data<float>();
  parallel_for(y.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = p[i] / (1.0f + std::exp(-1.702f * p[i]));
  });
  return y;
}

namespace {
// Per-batch [D] rows of a [B, D] (or [1, D]) modulation tensor, which may be a strided view.
struct ModRow {
  const float* base;
  int64_t batch_stride, inner_stride;
  const float* row(int64_t b) const { return base + b * batch_stride; }
};

ModRow mod_row(const Tensor& t, int64_t batch, int64_t dim, const char* op) {
  require_f32(t, op);
  QDIT_CHECK(t.dim() == 2 && (t.size(0) == batch || t.size(0) == 1) && t.size(1) == dim, "[", op, "] expected [",
             batch, ", ", dim, "] modulation, got ", t.desc());
  return {t.data<float>(), t.size(0) == 1 ? 0 : t.strides()[0], t.strides()[1]};
}
}  // namespace

Tensor modulate(const Tensor& x_in, const Tensor& shift, const Tensor& scale) {
  profile::Scope prof("modulate");
  require_f32(x_in, "modulate");
  QDIT_CHECK(x_in.dim() == 3, "[modulate] x must be [B, S, D], got ", x_in.desc());
  Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), S = x.size(1), D = x.size(2);
  const ModRow sh = mod_row(shift, B, D, "modulate"), sc = mod_row(scale, B, D, "modulate");
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(B * S, std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / S;
      const float* s = sc.row(b);
      const float* h = sh.row(b);
      for (int64_t j = 0; j < D; ++j)
        yp[r * D + j] = xp[r * D + j] * (1.0f + s[j * sc.inner_stride]) + h[j * sh.inner_stride];
    }
  });
  return y;
}

void gated_residual_inplace(Tensor& y, const Tensor& x_in, const Tensor& gate) {
  profile::Scope prof("gated_residual");
  require_f32(y, "gated_residual");
  require_f32(x_in, "gated_residual");
  QDIT_CHECK(y.is_contiguous() && y.dim() == 3 && x_in.shape() == y.shape(), "[gated_residual] y ", y.desc(),
             " and x ", x_in.desc(), " must be equal [B, S, D] shapes (y contiguous)");
  Tensor x = x_in.contiguous();
  const int64_t B = y.size(0), S = y.size(1), D = y.size(2);
  const ModRow g = mod_row(gate, B, D, "gated_residual");
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  parallel_for(B * S, std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* gp = g.row(r / S);
      for (int64_t j = 0; j < D; ++j) yp[r * D + j] += gp[j * g.inner_stride] * xp[r * D + j];
    }
  });
}

}  // namespace qdit::kernels
