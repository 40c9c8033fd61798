// Text-to-image pipelines as diffusers defines them. A Pipeline is built from a pipeline folder
// (model_index.json + components) and turns a GenerateRequest into images. Hooks let callers
// watch progress and record intermediate tensors under diffusers-golden names
// ("step0.transformer_in", "latents_final", ...), which is how `qdit check` compares pipelines.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/nn/context.h"
#include "qdit/quant/quant_config.h"

namespace qdit::pipelines {

struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;
  int steps = 0;              // 0: the pipeline's default
  float guidance = -1.0f;     // < 0: the pipeline's default
  uint64_t seed = 0;
  int64_t width = 0, height = 0;  // 0: the model's default size
  int max_sequence_length = 0;    // 0: the pipeline's default
  int num_images = 1;             // images per prompt (diffusers' num_images_per_prompt): the batch
  Tensor latents;                 // optional initial latents [num_images, C, h, w] (replaces the seeded noise)
};

struct PhaseStats {
  std::string name;
  double seconds = 0;
  size_t tracked_peak_bytes = 0;  // CpuAllocator peak during the phase
  size_t rss_peak_bytes = 0;      // process peak RSS during the phase (VmHWM reset at its start)
};

// A component as it was loaded: the bytes its checkpoint holds and the bytes its weights occupy
// once built (quantized, packed), with the scheme it was quantized with.
struct ComponentStats {
  std::string name, class_name, quant = "none";
  size_t checkpoint_bytes = 0, resident_bytes = 0;  // resident: without streamed blocks
  std::string residency = {};  // "whole run", "per phase", "blocks streamed (N per group)"
};

struct GenerateResult {
  Tensor image;    // [1, 3, H, W] f32 in [0, 1] (postprocessed)
  Tensor latents;  // final latents [1, C, h, w]
  std::vector<PhaseStats> phases;
  std::vector<ComponentStats> components;  // in load order
  // The settings actually used (defaults filled in), for the PNG's parameters chunk.
  GenerateRequest used;
};

struct RunHooks {
  // Called with (phase, done, total), e.g. ("denoise", 3, 20).
  std::function<void(const std::string&, int, int)> progress;
  // Receives intermediate tensors under the golden names; null to skip recording.
  std::function<void(const std::string&, const Tensor&)> trace;
  // Text embeddings to use instead of running tokenizers + text encoders (golden "encode_prompt.*").
  std::function<Tensor(const std::string&)> provided;
};

// Where the model components live during a run (docs/memory.md).
enum class Offload {
  None,    // every model component is loaded when the pipeline is, and kept
  Model,   // each component is loaded for its phase and released after (text encoders, transformer, VAE)
  Blocks,  // as Model, and the transformer's and text encoders' blocks are streamed a group at a time
};
const char* offload_name(Offload o);
std::optional<Offload> offload_from_name(const std::string& name);

struct PipelineOptions {
  nn::ModuleContext ctx;              // compute dtype, Linear kernel factory
  quant::PipelineQuantConfig quant;   // which components are quantized on load, and how
  Offload offload = Offload::Model;
  int offload_group = 1;              // blocks per streamed group (Offload::Blocks)
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual std::string class_name() const = 0;
  virtual GenerateResult generate(const GenerateRequest& req, const RunHooks& hooks = {}) = 0;
};

using PipelineFactory = std::function<std::unique_ptr<Pipeline>(const std::string& dir, const PipelineOptions&)>;
void register_pipeline(const std::string& class_name, PipelineFactory factory);
// Opens a pipeline folder (after io::resolve_model_path) and builds the pipeline its
// model_index.json names; unknown classes are an error listing the known ones.
std::unique_ptr<Pipeline> load_pipeline(const std::string& path, const PipelineOptions& opt = {});

}  // namespace qdit::pipelines
