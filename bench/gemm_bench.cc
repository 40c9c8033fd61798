// GEMM throughput of PackedLinear at DiT shapes, one thread by default (QDIT_BENCH_THREADS).
// Counters: GFLOP/s (2*M*K*N per call) and percent of this CPU's peak for the compute dtype.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "bench_common.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/amx_int8_gemm.h"
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

// The AMX s8 GEMM of Int8Linear alone (activations already quantized), f32 output with scales.
// With `cold`, each call takes the next of enough copies of the weight (400 MB) that its weights
// come from DRAM, not from the 300 MB L3 of this machine, as in a model's forward.
static void BM_AmxInt8Gemm(benchmark::State& state, bool cold) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  if (!cpu::AmxInt8Gemm::available()) {
    state.SkipWithError("no AMX-INT8 on this CPU");
    return;
  }
  qdit::bench::set_threads_from_env();
  Tensor w = Tensor::empty({n, k}, DType::I8), a = Tensor::empty({(m + 31) / 32 * 32, k}, DType::I8);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>(i * 7 % 251 - 125);
  for (int64_t i = 0; i < a.numel(); ++i) a.data<int8_t>()[i] = static_cast<int8_t>(i * 13 % 239 - 119);
  std::vector<std::unique_ptr<cpu::AmxInt8Gemm>> gs;
  const int64_t copies = cold ? ((int64_t{400} << 20) + n * k - 1) / (n * k) : 1;
  for (int64_t c = 0; c < copies; ++c) gs.push_back(std::make_unique<cpu::AmxInt8Gemm>(w.data<int8_t>(), n, k));
  Tensor ws = Tensor::full({n}, 1e-3f), as = Tensor::full({m}, 1e-2f), y = Tensor::empty({m, n}, DType::F32);
  size_t i = 0;
  for (auto _ : state) {
    gs[i++ % gs.size()]->run(a.data<int8_t>(), m, as.data<float>(), ws.data<float>(), {}, y.data<float>(), n);
    benchmark::DoNotOptimize(y.raw_data());
  }
  qdit::bench::report_flops(state, 2.0 * m * k * n, DType::I8);
}
BENCHMARK_CAPTURE(BM_AmxInt8Gemm, hot, false) GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_AmxInt8Gemm, cold, true)->Args({2048, 1152, 1152})->Args({2048, 4608, 1152})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// PixArt-Sigma's Linear shapes at 512x512 with CFG (2 x 1024 image tokens, 2 x 300 text tokens).
BENCHMARK_CAPTURE(BM_AmxInt8Gemm, pixart, false)
    ->Args({2048, 1152, 3456})->Args({2048, 1152, 1152})->Args({2048, 1152, 4608})->Args({2048, 4608, 1152})
    ->Args({600, 1152, 2304})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
