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

dnnl::stream& dnnl_stream() {
  // One stream per thread: streamed blocks are packed on a prefetch thread while the caller's
  // thread runs GEMMs, and a oneDNN stream must not be used from two threads at once.
  thread_local dnnl::stream s(dnnl_engine());
  return s;
}
}  // namespace qdit::kernels::cpu
