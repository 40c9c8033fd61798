// The process-wide oneDNN CPU engine and stream shared by the CPU kernels (GEMM, conv).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace qdit::kernels::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
}  // namespace qdit::kernels::cpu
