#include "qdit/kernels/cpu/dnnl_context.h"

namespace qdit::kernels::cpu {
dnnl::engine& dnnl_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::post_ops make_post_ops(Activation act, bool accumulate, dnnl::post_ops po) {
  switch (act) {
    case Activation::None: break;
    case Activation::GeluTanh: po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f); break;
    case Activation::GeluErf: po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f); break;
    case Activation::Silu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f); break;
    case Activation::Relu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f); break;
  }
  if (accumulate) po.append_sum(1.f);
  return po;
}

dnnl::eltwise_forward make_activation_eltwise(int64_t m, int64_t n, Activation act) {
  dnnl::algorithm alg = dnnl::algorithm::eltwise_relu;
  float alpha = 0.0f;
  switch (act) {
    case Activation::GeluTanh: alg = dnnl::algorithm::eltwise_gelu_tanh; break;
    case Activation::GeluErf: alg = dnnl::algorithm::eltwise_gelu_erf; break;
    case Activation::Silu:
      alg = dnnl::algorithm::eltwise_swish;
      alpha = 1.0f;
      break;
    case Activation::Relu:
    case Activation::None: break;
  }
  dnnl::memory::desc md({m, n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, alg, md, alpha, 0.0f);
  return dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(d, dnnl_engine()));
}

dnnl::stream& dnnl_stream() {
  // One stream per thread: streamed blocks are packed on a prefetch thread while the caller's
  // thread runs GEMMs, and a oneDNN stream must not be used from two threads at once.
  thread_local dnnl::stream s(dnnl_engine());
  return s;
}
}  // namespace qdit::kernels::cpu
