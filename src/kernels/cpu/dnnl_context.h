// The process-wide oneDNN CPU engine and the calling thread's stream, shared by the CPU kernels (GEMM, conv).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include "qdit/kernels/gemm.h"

namespace qdit::kernels::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
// GEMM epilogue as oneDNN post-ops: y = act(x W + b), then y_old + that when accumulating (the
// sum post-op runs after the eltwise, which is what GemmOptions::accumulate promises).
// `base` holds post-ops that run first (e.g. the per-token scale of an int8 GEMM).
dnnl::post_ops make_post_ops(Activation act, bool accumulate, dnnl::post_ops base = dnnl::post_ops());
// The activation alone as an in-place-capable oneDNN eltwise over a dense f32 [m, n] (the code
// the eltwise post-op runs). act must not be None.
dnnl::eltwise_forward make_activation_eltwise(int64_t m, int64_t n, Activation act);
}  // namespace qdit::kernels::cpu
