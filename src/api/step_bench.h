// `qdit bench-step`: one transformer forward of a real-size DiT (random weights from make-model's
// plan, generated in memory, or a pipeline folder's transformer) at a given resolution and batch,
// timed, with the model's FLOPs counted and reported against peak rates.
//
// FLOPs: every Linear call counts 2*M*K*N (M = rows of its input), every attention call
// 4*B*H*Sq*Skv*D (Q.K^T and P.V); everything else (norms, activations, softmax exponentials,
// RoPE) is not counted. dit_step_flops() gives the same count in closed form per architecture
// (docs/speed.md writes the formulas out); the test checks it against the counters.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qdit/core/profile.h"
#include "qdit/core/tensor.h"
#include "qdit/io/json_config.h"
#include "qdit/quant/quant_config.h"

namespace qdit::api {

// FLOPs of one forward, split by kind.
struct DitFlops {
  double linear = 0;     // Linears the model builds through its LinearFactory
  double patch = 0;      // the patch-embedding convolution run as a GEMM outside the factory
  double attention = 0;  // 4*B*H*Sq*Skv*D per attention
  double total() const { return linear + patch + attention; }
};

// Closed-form FLOPs of `class_name` (PixArtTransformer2DModel, SD3Transformer2DModel,
// FluxTransformer2DModel, AuraFlowTransformer2DModel) with this config for a batch of `batch`
// latents of latent_h x latent_w pixels and text_len text tokens (before AuraFlow's register
// tokens). Throws naming the class when unknown.
DitFlops dit_step_flops(const std::string& class_name, const io::JsonConfig& config, int64_t batch, int64_t latent_h,
                        int64_t latent_w, int64_t text_len);

// The config keys holding a DiT's depth, outer stream first ({"num_layers"} for PixArt/SD3,
// {"num_layers", "num_single_layers"} for Flux, {"num_mmdit_layers", "num_single_dit_layers"}
// for AuraFlow), and the weight-name prefixes of those blocks.
struct DepthKeys {
  std::vector<std::string> keys, prefixes;
};
DepthKeys dit_depth_keys(const std::string& class_name);

struct StepBenchOptions {
  std::string arch;       // make-model arch ("pixart-sigma", "sd3-medium", "flux-dev", ...)
  std::string model_dir;  // instead of arch: a pipeline (or transformer) folder on disk
  bool tiny = false;      // make-model's --tiny configs (tests)
  DType compute = DType::BF16;
  quant::PipelineQuantConfig quant;  // its rule for "transformer" applies
  bool fuse_qkv = true;
  int64_t width = 512, height = 512, batch = 2;
  int64_t text_len = 0;         // 0: the pipeline's default (PixArt 300, SD3 333, Flux 512, AuraFlow 256)
  std::vector<int64_t> layers;  // depth override per entry of dit_depth_keys (empty: full depth)
  int warmup = 1, repeat = 3;
  int threads = 0;  // 0: keep the current thread count
  uint64_t seed = 0;
  bool measure_peak = true;  // time a large GEMM of the same kind for "% of this machine's peak"
};

struct StepBenchResult {
  std::string class_name, description;  // description: arch or folder, dtype, quant, depth
  int64_t parameters = 0;               // of the blocks built
  size_t weight_bytes = 0;              // resident (packed / quantized)
  double build_seconds = 0;
  int64_t batch = 0, image_tokens = 0, text_tokens = 0;
  std::vector<int64_t> layers, full_layers;
  std::vector<double> seconds;      // wall time of each timed forward
  std::vector<double> cpu_seconds;  // process CPU time of each timed forward
  std::vector<size_t> system_allocations;  // buffers each timed forward took from the system
  double median() const;
  double min() const;
  DitFlops flops;              // closed form, for the depth run
  DitFlops full_flops;         // closed form, at full depth
  double counted_flops = 0;    // linear + attention as counted by the profile scopes (per forward)
  std::vector<profile::OpTotal> ops;  // per forward (averaged over the timed runs)
  // Peak rates in GFLOP/s for the arithmetic the Linears use (f32, bf16, or int8 for int8dq).
  std::string peak_kind;      // "f32", "bf16", "int8"
  double guide_peak = 0;      // one Zen 4 core (shared/guides/cpu-limits.md) x threads
  double machine_peak = 0;    // measured: oneDNN GEMM 2048x3072x3072 of that kind, this process
  int threads = 1;
};

StepBenchResult run_step_bench(const StepBenchOptions& opt);

// Two configurations of one model built side by side, their timed forwards interleaved (a, b, a,
// b, ...): on a machine whose speed drifts within minutes the per-pair ratios stay comparable.
// No per-op times (the profile would mix them).
std::pair<StepBenchResult, StepBenchResult> run_step_bench_versus(const StepBenchOptions& a, const StepBenchOptions& b);
// "versus: ..." line: b's time over a's (how many times faster a is), by medians and per pair.
std::string format_versus(const StepBenchResult& a, const StepBenchResult& b);

// Human-readable report (several lines) and one markdown table row.
std::string format_step_bench(const StepBenchResult& r, bool with_ops);
std::string step_bench_markdown_row(const StepBenchResult& r);

}  // namespace qdit::api
