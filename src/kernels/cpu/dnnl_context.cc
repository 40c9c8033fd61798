#include "qdit/kernels/cpu/dnnl_context.h"

namespace qdit::kernels::cpu {
dnnl::engine& dnnl_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& dnnl_stream() {
  static dnnl::stream s(dnnl_engine());
  return s;
}
}  // namespace qdit::kernels::cpu
