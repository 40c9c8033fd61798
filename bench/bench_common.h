// Shared helpers for the bench programs: thread count from QDIT_BENCH_THREADS (default 1),
// random inputs, and GFLOP/s + percent-of-peak counters.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

#include "qdit/core/parallel.h"
#include "qdit/core/tensor.h"
#include "qdit/kernels/cpu/isa.h"

namespace qdit::bench {

inline void set_threads_from_env() {
  const char* v = std::getenv("QDIT_BENCH_THREADS");
  set_num_threads(v ? std::atoi(v) : 1);
}

inline Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Per-core peak FLOP/s of this CPU for the dtype's arithmetic. On AVX-512 BF16 (Zen 4 as measured
// in ../shared/guides/cpu-limits.md): f32 118, bf16 236 GFLOP/s. On AVX2-only Zen 3 (2 FMA pipes
// x 8 lanes x 2 flops at ~3.0-3.5 GHz), bf16 has no dot-product instruction and runs as f32.
inline double peak_gflops_per_core(DType compute) {
  const char* v = std::getenv("QDIT_PEAK_GFLOPS");
  if (v) return std::atof(v);
  if (kernels::cpu::has_avx512_bf16()) return compute == DType::BF16 ? 236.0 : 118.0;
  return 2 * 8 * 2 * 3.4;  // 108.8
}

inline void report_flops(benchmark::State& state, double flops_per_iter, DType compute) {
  state.counters["GFLOPs"] =
      benchmark::Counter(flops_per_iter * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
  const int threads = num_threads();
  state.counters["peak_GFLOPs"] = peak_gflops_per_core(compute) * threads;
  state.SetLabel(std::string(dtype_name(compute)) + " isa=" + kernels::cpu::isa_name());
}

}  // namespace qdit::bench
