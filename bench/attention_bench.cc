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

// The DiT call shapes as the models make them: f32 q/k/v heads of [B, S, H*D] activations with
// bf16 compute (attention_bf16 rounds while packing); PixArt's cross-attention has a key-padding
// mask over 300 text tokens.
void BM_model_attention(benchmark::State& state, int64_t batch, int64_t heads, int64_t sq, int64_t skv, int64_t dim,
                        bool mask) {
  qdit::set_num_threads(1);
  auto heads_view = [&](int64_t s, uint32_t seed) {
    return random_tensor({batch, s, heads, dim}, seed, DType::F32).permute({0, 2, 1, 3});
  };
  const Tensor q = heads_view(sq, 1), k = heads_view(skv, 2), v = heads_view(skv, 3);
  const Tensor m = Tensor::zeros({batch, 1, 1, skv}, DType::F32);
  Tensor out = Tensor::empty({batch, sq, heads * dim}, DType::F32);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  for (auto _ : state) {
    qdit::kernels::attention_bf16(q, k, v, mask ? &m : nullptr, scale, &out);
    benchmark::DoNotOptimize(out.raw_data());
    benchmark::ClobberMemory();
  }
  const double gflop = 4.0 * batch * heads * sq * skv * dim * 1e-9;
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(qdit::kernels::cpu::isa_name());
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

BENCHMARK_CAPTURE(BM_model_attention, pixart512_self_B2_H16_S1024_D72, 2, 16, 1024, 1024, 72, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_model_attention, pixart512_cross_B2_H16_S1024_L300_D72, 2, 16, 1024, 300, 72, true)->Apply(shapes);
BENCHMARK_CAPTURE(BM_model_attention, pixart512_cross_nomask_B2_H16_S1024_L300_D72, 2, 16, 1024, 300, 72, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_model_attention, sd3_512_B2_H24_S1357_D64, 2, 24, 1357, 1357, 64, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_model_attention, flux512_B2_H24_S1536_D128, 2, 24, 1536, 1536, 128, false)->Apply(shapes);

BENCHMARK_MAIN();
