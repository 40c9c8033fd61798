// GEMM throughput of PackedLinear at DiT shapes, one thread by default (QDIT_BENCH_THREADS).
// Counters: GFLOP/s (2*M*K*N per call) and percent of this CPU's peak for the compute dtype.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "bench_common.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/gemm.h"

using namespace qdit;
using namespace qdit::kernels;

static void BM_Linear(benchmark::State& state, DType compute) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  qdit::bench::set_threads_from_env();
  Tensor x = qdit::bench::random_tensor({m, k}, 1);
  Tensor w = qdit::bench::random_tensor({n, k}, 2);
  auto lin = make_float_linear(w, Tensor(), compute);
  Tensor y = Tensor::empty({m, n}, DType::F32);
  for (auto _ : state) {
    lin->forward_into(x, y);
    benchmark::DoNotOptimize(y.raw_data());
  }
  qdit::bench::report_flops(state, 2.0 * m * k * n, compute);
}

#define GEMM_SHAPES                                                                             \
  ->Args({256, 1152, 1152})->Args({1024, 1152, 1152})->Args({4096, 1152, 4608})                 \
  ->Args({1024, 3072, 3072})->Args({4096, 4608, 1152})->Unit(benchmark::kMillisecond)->UseRealTime()

BENCHMARK_CAPTURE(BM_Linear, f32, DType::F32) GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_Linear, bf16, DType::BF16) GEMM_SHAPES;

BENCHMARK_MAIN();
