// This core's peak arithmetic rates, for judging the kernels (docs/speed.md): independent-chain
// microbenchmarks of the FMA/dot-product instructions (AVX2, AVX-512, AVX-512 BF16/VNNI, AMX
// tiles) and oneDNN's rate on one large GEMM per dtype (the practical peak). One thread; times
// are CPU time (the machine is shared: compare the best of several runs).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "bench_common.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/isa.h"
#include "qdit/kernels/gemm.h"

namespace {

constexpr int64_t kSteps = 1 << 20;

void report(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Twelve independent accumulators hide the latency; the empty asm keeps them in registers.
#define QDIT_12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define QDIT_KEEP(T)                                                                                       \
  __asm__ volatile("" : "+" T(a0), "+" T(a1), "+" T(a2), "+" T(a3), "+" T(a4), "+" T(a5), "+" T(a6), "+" T(a7), \
                   "+" T(a8), "+" T(a9), "+" T(a10), "+" T(a11))

__attribute__((target("avx2,fma"))) void BM_fma_ymm(benchmark::State& state) {
  for (auto _ : state) {
#define D(i) __m256 a##i = _mm256_set1_ps(static_cast<float>(i));
    QDIT_12(D)
#undef D
    const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-6f);
    for (int64_t s = 0; s < kSteps; ++s) {
#define F(i) a##i = _mm256_fmadd_ps(a##i, b, c);
      QDIT_12(F)
#undef F
      QDIT_KEEP("x");
    }
    benchmark::DoNotOptimize(a0);
  }
  report(state, 12.0 * kSteps * 16);
}

__attribute__((target("avx512f"))) void BM_fma_zmm(benchmark::State& state) {
  if (!qdit::kernels::cpu::has_avx512_bf16()) return state.SkipWithError("no AVX-512");
  for (auto _ : state) {
#define D(i) __m512 a##i = _mm512_set1_ps(static_cast<float>(i));
    QDIT_12(D)
#undef D
    const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-6f);
    for (int64_t s = 0; s < kSteps; ++s) {
#define F(i) a##i = _mm512_fmadd_ps(a##i, b, c);
      QDIT_12(F)
#undef F
      QDIT_KEEP("v");
    }
    benchmark::DoNotOptimize(a0);
  }
  report(state, 12.0 * kSteps * 32);
}

__attribute__((target("avx512f,avx512bf16"))) void BM_vdpbf16ps(benchmark::State& state) {
  if (!qdit::kernels::cpu::has_avx512_bf16()) return state.SkipWithError("no AVX-512 BF16");
  for (auto _ : state) {
#define D(i) __m512 a##i = _mm512_setzero_ps();
    QDIT_12(D)
#undef D
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3F80);
    for (int64_t s = 0; s < kSteps; ++s) {
#define F(i) a##i = _mm512_dpbf16_ps(a##i, x, x);
      QDIT_12(F)
#undef F
      QDIT_KEEP("v");
    }
    benchmark::DoNotOptimize(a0);
  }
  report(state, 12.0 * kSteps * 64);  // 16 lanes x 2 products x 2 flops
}

__attribute__((target("avx512f,avx512vnni"))) void BM_vpdpbusd(benchmark::State& state) {
  if (!qdit::kernels::cpu::has_avx512_vnni()) return state.SkipWithError("no AVX-512 VNNI");
  for (auto _ : state) {
#define D(i) __m512i a##i = _mm512_setzero_si512();
    QDIT_12(D)
#undef D
    const __m512i x = _mm512_set1_epi8(1);
    for (int64_t s = 0; s < kSteps; ++s) {
#define F(i) a##i = _mm512_dpbusd_epi32(a##i, x, x);
      QDIT_12(F)
#undef F
      QDIT_KEEP("v");
    }
    benchmark::DoNotOptimize(a0);
  }
  report(state, 12.0 * kSteps * 128);  // 16 lanes x 4 products x 2 ops
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Four independent 16x16 accumulators (tmm0-3) from two A and two B tiles: each instruction is
// 16x16x32 bf16 (or 16x16x64 int8) multiply-adds.
template <bool kInt8>
__attribute__((target("amx-tile,amx-bf16,amx-int8"))) void amx_peak(benchmark::State& state) {
  if (!qdit::kernels::cpu::has_amx_bf16()) return state.SkipWithError("no AMX (or not enabled by the OS)");
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  alignas(64) static uint8_t buf[1024];
  std::memset(buf, 0, sizeof buf);
  _tile_loadconfig(&cfg);
  for (auto _ : state) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf, 64);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    for (int64_t s = 0; s < kSteps / 16; ++s) {
      if constexpr (kInt8) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      } else {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, buf, 64);
    benchmark::DoNotOptimize(buf);
  }
  _tile_release();
  report(state, 4.0 * (kSteps / 16) * 16 * 16 * (kInt8 ? 64 : 32) * 2);
}
void BM_amx_bf16(benchmark::State& state) { amx_peak<false>(state); }
void BM_amx_int8(benchmark::State& state) { amx_peak<true>(state); }

// oneDNN on one large GEMM (M = 2048 tokens, K = N = 3072), weights pre-packed: what qdit's
// Linears can reach at best. int8: Int8Linear (activations quantized per token inside).
void BM_onednn_gemm(benchmark::State& state, const char* kind) {
  qdit::set_num_threads(1);
  const int64_t m = 2048, k = 3072, n = 3072;
  const qdit::Tensor x = qdit::bench::random_tensor({m, k}, 1);
  std::unique_ptr<qdit::kernels::LinearKernel> lin;
  if (std::strcmp(kind, "int8") == 0) {
    qdit::Tensor q = qdit::Tensor::empty({n, k}, qdit::DType::I8);
    for (int64_t i = 0; i < n * k; ++i) q.data<int8_t>()[i] = static_cast<int8_t>((i * 7) % 255 - 127);
    lin = std::make_unique<qdit::kernels::Int8Linear>(q, qdit::Tensor::full({n}, 1e-3f), qdit::Tensor());
  } else {
    const qdit::Tensor w = qdit::bench::random_tensor({n, k}, 2);
    lin = qdit::kernels::make_float_linear(w, qdit::Tensor(),
                                           std::strcmp(kind, "f32") == 0 ? qdit::DType::F32 : qdit::DType::BF16);
  }
  qdit::Tensor y = qdit::Tensor::empty({m, n}, qdit::DType::F32);
  lin->forward_into(x, y);
  for (auto _ : state) {
    lin->forward_into(x, y);
    benchmark::DoNotOptimize(y.raw_data());
  }
  report(state, 2.0 * m * k * n);
}

}  // namespace

BENCHMARK(BM_fma_ymm);
BENCHMARK(BM_fma_zmm);
BENCHMARK(BM_vdpbf16ps);
BENCHMARK(BM_vpdpbusd);
BENCHMARK(BM_amx_bf16);
BENCHMARK(BM_amx_int8);
BENCHMARK_CAPTURE(BM_onednn_gemm, f32_2048x3072x3072, "f32")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_onednn_gemm, bf16_2048x3072x3072, "bf16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_onednn_gemm, int8dq_2048x3072x3072, "int8")->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
