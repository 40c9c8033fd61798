// Fused attention throughput, one thread, at the reference shape and DiT shapes.
// Counters: GFLOP/s (4*B*H*S^2*D flops per call) and pct_peak, the percentage of one Zen 4 core's
// nominal peak (236 GFLOP/s bf16 vdpbf16ps, 118 GFLOP/s f32 FMA). On CPUs without AVX-512 the
// bf16 path computes in f32 FMA; BM_fma_peak measures this core's AVX2 FMA peak for comparison.
// Times are CPU time of the one thread (robust to other load); run with
// --benchmark_repetitions=N and compare medians: the machine is shared.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "qdit/core/parallel.h"
#include "qdit/kernels/attention.h"
#include "qdit/kernels/cpu/isa.h"

namespace {

using qdit::DType;
using qdit::Tensor;

Tensor random_tensor(const qdit::Shape& shape, uint32_t seed, DType dt) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(qdit::shape_numel(shape)));
  for (auto& x : v) x = u(rng);
  Tensor t = Tensor::from_vector(v, shape);
  return dt == DType::F32 ? t : t.to(dt);
}

void BM_attention(benchmark::State& state, DType dt, int64_t heads, int64_t seq, int64_t dim) {
  qdit::set_num_threads(1);
  const Tensor q = random_tensor({1, heads, seq, dim}, 1, dt);
  const Tensor k = random_tensor({1, heads, seq, dim}, 2, dt);
  const Tensor v = random_tensor({1, heads, seq, dim}, 3, dt);
  Tensor out = Tensor::empty({1, seq, heads * dim}, DType::F32);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  for (auto _ : state) {
    qdit::kernels::attention(q, k, v, nullptr, scale, &out);
    benchmark::DoNotOptimize(out.raw_data());
    benchmark::ClobberMemory();
  }
  const double gflop = 4.0 * heads * seq * seq * dim * 1e-9;
  const double peak = dt == DType::BF16 ? 236.0 : 118.0;
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] =
      benchmark::Counter(gflop * 100.0 / peak, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(qdit::kernels::cpu::isa_name()) + ", % of " +
                 (dt == DType::BF16 ? "236" : "118") + " GFLOP/s");
}

// This core's f32 FMA peak with 256-bit FMAs (14 independent chains hide the FMA latency).
__attribute__((target("avx2,fma"))) void BM_fma_peak(benchmark::State& state) {
  constexpr int kChains = 14;
  constexpr int64_t kSteps = 1 << 20;
  for (auto _ : state) {
    __m256 acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int64_t s = 0; s < kSteps; ++s) {
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
    }
    for (int i = 1; i < kChains; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    benchmark::DoNotOptimize(acc[0]);
  }
  const double gflop = 2.0 * 8 * kChains * kSteps * 1e-9;
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
}

void shapes(benchmark::internal::Benchmark* b) { b->Unit(benchmark::kMillisecond); }

}  // namespace

BENCHMARK(BM_fma_peak);
BENCHMARK_CAPTURE(BM_attention, bf16_H16_S4096_D72, DType::BF16, 16, 4096, 72)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, f32_H16_S4096_D72, DType::F32, 16, 4096, 72)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, bf16_H16_S1024_D72, DType::BF16, 16, 1024, 72)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, f32_H16_S1024_D72, DType::F32, 16, 1024, 72)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, bf16_H24_S4096_D64, DType::BF16, 24, 4096, 64)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, f32_H24_S4096_D64, DType::F32, 24, 4096, 64)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, bf16_H24_S1024_D128, DType::BF16, 24, 1024, 128)->Apply(shapes);
BENCHMARK_CAPTURE(BM_attention, f32_H24_S1024_D128, DType::F32, 24, 1024, 128)->Apply(shapes);

BENCHMARK_MAIN();
