// PackedLinear on oneDNN matmul. Weights [N,K] are viewed as a [K,N] matrix with "ba" strides and
// reordered once into the layout the kernel selected (format any); primitives are cached per
// (M, options). The primitive for the first M decides the packed layout; later M reuse it.
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <oneapi/dnnl/dnnl.hpp>

#include "qdit/core/error.h"
#include "qdit/kernels/cpu/convert.h"
#include "qdit/kernels/cpu/dnnl_context.h"
#include "qdit/kernels/gemm.h"

namespace qdit::kernels {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using cpu::dnnl_engine;
using cpu::dnnl_stream;

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::GeluErf: return "gelu";
    case Activation::Silu: return "silu";
    case Activation::Relu: return "relu";
  }
  return "?";
}

float apply_activation(Activation a, float x) {
  switch (a) {
    case Activation::None: return x;
    case Activation::GeluTanh: {
      const float k = 0.7978845608028654f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
    }
    case Activation::GeluErf: return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
    case Activation::Silu: return x / (1.0f + std::exp(-x));
    case Activation::Relu: return x > 0 ? x : 0.0f;
  }
  return x;
}

namespace {

dt to_dnnl(DType d) {
  switch (d) {
    case DType::F32: return dt::f32;
    case DType::BF16: return dt::bf16;
    case DType::F16: return dt::f16;
    default: fail("[linear] unsupported weight dtype ", dtype_name(d));
  }
}

// Key of the primitive cache: M plus the epilogue and the output dtype.
struct PrimKey {
  int64_t m;
  Activation act;
  bool accumulate;
  bool bf16_out;
  bool operator<(const PrimKey& o) const {
    return std::tie(m, act, accumulate, bf16_out) < std::tie(o.m, o.act, o.accumulate, o.bf16_out);
  }
};

}  // namespace

struct PackedLinear::Impl {
  memory::desc packed_md;
  memory packed_weights;
  memory bias_mem;
  bool has_bias = false;
  dt compute_dt;
  mutable std::mutex mu;
  mutable std::map<PrimKey, dnnl::matmul> prims;

