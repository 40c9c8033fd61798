// The process-wide oneDNN CPU engine and stream shared by the CPU kernels (GEMM, conv).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include "qdit/kernels/gemm.h"

namespace qdit::kernels::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
// GEMM epilogue as oneDNN post-ops: y = act(x W + b), then y_old + that when accumulating (the
// sum post-op runs after the eltwise, which is what GemmOptions::accumulate promises).
dnnl::post_ops make_post_ops(Activation act, bool accumulate);
}  // namespace qdit::kernels::cpu
