// Quantized Linear throughput and quantize-on-load speed at DiT shapes.
//
// BM_QLinear/<scheme>/M/K/N: forward of the scheme's Linear kernel (bf16 compute; "f32" and "bf16"
// are the plain oneDNN PackedLinear) on one thread by default (QDIT_BENCH_THREADS). Each iteration
// also runs the bf16 PackedLinear of the same shape, timed separately, so the `vs_bf16` counter
// (bf16 time / this time, the median over iterations; > 1 is faster than bf16) is a ratio measured
// side by side under the same machine load. GFLOPs counts 2*M*K*N per call. With one thread the times are the thread's CPU
// time (a shared machine preempts the benchmark; CPU time leaves that out), else wall time.
// BM_QLinearSmallM/<scheme>/M/K/N: the same for M = 1, 16, 64. BM_QLinearGelu: with a GELU (tanh)
// epilogue on both sides (a DiT MLP's first layer).
// BM_Decode/<scheme>/N/K: one decode of the whole weight into bf16 rows (what a forward pays on top
// of the GEMM), as weights per second.
// BM_Quantize/<scheme>/<src dtype>/N/K: quantize_weight on a bf16 or f32 weight (BM_QuantizeLoad:
// and the Linear kernel built from the result, all a quantize-on-load does); s_per_Gparam is
// seconds per billion parameters of the median call (thread CPU time with one thread, wall time
// with more; run with QDIT_BENCH_THREADS=2 for the load target).
// BM_ActQuant/M/K: Int8Linear's per-token activation quantization pass alone.
// The machine is shared: use --benchmark_repetitions=N and compare medians.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/gemm.h"
#include "qdit/quant/quantized_linear.h"
#include "qdit/quant/scheme.h"

using namespace qdit;
using namespace qdit::kernels;

namespace {

// Seconds of this thread's CPU time with one worker thread (everything runs on the caller), else
// of wall time.
double now_s() {
  if (num_threads() == 1) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool single_thread() {
  const char* v = std::getenv("QDIT_BENCH_THREADS");
  return !v || std::atoi(v) <= 1;
}

// DiT-like weights: small values, stored bf16 as checkpoints are.
Tensor dit_weight(int64_t n, int64_t k, DType dt) {
  Tensor w = qdit::bench::random_tensor({n, k}, 2);
  float* p = w.data<float>();
  for (int64_t i = 0; i < w.numel(); ++i) p[i] *= 0.05f;
  return dt == DType::F32 ? w : w.to(dt);
}

std::unique_ptr<LinearKernel> make_kernel(const std::string& scheme, const Tensor& w) {
  if (scheme == "f32") return make_float_linear(w, Tensor(), DType::F32);
  if (scheme == "bf16") return make_float_linear(w, Tensor(), DType::BF16);
  const quant::Scheme& s = quant::find_scheme(scheme);
  return quant::make_quantized_linear(quant::quantize_weight(s, w), Tensor(), DType::BF16);
}

void BM_QLinear(benchmark::State& state, std::string scheme, Activation act = Activation::None) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  qdit::bench::set_threads_from_env();
  Tensor x = qdit::bench::random_tensor({m, k}, 1);
  Tensor w = dit_weight(n, k, DType::BF16);
  auto lin = make_kernel(scheme, w);
  auto ref = make_kernel("bf16", w);
  Tensor y = Tensor::empty({m, n}, DType::F32), yr = Tensor::empty({m, n}, DType::F32);
  GemmOptions opt;
  opt.activation = act;
  lin->forward_into(x, y, opt);  // warm-up: primitive creation, first-touch of workspaces
  ref->forward_into(x, yr, opt);
  std::vector<double> ratios;
  for (auto _ : state) {
    const double t0 = now_s();
    lin->forward_into(x, y, opt);
    const double t1 = now_s();
    ref->forward_into(x, yr, opt);
    const double t2 = now_s();
    ratios.push_back((t2 - t1) / (t1 - t0));
    state.SetIterationTime(t1 - t0);
    benchmark::DoNotOptimize(y.raw_data());
  }
  qdit::bench::report_flops(state, 2.0 * m * k * n, scheme == "f32" ? DType::F32 : DType::BF16);
  // The median of the per-iteration ratios: a burst of load on the shared machine skews one pair.
  std::sort(ratios.begin(), ratios.end());
  state.counters["vs_bf16"] = ratios.empty() ? 0.0 : ratios[ratios.size() / 2];
  state.SetLabel(scheme + " isa=" + kernels::cpu::isa_name());
}

void BM_Decode(benchmark::State& state, std::string scheme) {
  const int64_t n = state.range(0), k = state.range(1);
  qdit::bench::set_threads_from_env();
  const quant::Scheme& s = quant::find_scheme(scheme);
  quant::QuantizedWeight q = quant::quantize_weight(s, dit_weight(n, k, DType::BF16));
  auto dec = s.decoder(q);
  Tensor tile = Tensor::empty({n, k}, DType::BF16);
  for (auto _ : state) {
    dec->decode_rows_bf16(0, n, tile.data<uint16_t>());
    benchmark::DoNotOptimize(tile.raw_data());
  }
  state.counters["weights_per_s"] =
      benchmark::Counter(static_cast<double>(n * k) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_Quantize(benchmark::State& state, std::string scheme, DType src, bool build_kernel) {
  const int64_t n = state.range(0), k = state.range(1);
  qdit::bench::set_threads_from_env();
  const quant::Scheme& s = quant::find_scheme(scheme);
  Tensor w = dit_weight(n, k, src);
  std::vector<double> times;
  for (auto _ : state) {
    const double t0 = now_s();
    quant::QuantizedWeight q = quant::quantize_weight(s, w);
    // With build_kernel, also the Linear kernel a load builds from it (int8dq packs its weights).
    if (build_kernel) benchmark::DoNotOptimize(quant::make_quantized_linear(q, Tensor(), DType::BF16).get());
    const double t1 = now_s();
    times.push_back(t1 - t0);
    state.SetIterationTime(t1 - t0);
    benchmark::DoNotOptimize(q.parts.begin()->second.raw_data());
  }
  // The median call: with two threads a call waits for the second core, which on a shared
  // machine is sometimes busy for milliseconds.
  std::sort(times.begin(), times.end());
  state.counters["s_per_Gparam"] = times.empty() ? 0.0 : times[times.size() / 2] / (static_cast<double>(n * k) * 1e-9);
  state.counters["threads"] = num_threads();
}

void BM_ActQuant(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1);
  qdit::bench::set_threads_from_env();
  Tensor x = qdit::bench::random_tensor({m, k}, 3);
  std::vector<int8_t> q(static_cast<size_t>(m * k));
  std::vector<float> s(static_cast<size_t>(m));
  for (auto _ : state) {
    quantize_rows_s8(x.data<float>(), m, k, 127.5f, q.data(), s.data());
    benchmark::DoNotOptimize(q.data());
  }
  state.counters["elems_per_s"] =
      benchmark::Counter(static_cast<double>(m * k) * state.iterations(), benchmark::Counter::kIsRate);
}

void linear_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {256, 1024, 4096})
    for (auto [k, n] : {std::pair<int64_t, int64_t>{1152, 1152}, {1152, 4608}, {4608, 1152}}) b->Args({m, k, n});
  b->Unit(benchmark::kMillisecond)->UseManualTime();
}

