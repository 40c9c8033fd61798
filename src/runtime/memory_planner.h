// The memory planner: predicts the peak memory of every phase of a pipeline run (loading,
// text encoding, denoising, decoding) from the pipeline's configs and tensor headers only, for a
// given size, batch, dtype, quantization and offload mode; and picks the least-offloaded plan
// that fits a budget. See docs/memory.md for the model and its calibration.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "qdit/pipelines/pipeline.h"
#include "qdit/runtime/weight_estimate.h"

namespace qdit::runtime {

struct PlanRequest {
  int64_t width = 0, height = 0;  // 0: the pipeline's default
  int batch = 1;                  // images per prompt
  int max_sequence_length = 0;    // 0: the pipeline's default
  float guidance = -1.0f;         // < 0: the pipeline's default (decides classifier-free guidance)
  DType compute = DType::F32;
  quant::PipelineQuantConfig quant;
  pipelines::Offload offload = pipelines::Offload::Model;
  int group = 1;  // blocks per streamed group
};

struct PhasePrediction {
  std::string name;
  size_t weights = 0;      // CpuAllocator weight bytes at the phase's peak (packed, quantized, f32)
  size_t mapped = 0;       // checkpoint pages in the RSS then (views in use, pages being packed)
  size_t activations = 0;  // activation bytes at the peak (incl. tensors kept across phases)
  size_t tracked = 0;      // what CpuAllocator would count at its peak
  size_t rss = 0;          // process peak RSS: baseline + the worst of loading and running
};

struct MemoryPrediction {
  PlanRequest request;  // with defaults filled in
  std::string pipeline_class;
  std::vector<ComponentWeights> components;
  std::vector<PhasePrediction> phases;
  size_t baseline = 0;  // process RSS before any weight is loaded (libraries, runtime)
  size_t peak_rss() const;
  std::string plan_str() const;  // "offload blocks (2 per group), quant transformer=int8wo, bf16"
};

// Reads model_index.json, the component configs and the safetensors headers of `dir`.
MemoryPrediction predict_memory(const std::string& dir, const PlanRequest& req);

// Quantization candidates for --quant auto, from the least to the most compressed.
std::vector<quant::PipelineQuantConfig> auto_quant_candidates(const std::string& dir);

struct PlanOptions {
  bool auto_quant = false;          // try auto_quant_candidates() instead of the request's quant
  bool fixed_offload = false;       // only the request's offload mode
  bool fixed_group = false;         // only the request's group size
};

// The least-offloaded plan whose predicted peak RSS fits `budget` (None, Model, then Blocks with
// the largest group that fits); under auto_quant, the least quantized candidate that has one.
// Throws a qdit::Error stating the smallest feasible budget when nothing fits.
MemoryPrediction choose_plan(const std::string& dir, const PlanRequest& base, size_t budget, const PlanOptions& opt);

// Guards a run without a budget against an out-of-memory kill late in the run: when `p` (the
// prediction for the request as given) exceeds `machine_bytes`, the error to give, naming the
// predicted peak, the machine's memory and the least-offloaded plan that would fit it (or the
// smallest feasible one); nullopt when it fits.
std::optional<std::string> check_fits_machine(const std::string& dir, const MemoryPrediction& p, size_t machine_bytes);

}  // namespace qdit::runtime