  dnnl::matmul::primitive_desc make_pd(int64_t m, int64_t k, int64_t n, const memory::desc& wmd,
                                       Activation act, bool accumulate, bool bf16_out = false) const {
    memory::desc src_md({m, k}, compute_dt, tag::ab);
    memory::desc dst_md({m, n}, bf16_out ? dt::bf16 : dt::f32, tag::ab);
    memory::desc bias_md({1, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_post_ops(cpu::make_post_ops(act, accumulate));
    dnnl::matmul::desc d = has_bias ? dnnl::matmul::desc(src_md, wmd, bias_md, dst_md)
                                    : dnnl::matmul::desc(src_md, wmd, dst_md);
    return dnnl::matmul::primitive_desc(d, attr, dnnl_engine());
  }
};

bool native_bf16_gemm_available() {
  static const bool ok = [] {
    try {
      memory::desc a({16, 16}, dt::bf16, tag::ab), b({16, 16}, dt::bf16, tag::any), c({16, 16}, dt::f32, tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), dnnl_engine());
      // A reference (non-JIT) implementation is too slow to count as available.
      return std::string(pd.impl_info_str()).find("ref") == std::string::npos;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

PackedLinear::PackedLinear(const Tensor& weight, const Tensor& bias, DType compute)
    : impl_(std::make_unique<Impl>()), compute_(compute) {
  QDIT_CHECK(weight.dim() == 2, "[linear] weight must be [out, in], got ", weight.desc());
  QDIT_CHECK(compute == DType::F32 || compute == DType::BF16, "[linear] compute dtype must be f32 or bf16, got ",
             dtype_name(compute));
  QDIT_CHECK(compute == DType::F32 || native_bf16_gemm_available(),
             "[linear] this CPU has no bf16 GEMM in oneDNN; use make_float_linear (bf16 tiles expanded to f32)");
  n_ = weight.size(0);
  k_ = weight.size(1);
  impl_->compute_dt = to_dnnl(compute);
  if (bias.defined()) {
    QDIT_CHECK(bias.numel() == n_, "[linear] bias has ", bias.numel(), " elements, expected ", n_);
    impl_->has_bias = true;
  }

  // Source weights in their stored dtype, cast to the compute dtype by the reorder itself.
  Tensor w = weight.contiguous();
  if (w.dtype() != DType::F32 && w.dtype() != compute) w = w.to(DType::F32);
  memory::desc user_md({k_, n_}, to_dnnl(w.dtype()), tag::ba);
  memory user_mem(user_md, dnnl_engine(), w.raw_data());

  memory::desc any_md({k_, n_}, impl_->compute_dt, tag::any);
  const int64_t typical_m = 1024;  // the layout a DiT-sized M prefers
  auto pd = impl_->make_pd(typical_m, k_, n_, any_md, Activation::None, false);
  impl_->packed_md = pd.weights_desc();
  // Packed weights are accounted as model weights.
  const size_t packed_size = impl_->packed_md.get_size();
  void* buf = CpuAllocator::instance().allocate(packed_size, MemTag::Weights);
  impl_->packed_weights = memory(impl_->packed_md, dnnl_engine(), buf);
  dnnl::reorder(user_mem, impl_->packed_weights).execute(dnnl_stream(), user_mem, impl_->packed_weights);

  if (impl_->has_bias) {
    memory::desc bias_md({1, n_}, dt::f32, tag::ab);
    void* bbuf = CpuAllocator::instance().allocate(n_ * sizeof(float), MemTag::Weights);
    impl_->bias_mem = memory(bias_md, dnnl_engine(), bbuf);
    Tensor bf = bias.contiguous().to(DType::F32);
    std::memcpy(bbuf, bf.raw_data(), n_ * sizeof(float));
  }
  dnnl_stream().wait();
}

PackedLinear::~PackedLinear() {
  if (!impl_) return;
  CpuAllocator::instance().deallocate(impl_->packed_weights.get_data_handle(), impl_->packed_md.get_size(),
                                      MemTag::Weights);
  if (impl_->has_bias)
    CpuAllocator::instance().deallocate(impl_->bias_mem.get_data_handle(), n_ * sizeof(float), MemTag::Weights);
}

size_t PackedLinear::weight_bytes() const {
  return impl_->packed_md.get_size() + (impl_->has_bias ? n_ * sizeof(float) : 0);
}

void LinearKernel::forward_quantized(const QuantizedRows&, Tensor&, const GemmOptions&) const {
  fail("[linear] this kernel takes f32 rows, not quantized ones (input_quantization() is empty)");
}

Tensor LinearKernel::forward(const Tensor& x, const GemmOptions& opt) const {
  QDIT_CHECK(!opt.accumulate, "[linear] accumulate needs forward_into with the addend in y");
  Shape out_shape = x.shape();
  QDIT_CHECK(!out_shape.empty(), "[linear] input must have at least one dimension");
  out_shape.back() = out_features();
  Tensor y = Tensor::empty(out_shape, DType::F32);
  forward_into(x, y, opt);
  return y;
}

void PackedLinear::forward_into(const Tensor& x_in, Tensor& y, const GemmOptions& opt) const {
  QDIT_CHECK(x_in.dim() >= 1 && x_in.size(-1) == k_, "[linear] input ", x_in.desc(), " does not end in in_features=", k_);
  QDIT_CHECK(x_in.dtype() == DType::F32 || x_in.dtype() == DType::BF16, "[linear] input must be f32 or bf16, got ",
             x_in.desc());
  const int64_t m = x_in.numel() / k_;
  const bool bf16_out = y.dtype() == DType::BF16;
  QDIT_CHECK((y.dtype() == DType::F32 || (bf16_out && writes_bf16())) && y.is_contiguous() && y.numel() == m * n_,
             "[linear] output ", y.desc(), " must be contiguous f32", writes_bf16() ? " or bf16" : "", " with ", m,
             "x", n_, " elements");
  QDIT_CHECK(!bf16_out || !opt.accumulate, "[linear] a bf16 output takes no accumulate");
  if (m == 0) return;
  Tensor x = x_in.contiguous();
  Tensor src = x;
  if (compute_ == DType::BF16 && x.dtype() == DType::F32) {
    src = Tensor::empty(x.shape(), DType::BF16, MemTag::Workspace);
    cpu::f32_to_bf16_buffer(x.data<float>(), src.data<uint16_t>(), x.numel());
  } else if (compute_ == DType::F32 && x.dtype() == DType::BF16) {
    src = x.to(DType::F32);
  }

  dnnl::matmul prim;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PrimKey key{m, opt.activation, opt.accumulate, bf16_out};
    auto it = impl_->prims.find(key);
    if (it == impl_->prims.end()) {
      auto pd = impl_->make_pd(m, k_, n_, impl_->packed_md, opt.activation, opt.accumulate, bf16_out);
      it = impl_->prims.emplace(key, dnnl::matmul(pd)).first;
    }
    prim = it->second;
  }
  memory src_mem({{m, k_}, impl_->compute_dt, tag::ab}, dnnl_engine(), src.raw_data());
  memory dst_mem({{m, n_}, bf16_out ? dt::bf16 : dt::f32, tag::ab}, dnnl_engine(), y.raw_data());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_mem},
                                       {DNNL_ARG_WEIGHTS, impl_->packed_weights},
                                       {DNNL_ARG_DST, dst_mem}};
  if (impl_->has_bias) args.emplace(DNNL_ARG_BIAS, impl_->bias_mem);
  prim.execute(dnnl_stream(), args);
  dnnl_stream().wait();
}

Tensor linear_reference(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Activation act) {
  const int64_t n = weight.size(0), k = weight.size(1);
  QDIT_CHECK(x_in.size(-1) == k, "[linear_reference] shape mismatch");
  const int64_t m = x_in.numel() / k;
  std::vector<float> x = x_in.to_vector(), w = weight.to_vector();
  std::vector<float> b = bias.defined() ? bias.to_vector() : std::vector<float>(n, 0.0f);
  Shape out_shape = x_in.shape();
  out_shape.back() = n;
  Tensor y = Tensor::empty(out_shape, DType::F32);
  float* yp = y.data<float>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = b[j];
      for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(x[i * k + p]) * w[j * k + p];
      yp[i * n + j] = apply_activation(act, static_cast<float>(acc));
    }
  return y;
}

}  // namespace qdit::kernels