// Few tokens (a single image's pooled or text tokens, or small test sizes).
void small_m_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 16, 64})
    for (auto [k, n] : {std::pair<int64_t, int64_t>{1152, 1152}, {1152, 4608}}) b->Args({m, k, n});
  b->Unit(benchmark::kMicrosecond)->UseManualTime();
}

// One thread: the benchmark thread's CPU time (robust to preemption); more: wall time.
void weight_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1152, 1152})->Args({4608, 1152})->Args({1152, 4608})->Unit(benchmark::kMillisecond);
  if (!single_thread()) b->UseRealTime();
}

void quantize_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1152, 1152})->Args({4608, 1152})->Args({1152, 4608})->Unit(benchmark::kMillisecond)->UseManualTime();
}

const char* const kLinearSchemes[] = {"f32",  "bf16",  "int8dq",   "int8wo", "int4wo", "nf4",
                                      "qint8", "qint4", "float8wo", "fp4",    "nf4_dq"};
const char* const kDecodeSchemes[] = {"int8wo", "int4wo", "nf4", "nf4_dq", "fp4", "qint8", "qint4", "float8wo",
                                      "qfloat8"};
const char* const kQuantizeSchemes[] = {"int8wo", "int8dq", "qint8", "float8wo", "qfloat8", "llm_int8", "nf4",
                                        "int4wo"};

const bool registered = [] {
  for (const char* s : kLinearSchemes)
    benchmark::RegisterBenchmark((std::string("BM_QLinear/") + s).c_str(), BM_QLinear, std::string(s),
                                 Activation::None)
        ->Apply(linear_shapes);
  for (const char* s : {"bf16", "int8dq", "int8wo", "int4wo", "nf4"})
    benchmark::RegisterBenchmark((std::string("BM_QLinearSmallM/") + s).c_str(), BM_QLinear, std::string(s),
                                 Activation::None)
        ->Apply(small_m_shapes);
  // A DiT MLP's first layer: GELU (tanh) fused into the bf16 GEMM, applied after it by the 4-bit
  // AMX kernel.
  for (const char* s : {"int8dq", "int4wo", "nf4"})
    benchmark::RegisterBenchmark((std::string("BM_QLinearGelu/") + s).c_str(), BM_QLinear, std::string(s),
                                 Activation::GeluTanh)
        ->Args({256, 1152, 4608})
        ->Args({1024, 1152, 4608})
        ->Args({4096, 1152, 4608})
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  for (const char* s : kDecodeSchemes)
    benchmark::RegisterBenchmark((std::string("BM_Decode/") + s).c_str(), BM_Decode, std::string(s))
        ->Apply(weight_shapes);
  for (const char* s : kQuantizeSchemes)
    for (DType d : {DType::BF16, DType::F32})
      for (bool build : {false, true})
        benchmark::RegisterBenchmark((std::string(build ? "BM_QuantizeLoad/" : "BM_Quantize/") + s + "/" + dtype_name(d)).c_str(),
                                     BM_Quantize, std::string(s), d, build)
            ->Apply(quantize_shapes);
  benchmark::RegisterBenchmark("BM_ActQuant", BM_ActQuant)
      ->Args({256, 1152})
      ->Args({1024, 1152})
      ->Args({4096, 4608})
      ->Unit(benchmark::kMicrosecond);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
